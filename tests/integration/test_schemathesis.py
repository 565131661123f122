"""Schemathesis over the gateway's OpenAPI: no answer with a 5xx status, every error in the envelope.

A private gateway (SQLite, the machine's Redis, no rate limits) whose model server is scripted, so
that POST /api/v1/inference answers instead of 503. Each operation gets generated valid and invalid
inputs (a fixed seed: a failure reproduces with the curl line schemathesis prints).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.helpers import BIN, ROOT, Stack
from tests.scripted_model import ScriptedModel

MODEL = "scripted-fuzz"


def test_no_server_errors_and_every_error_in_the_envelope(base_env: dict[str, str]) -> None:
    from tests.helpers import migrated

    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-fuzz-"))
    tag = uuid.uuid4().hex[:8]
    with ScriptedModel(MODEL, [], fallback="fine") as model:
        env = dict(base_env, DATABASE_URL=f"sqlite:///{folder / 'fuzz.db'}", SPARKPILOT_QUEUE_NAME=f"test-fuzz-{tag}",
                   SPARKPILOT_KEY_PREFIX=f"sptest-fuzz-{tag}", SPARKPILOT_INFERENCE_URL=model.url,
                   SPARKPILOT_INFERENCE_MODEL=MODEL, SPARKPILOT_RATE_LIMIT_PER_TOKEN="", SPARKPILOT_RATE_LIMIT_PER_IP="",
                   SPARKPILOT_WORKSPACE_DIR=str(folder / "workspace"))
        migrated(env["DATABASE_URL"])
        stack = Stack(env=env, logdir=folder)
        stack.start_gateway()
        try:
            run = subprocess.run(
                [str(BIN / "st"), "run", stack.base_url + "/openapi.json", "-H", f"Authorization: Bearer {stack.token}",
                 "--checks", "not_a_server_error,error_envelope", "--max-examples", "10", "--seed", "7",
                 "--no-color"],
                env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)},
                cwd=ROOT, capture_output=True, text=True, timeout=900)
        finally:
            stack.stop()
    report = run.stdout[-6000:]
    assert run.returncode == 0, report  # schemathesis exits 1 on any failed check
    tested = next(line for line in report.splitlines() if "Tested:" in line)
    assert int(tested.split("Tested:")[1].split()[0]) >= 50, tested  # every operation of the API was exercised
    assert "❌" not in report, report
