"""Check a running Sparkpilot end to end and print a pass/fail table (standard library only: runs on any host).

Called by scripts/validate-deployment.sh after `docker compose up` (--compose) or `make up`.
Checks: every service's health, GPU/CPU memory and disk, the served model, one direct inference,
loading and unloading a (zero-weight) adapter, and one real MiniWoB task run by the worker.
Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = "validate-blank"
MIN_FREE_RAM_GIB = 2.0
MIN_FREE_DISK_GIB = 5.0
rows: list[tuple[str, str, str]] = []


def record(check: str, ok: bool | None, detail: str) -> None:
    """One table row; ok=None is information only (never a failure)."""
    rows.append((check, "PASS" if ok else "INFO" if ok is None else "FAIL", detail))
    print(f"  {rows[-1][1]:4}  {check}: {detail}", flush=True)


def api(base: str, token: str, method: str, path: str, body: Any = None, timeout: float = 120) -> tuple[int, Any]:
    """(status, JSON body) of one gateway call."""
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def dotenv_value(name: str) -> str | None:
    """A setting from the environment, else from ./.env."""
    if os.environ.get(name):
        return os.environ[name]
    env = ROOT / ".env"
    if env.is_file():
        for line in env.read_text().splitlines():
            if line.startswith(name + "="):
                return line.split("=", 1)[1].strip()
    return None


def check_services(base: str, compose: bool) -> None:
    """The gateway's /health (database, Redis, worker, inference) and, under compose, each container's health."""
    try:
        with urllib.request.urlopen(base + "/health", timeout=10) as resp:
            health = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        record("gateway", False, f"unreachable at {base}: {exc}")
        return
    record("gateway", True, f"{base} answers /health ({health['status']})")
    for name, state in health["checks"].items():
        record(f"health: {name}", state == "ok", state)
    if compose:
        out = subprocess.run(["docker", "compose", "ps", "--all", "--format", "json"], cwd=ROOT,
                             capture_output=True, text=True)
        lines = [json.loads(l) for l in out.stdout.splitlines() if l.strip().startswith("{")]
        if out.returncode != 0 or not lines:
            record("compose services", False, (out.stderr or "no containers").strip()[-200:])
        for svc in lines:
            state, health_state = svc.get("State", ""), svc.get("Health", "")
            record(f"container: {svc.get('Service')}", state == "running" and health_state in ("healthy", ""),
                   f"{state} {health_state}".strip())


def check_resources(compose: bool) -> None:
    """GPU memory (nvidia-smi), available RAM and free disk where the data lives."""
    smi = ["docker", "compose", "exec", "-T", "vllm", "nvidia-smi"] if compose else ["nvidia-smi"]
    if compose or shutil.which("nvidia-smi"):
        out = subprocess.run([*smi, "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader"],
                             cwd=ROOT, capture_output=True, text=True)
        detail = out.stdout.strip().replace("\n", "; ") or out.stderr.strip()[-200:]
        # GB10's memory is unified: nvidia-smi may report it as [N/A]; the RAM row below is then the figure.
        record("GPU", out.returncode == 0, detail)
    else:
        record("GPU", None, "no NVIDIA GPU on this host (the CPU stack)")
    meminfo = dict(l.split(":", 1) for l in Path("/proc/meminfo").read_text().splitlines() if ":" in l)
    avail = int(meminfo["MemAvailable"].split()[0]) / 2**20
    total = int(meminfo["MemTotal"].split()[0]) / 2**20
    record("RAM", avail >= MIN_FREE_RAM_GIB, f"{avail:.1f} GiB available of {total:.1f} GiB")
    where = ROOT if not compose else Path(subprocess.run(["docker", "info", "-f", "{{.DockerRootDir}}"],
                                                         capture_output=True, text=True).stdout.strip() or "/")
    try:
        free = shutil.disk_usage(where).free / 2**30
        record("disk", free >= MIN_FREE_DISK_GIB, f"{free:.1f} GiB free at {where}")
    except OSError as exc:
        record("disk", False, f"{where}: {exc}")


def check_model(base: str, token: str) -> str | None:
    """The served base model, and one direct completion through the gateway."""
    status, models = api(base, token, "GET", "/api/v1/models")
    if status != 200:
        record("models", False, f"HTTP {status}: {models}")
        return None
    model = models[0]
    record("served model", True, f"{model['name']} (reads {model.get('input')}, answers {model.get('answer')})")
    status, out = api(base, token, "POST", "/api/v1/inference",
                      {"prompt": "Reply with the single word OK.", "max_tokens": 8, "temperature": 0})
    ok = status == 200 and bool(out.get("text", "").strip())
    record("direct inference", ok, f"{out.get('latency_ms')} ms, {out.get('completion_tokens')} tokens: "
           f"{out.get('text', '').strip()[:40]!r}" if ok else f"HTTP {status}: {str(out)[:200]}")
    return model["name"]


def check_adapter(base: str, token: str, compose: bool) -> None:
    """Write a zero-weight adapter, register it unpromoted, load it into vLLM, unload it."""
    cmd = (["docker", "compose", "exec", "-T", "trainer", "sparkpilot", "models", "blank-adapter", ADAPTER] if compose
           else [str(ROOT / ".venv" / "bin" / "python"), "-m", "sparkpilot.cli", "models", "blank-adapter", ADAPTER])
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        record("adapter: write", False, (out.stderr or out.stdout).strip()[-300:])
        return
    status, row = api(base, token, "POST", "/api/v1/models/adapters",
                      {"name": ADAPTER, "path": ADAPTER, "source": "validate-deployment", "promote": False})
    if status != 201:
        record("adapter: register", False, f"HTTP {status}: {str(row)[:300]}")
        return
    ref = f"{ADAPTER}@v{row['version']}"
    status, row = api(base, token, "POST", f"/api/v1/models/adapters/{ref}/load")
    record("adapter: load", status == 200 and row.get("status") == "loaded", f"{ref}: HTTP {status} {row.get('status') if isinstance(row, dict) else row}")
    status, row = api(base, token, "POST", f"/api/v1/models/adapters/{ref}/unload")
    record("adapter: unload", status == 200 and row.get("status") == "registered", f"{ref}: HTTP {status} {row.get('status') if isinstance(row, dict) else row}")


def check_task(base: str, token: str, pages: str, timeout: float) -> None:
    """One MiniWoB task (served by the gateway itself) run by the worker with the served model."""
    body = {"task": "validate-deployment: miniwob click-button", "max_steps": 5,
            "start_url": pages.rstrip("/") + "/benchmarks/miniwob/click-button.html",
            "env": {"type": "miniwob", "task": "click-button", "seed": 0}}
    status, run = api(base, token, "POST", "/api/v1/runs", body)
    if status != 201:
        record("task run", False, f"HTTP {status}: {str(run)[:300]}")
        return
    deadline = time.time() + timeout
    while run.get("status") not in ("succeeded", "failed", "cancelled") and time.time() < deadline:
        time.sleep(2)
        _status, run = api(base, token, "GET", f"/api/v1/runs/{run['id']}")
    _status, steps = api(base, token, "GET", f"/api/v1/runs/{run['id']}/trajectory")
    answered = [s for s in steps if s.get("raw_output") and s.get("model")] if isinstance(steps, list) else []
    ok = run.get("status") in ("succeeded", "failed") and bool(answered)
    record("task run", ok, f"run {run['id']}: {run.get('status')} ({run.get('reason')}), reward {run.get('reward')}, "
           f"{len(steps) if isinstance(steps, list) else 0} steps, {len(answered)} answered by the model")


def main() -> int:
    """Run every check, print the table, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", action="store_true", help="the stack runs under docker compose")
    parser.add_argument("--url", default=os.environ.get("SPARKPILOT_BASE_URL"), help="gateway URL")
    parser.add_argument("--token", default=None, help="admin token (default: SPARKPILOT_ADMIN_TOKEN in .env)")
    parser.add_argument("--pages-url", default=None,
                        help="the gateway as the worker reaches it (default: http://gateway:8000 under compose)")
    parser.add_argument("--task-timeout", type=float, default=300)
    args = parser.parse_args()
    base = (args.url or f"http://127.0.0.1:{dotenv_value('GATEWAY_HOST_PORT' if args.compose else 'SPARKPILOT_PORT') or 8000}").rstrip("/")
    token = args.token or dotenv_value("SPARKPILOT_ADMIN_TOKEN")
    pages = args.pages_url or ("http://gateway:8000" if args.compose else base)
    print(f"validating Sparkpilot at {base} ({'compose' if args.compose else 'native'})", flush=True)
    check_services(base, args.compose)
    check_resources(args.compose)
    if not token:
        record("admin token", False, "set SPARKPILOT_ADMIN_TOKEN or pass --token")
    elif not any(r[0] == "gateway" and r[1] == "FAIL" for r in rows):
        if check_model(base, token):
            check_adapter(base, token, args.compose)
            check_task(base, token, pages, args.task_timeout)
    width = max(len(r[0]) for r in rows)
    print("\n" + "check".ljust(width) + "  result  detail")
    for check, result, detail in rows:
        print(f"{check.ljust(width)}  {result:6}  {detail}")
    failed = [r for r in rows if r[1] == "FAIL"]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} checks passed" + (f"; FAILED: {', '.join(r[0] for r in failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
