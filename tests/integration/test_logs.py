"""Logs: JSON lines tagged with their run, rotated files, and no secret in them, from the real services."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.helpers import run_async, wait_terminal, ws_collect


def _records(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_a_run_logs_json_with_its_id_and_never_a_password_or_token(api: httpx.Client, stack, pages) -> None:  # noqa: ANN001
    secret = f"pw-{uuid.uuid4().hex[:12]}"
    actions = [{"name": "fill", "target": "Password", "text": secret}, {"name": "press", "key": "Enter"},
               {"name": "finish", "answer": "signed in"}]
    run = api.post("/api/v1/runs", json={"task": "sign in", "start_url": pages.url + "/login.html", "policy": "replay",
                                         "actions": actions, "approval_policy": {"submit_sensitive": "allow"}}).json()
    done = wait_terminal(api, run["id"])
    steps = api.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert done["status"] == "succeeded" and steps[0]["error"] is None, steps[0]  # the secret was really typed
    assert steps[-1]["observation"]["title"] == "signed in as ada"
    # A token in a WebSocket URL is refused, and its access-log line masks it.
    ws = stack.base_url.replace("http", "ws") + f"/api/v1/runs/{run['id']}/ws?token={stack.token}"
    assert run_async(ws_collect(ws))[1] == 4400

    worker = _records(stack.logdir / "worker.log")
    mine = [r for r in worker if r.get("run_id") == run["id"]]
    assert {"executing run " + run["id"], f"run {run['id']}: run.succeeded"} <= {r["message"] for r in mine}
    assert all({"ts", "level", "logger", "process", "message"} <= set(r) for r in mine)
    gateway = _records(stack.logdir / "gateway.log")
    assert any("/ws?token=***" in r["message"] for r in gateway)  # the access line, masked
    for name in ("worker.log", "gateway.log"):
        text = (stack.logdir / name).read_text(errors="replace")
        assert secret not in text and stack.token not in text, name


def test_log_files_rotate_and_stay_json(tmp_path: Path) -> None:
    code = (
        "import logging; from sparkpilot.logs import configure_logging, bind;"
        f"configure_logging('INFO', 'json', __import__('pathlib').Path({str(tmp_path / 'svc.log')!r}), 2000, 2);"
        "log = logging.getLogger('t')\n"
        "with bind(job_id='j1'):\n"
        "    [log.info('line %d with Bearer sp_abcdefghijkl', i) for i in range(200)]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["svc.log", "svc.log.1", "svc.log.2"]  # rotated, two old files kept
    records = [json.loads(line) for p in tmp_path.iterdir() for line in p.read_text().splitlines()]
    assert records and all(r["job_id"] == "j1" and r["message"].endswith("Bearer ***") for r in records)
    assert all(p.stat().st_size <= 2500 for p in tmp_path.iterdir())


def test_what_the_agent_types_into_a_password_field_is_masked_from_then_on(browser, pages, caplog) -> None:  # noqa: ANN001
    """The loop registers a password fill as a secret: a later log line carrying it (a Playwright error
    quoting the value, say) is masked; what it types into an ordinary field is not."""
    import logging

    from agent.loop import Hooks, LoopConfig, run_agent
    from agent.policies import ReplayPolicy
    from sparkpilot.logs import _Context

    secret, visible = f"pw-{uuid.uuid4().hex[:10]}", f"user-{uuid.uuid4().hex[:6]}"
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(pages.url + "/login.html")
    actions = [{"name": "fill", "target": "User", "text": visible}, {"name": "fill", "target": "Password", "text": secret},
               {"name": "finish", "answer": "typed"}]
    outcome = run_agent(page, ReplayPolicy(actions), "sign in", Hooks(), LoopConfig(max_steps=4))
    ctx.close()
    assert outcome.status == "succeeded", outcome.reason
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "fill failed: %s then %s", (visible, secret), None)
    _Context().filter(record)
    assert record.getMessage() == f"fill failed: {visible} then ***"


@pytest.mark.parametrize(("line", "masked"), [
    ("GET /api/v1/runs?access_token=sekrit1&limit=5", "GET /api/v1/runs?access_token=***&limit=5"),
    ("GET /x?api_key=sekrit2 HTTP/1.1", "GET /x?api_key=*** HTTP/1.1"),
    ("GET /x?a=1&apikey=sekrit3", "GET /x?a=1&apikey=***"),
    ("GET /cb?code=sekrit4&state=ok", "GET /cb?code=***&state=ok"),
    ("GET /x?after=3&limit=2", "GET /x?after=3&limit=2"),
])
def test_credential_like_query_parameters_are_masked(line: str, masked: str) -> None:
    from sparkpilot.logs import redact

    assert redact(line) == masked
