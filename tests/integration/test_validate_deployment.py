"""scripts/validate-deployment.sh against the real native stack (gateway, worker, vLLM on the embedded model)."""

from __future__ import annotations

import subprocess

from tests.helpers import ROOT, Stack, free_port
from tests.real_model import api, stack  # noqa: F401 - this module's stack serves the real model

SCRIPT = ROOT / "scripts" / "validate-deployment.sh"


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def table(out: str) -> dict[str, str]:
    """check -> PASS/FAIL/INFO from the final table."""
    header, *body = out.split("\ncheck", 1)[1].splitlines()
    width = len("check" + header.split("result")[0])  # the result column starts here
    return {line[:width].strip(): line[width:].split()[0] for line in body if line.strip() and "checks passed" not in line}


def test_a_healthy_stack_passes_every_check(stack: Stack, trainer) -> None:  # noqa: ANN001
    result = run_script(stack.env, "--url", stack.base_url, "--token", stack.token, "--task-timeout", "240")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    for check in ("gateway", "health: database", "health: redis", "health: worker", "health: inference",
                  "health: trainer", "RAM", "disk",
                  "served model", "direct inference", "adapter: load", "adapter: unload", "task run"):
        assert rows[check] == "PASS", (check, result.stdout)
    assert rows["GPU"] == "INFO"  # this machine has none: reported, not failed
    assert "smollm2-135m-instruct" in result.stdout and "answered by the model" in result.stdout


def test_an_unreachable_gateway_fails_with_a_table(base_env: dict[str, str]) -> None:
    result = run_script(base_env, "--url", f"http://127.0.0.1:{free_port()}", "--token", "x")
    assert result.returncode == 1
    assert table(result.stdout)["gateway"] == "FAIL" and "FAILED: gateway" in result.stdout
