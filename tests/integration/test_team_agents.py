"""The FileSurfer and the Coder on real files and the real sandbox.

The host here stands in for the worker: the model's answers are scripted, `permit` is the person's
answer, and run_code is the real bubblewrap sandbox. What is tested is the agents' own rules: paths
stay in the run's folder, conversions and failures come back as results, escapes are contained.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.team.roles import AGENTS, CONTEXT_FILE, FileSurfer
from services.worker.sandbox import SandboxLimits, available, run_python
from sparkpilot.team_schemas import PlanStep

pytestmark = pytest.mark.skipif(not available(), reason="bubblewrap cannot create namespaces here")


@dataclass
class Host:
    workspace: Path
    answers: list[str] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    task: str = "a test task"

    def ask(self, messages: list[dict[str, Any]], schema: dict[str, Any], max_tokens: int) -> str:
        return self.answers.pop(0)

    def browse(self, goal: str) -> tuple[str, str | None, dict[str, Any]]:
        raise AssertionError("no browsing here")

    def run_code(self, code: str):  # noqa: ANN201
        return run_python(code, self.workspace, SandboxLimits(cpu_s=2, wall_s=6))

    def permit(self, category: str, action: dict[str, Any], reason: str) -> str | None:
        self.asked.append(category)
        return self.refusals.get(category)

    def ask_user(self, question: str) -> str | None:
        return None


@pytest.fixture
def host() -> Iterator[Host]:
    top = Path(tempfile.mkdtemp(prefix="sparkpilot-agents-"))
    os.chmod(top, 0o711)
    (top / "outside.txt").write_text("secret outside the run")
    ws = top / "files"
    ws.mkdir()
    yield Host(ws)
    import shutil

    shutil.rmtree(top, ignore_errors=True)


def test_file_paths_out_of_the_run_folder_are_refused(host: Host) -> None:
    (host.workspace / "link").symlink_to(host.workspace.parent)
    surfer = FileSurfer()
    for path in ("../outside.txt", "/etc/passwd", "sub/../../outside.txt", "link/outside.txt"):
        for op in ("read", "write", "delete"):
            res = surfer.apply(op, path, "overwritten", host)
            assert not res.ok and res.summary.startswith("refused:"), (op, path, res)
    assert (host.workspace.parent / "outside.txt").read_text() == "secret outside the run"
    assert not Path("/etc/passwd").read_text().startswith("overwritten")


def test_files_are_read_converted_written_and_guarded(host: Host) -> None:
    (host.workspace / "page.html").write_text("<html><body><h1>Quarterly report</h1><p>Revenue grew.</p></body></html>")
    (host.workspace / "data.csv").write_text("a,b\n1,2\n")
    (host.workspace / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n\x00\x01\x02\xff")
    surfer = FileSurfer()
    html = surfer.apply("read", "page.html", "", host)
    assert html.ok and "# Quarterly report" in html.summary and "Revenue grew." in html.summary  # HTML → Markdown
    assert surfer.apply("read", "data.csv", "", host).summary == "data.csv: a,b\n1,2\n"
    broken = surfer.apply("read", "broken.pdf", "", host)
    assert not broken.ok and "could not convert 'broken.pdf'" in broken.summary  # a result, not a crash
    assert sorted(surfer.apply("list", "", "", host).data["files"]) == ["broken.pdf", "data.csv", "page.html"]

    host.refusals["overwrite_file"] = "not approved: keep it"
    res = surfer.apply("write", "data.csv", "gone", host)
    assert not res.ok and "keep it" in res.summary and (host.workspace / "data.csv").read_text() == "a,b\n1,2\n"
    assert surfer.apply("write", "out/new.md", "# New", host).ok and (host.workspace / "out/new.md").read_text() == "# New"
    assert host.asked == ["overwrite_file"]  # a new file needs no approval; overwriting one does


def test_coder_escapes_are_contained_and_reported(host: Host) -> None:
    escape = ("import socket\nout = []\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); out.append('net')\n"
              "except OSError:\n    out.append('no-net')\ntry:\n    open('/etc/sparkpilot-escape', 'w'); out.append('wrote')\n"
              "except OSError:\n    out.append('no-write')\nopen('result.txt', 'w').write('ok')\nprint(','.join(out))\n")
    host.answers = [json.dumps({"code": escape}), json.dumps({"code": "while True:\n    pass\n"})]
    coder = AGENTS["coder"]
    step = PlanStep(agent="coder", instruction="try things")
    done = [{"index": 0, "agent": "web", "instruction": "read", "summary": "found 3", "data": {"n": 3}}]
    res = coder.run(step, done, None, host)
    assert res.ok and res.data["stdout"].strip() == "no-net,no-write", res
    assert not Path("/etc/sparkpilot-escape").exists()
    assert "result.txt" in res.data["files"] and json.loads((host.workspace / CONTEXT_FILE).read_text()) == done
    looping = coder.run(step, done, None, host)
    assert not looping.ok and looping.data["limit"] in ("cpu", "wall") and "limit" in looping.summary
    assert host.asked == ["run_code", "run_code"]

    host.answers = [json.dumps({"code": "print('never')"})]
    host.refusals["run_code"] = "not approved: no"
    refused = coder.run(step, done, None, host)
    assert not refused.ok and refused.summary == "the program was not run: not approved: no"
