"""Test helpers: free ports, a local page server, and real gateway/worker/redis processes."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
# A scripted policy that finishes at once: for tests about the platform, not the model.
FINISH = {"policy": "replay", "actions": [{"name": "finish", "answer": "ok"}]}
PAGES = Path(__file__).resolve().parent / "pages"
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PageHandler(SimpleHTTPRequestHandler):
    """Serves tests/pages; /slow?ms=N answers after N ms (to catch a run mid-step); /file?bytes=N is a download;
    /redirect?to=URL is a 302."""

    def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
        super().__init__(*args, directory=str(PAGES), **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        parts = urlsplit(self.path)
        if parts.path == "/slow":
            ms = int(parse_qs(parts.query).get("ms", ["3000"])[0])
            time.sleep(ms / 1000)
            body = f"<html><head><title>Slow page {ms}</title></head><body>slow</body></html>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if parts.path == "/redirect":  # a 302 to ?to=URL
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path == "/file":  # an attachment of ?bytes=N, named ?name=…
            query = parse_qs(parts.query)
            body = b"x" * int(query.get("bytes", ["100"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", f'attachment; filename="{query.get("name", ["data.bin"])[0]}"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *_args) -> None:  # noqa: ANN002
        pass


@dataclass
class PageServer:
    """A local HTTP server for the browser to visit."""

    server: ThreadingHTTPServer

    @property
    def url(self) -> str:
        """Base URL, without trailing slash."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def start_page_server() -> PageServer:
    """Serve tests/pages on a free port in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return PageServer(server)


@dataclass
class Egress:
    """A running egress proxy (`python -m services.egress`)."""

    proc: subprocess.Popen
    port: int
    folder: Path

    @property
    def url(self) -> str:
        """The proxy's URL, as SPARKPILOT_BROWSER_PROXY takes it."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop Squid."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_egress(port: int, allow: str, env: dict[str, str] | None = None) -> Egress:
    """Start the egress proxy on `port`, allowing `allow` (SPARKPILOT_BROWSER_ALLOW_PRIVATE), and wait until it listens."""
    # Under /tmp (not pytest's 0700 folders): Squid writes its logs after dropping root.
    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-egress-"))
    child_env = {k: v for k, v in (env or os.environ).items() if not k.startswith("SPARKPILOT_")}
    child_env.update({"SPARKPILOT_ENV_FILE": os.devnull, "SPARKPILOT_EGRESS_PORT": str(port),
                      "SPARKPILOT_BROWSER_ALLOW_PRIVATE": allow})
    proc = subprocess.Popen([sys.executable, "-m", "services.egress", str(folder)], cwd=ROOT, env=child_env,
                            stdout=open(folder / "egress.out", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the egress proxy exited: {(folder / 'egress.out').read_text()[-2000:]}"
                               f"{(folder / 'cache.log').read_text()[-2000:] if (folder / 'cache.log').exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Egress(proc, port, folder)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the egress proxy did not listen on {port}")


EGRESS_PORT = free_port()
_session_egress: list[Egress] = []


def ensure_egress(env: dict[str, str]) -> None:
    """The test session's egress proxy on EGRESS_PORT (allowing the session's SPARKPILOT_BROWSER_ALLOW_PRIVATE),
    started with the first worker that needs it and stopped when the session ends."""
    if env.get("SPARKPILOT_BROWSER_PROXY") != f"http://127.0.0.1:{EGRESS_PORT}":
        return  # a test with a proxy of its own
    if _session_egress and _session_egress[0].proc.poll() is None:
        return
    _session_egress[:] = [start_egress(EGRESS_PORT, env.get("SPARKPILOT_BROWSER_ALLOW_PRIVATE", ""), env)]
    atexit.register(_session_egress[0].stop)


def start_redis(port: int, logdir: Path) -> subprocess.Popen:
    """A private redis-server on `port` (for tests that stop Redis)."""
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=open(logdir / f"redis-{port}.log", "ab"), stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not start on {port}")


@dataclass
class Stack:
    """A real gateway (uvicorn) and worker (celery) as subprocesses sharing one env."""

    env: dict[str, str]
    logdir: Path
    port: int = field(default_factory=free_port)
    gateway: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """The gateway's URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        """The admin token."""
        return self.env["SPARKPILOT_ADMIN_TOKEN"]

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")
        return subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start_gateway(self) -> None:
        """Start uvicorn and wait until it answers."""
        self.gateway = self._spawn("gateway", [str(BIN / "uvicorn"), "services.gateway.main:app",
                                               "--host", "127.0.0.1", "--port", str(self.port),
                                               "--no-proxy-headers"])
        wait_for(lambda: httpx.get(self.base_url + "/health", timeout=2).status_code == 200, 30, "gateway up")

    def start_worker(self, concurrency: int = 2) -> None:
        """Start a Celery worker and wait until /health sees it."""
        ensure_egress(self.env)
        self.worker = self._spawn("worker", [
            str(BIN / "celery"), "-A", "services.worker.celery_app", "worker", "-l", "info",
            "-Q", self.env["SPARKPILOT_QUEUE_NAME"], "-c", str(concurrency), "-n", f"test-{self.port}-{time.time_ns()}@%h",
        ])
        wait_for(lambda: self.health()["checks"]["worker"] == "ok", 45, "worker heartbeat")

    def health(self) -> dict:
        """GET /health."""
        return httpx.get(self.base_url + "/health", timeout=5).json()

    def kill_worker(self) -> None:
        """SIGKILL the whole worker process group (main process and pool children)."""
        if self.worker is not None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(10)
            self.worker = None

    def stop(self) -> None:
        """Terminate everything this stack started."""
        for proc in (self.worker, self.gateway):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def running_stack(base_env: dict[str, str], model_url: str, folder: Path) -> Iterator[Stack]:
    """A gateway + Celery worker with a SQLite database, queue and key prefix of their own (logs in `folder`),
    asking the model server at `model_url`; stopped on exit, printing the tails of its logs."""
    tag = uuid.uuid4().hex[:8]
    env = dict(base_env, SPARKPILOT_INFERENCE_URL=model_url, DATABASE_URL=f"sqlite:///{folder / 'sparkpilot.db'}",
               SPARKPILOT_QUEUE_NAME=f"test-{folder.name}-{tag}", SPARKPILOT_TRAINING_QUEUE=f"test-training-{folder.name}-{tag}",
               SPARKPILOT_KEY_PREFIX=f"sptest-{folder.name}-{tag}")
    migrated(env["DATABASE_URL"])
    stack = Stack(env=env, logdir=folder)
    try:
        stack.start_gateway()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()
        for log in sorted(folder.glob("*.log")):
            print(f"\n--- {folder.name}: {log.name} (tail) ---\n{log.read_text(errors='replace')[-3000:]}")


def admin_client(stack: Stack) -> httpx.Client:
    """An HTTP client of `stack`, authenticated as admin."""
    return httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)


def set_service_env(mp, env: dict[str, str]) -> None:  # noqa: ANN001 - a pytest.MonkeyPatch
    """Apply the services' settings in `env` to this process (the settings module reads them from there)."""
    for k, v in env.items():
        if k.startswith("SPARKPILOT_") or k in ("DATABASE_URL", "REDIS_URL"):
            mp.setenv(k, v)


@contextmanager
def in_process_gateway(env: dict[str, str], token: str) -> Iterator[httpx.Client]:
    """The gateway app in this process (ASGI, lifespan run, no server), its settings read from `env`: for a
    setting changed per test without starting a gateway. A client authenticated with `token`."""
    import pytest
    from starlette.testclient import TestClient

    from sparkpilot.settings import clear_settings_cache

    with pytest.MonkeyPatch.context() as mp:
        set_service_env(mp, env)
        clear_settings_cache()
        try:
            from services.gateway.main import create_app

            with TestClient(create_app(), base_url="http://127.0.0.1",
                            headers={"Authorization": f"Bearer {token}"}) as client:
                yield client
        finally:
            clear_settings_cache()


FAULT_FIGURES = ROOT / "benchmark-results" / "faults.json"


def record_fault(fault: str, **figures: object) -> None:
    """Print a fault's measured figures and merge them into benchmark-results/faults.json (the README's table)."""
    import fcntl

    print(f"\nFAULT {fault}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    FAULT_FIGURES.parent.mkdir(exist_ok=True)
    with open(FAULT_FIGURES.with_suffix(".lock"), "w") as lock:  # test processes run side by side (xdist)
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(FAULT_FIGURES.read_text()) if FAULT_FIGURES.is_file() else {}
        data[fault] = {**figures, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        FAULT_FIGURES.write_text(json.dumps(data, indent=2))


def fault_figures(api: httpx.Client, run_id: str) -> dict[str, int]:
    """Measured after a fault: runs still `running`, and the run's stored events duplicated or out of order."""
    text = api.get(f"/api/v1/runs/{run_id}/events").text
    ids = [json.loads(line[5:])["id"] for line in text.splitlines() if line.startswith("data:")]
    steps = [s["index"] for s in api.get(f"/api/v1/runs/{run_id}/steps").json()]
    return {"runs_left_running": api.get("/api/v1/runs", params={"status": "running"}).json()["total"],
            "events": len(ids), "events_duplicated": len(ids) - len(set(ids)),
            "events_out_of_order": sum(b <= a for a, b in zip(ids, ids[1:])),
            "step_indices_missing": (max(steps) + 1 - len(set(steps))) if steps else 0}


def scripted_env(base_env: dict[str, str], folder: Path, model_url: str, model: str, **extra: str) -> dict[str, str]:
    """The env of a private stack in `folder` (its own SQLite, queue, key prefix, workspace) on a scripted model."""
    tag = uuid.uuid4().hex[:8]
    env = dict(base_env)
    env.update(DATABASE_URL=f"sqlite:///{folder / 'stack.db'}", SPARKPILOT_QUEUE_NAME=f"test-{folder.name}-{tag}",
               SPARKPILOT_KEY_PREFIX=f"sptest-{folder.name}-{tag}", SPARKPILOT_WORKSPACE_DIR=str(folder / "workspace"),
               SPARKPILOT_TRAJECTORIES_DIR=str(folder / "trajectories"), SPARKPILOT_INFERENCE_MODEL=model,
               SPARKPILOT_INFERENCE_URL=model_url, SPARKPILOT_WAIT_POLL_S="0.2", SPARKPILOT_AGENT_MAX_TOKENS="256",
               SPARKPILOT_DEFAULT_MAX_STEPS="6")
    env.update(extra)
    migrated(env["DATABASE_URL"])
    return env


_sqlite_template: list[Path] = []


def migrated(url: str) -> str:
    """Make `url` a database at the migrations' head: a new SQLite file is a copy of one migrated once per
    test process (tests/integration/test_migrations.py runs the migrations themselves); anything else is
    upgraded in place."""
    import shutil

    from sparkpilot.db.migrate import upgrade

    path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if path is None or path.exists():
        upgrade(url)
        return url
    if not _sqlite_template:
        template = Path(tempfile.mkdtemp(prefix="sparkpilot-template-")) / "head.db"
        upgrade(f"sqlite:///{template}")
        atexit.register(shutil.rmtree, template.parent, True)
        _sqlite_template.append(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template[0], path)
    return url


def sse_collect(api: httpx.Client, run_id: str, headers: dict | None = None) -> list[tuple[int, str, dict]]:
    """Every event of a run's SSE stream until it ends: (id, type, data), checking id and type match the data."""
    out, ev_id, ev_type = [], None, None
    with api.stream("GET", f"/api/v1/runs/{run_id}/events", headers=headers or {}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("id:"):
                ev_id = int(line[3:].strip())
            elif line.startswith("event:"):
                ev_type = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                assert data["id"] == ev_id and data["type"] == ev_type
                out.append((ev_id, ev_type, data))
    return out


def wait_for(pred, timeout: float, what: str, interval: float = 0.2):  # noqa: ANN001, ANN201
    """Poll `pred` until it returns truthy; raise with `what` on timeout."""
    deadline = time.time() + timeout
    last_exc: Exception | None = None
    while time.time() < deadline:
        try:
            value = pred()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the thing may not be up yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def wait_terminal(client: httpx.Client, run_id: str, timeout: float = 60) -> dict:
    """Poll a run until it is succeeded, failed or cancelled."""
    def done() -> dict | None:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        return run if run["status"] in ("succeeded", "failed", "cancelled") else None
    return wait_for(done, timeout, f"run {run_id} to end")


def run_async(coro):  # noqa: ANN001, ANN201
    """Run a coroutine to its end on a thread of its own: a module's Playwright (sync API) may hold this thread's loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def ws_collect(url: str, token: str | None = None, header: bool = False) -> tuple[list[dict], int]:
    """Every message of a WebSocket until it closes, and its close code; the token offered as a browser
    does (subprotocols `sparkpilot`, `bearer.<token>`) or, with `header`, as Authorization."""
    got = []
    if token and header:
        kwargs: dict = {"additional_headers": {"Authorization": f"Bearer {token}"}}
    else:
        kwargs = {"subprotocols": ["sparkpilot", f"bearer.{token}"]} if token else {}
    async with websockets.connect(url, **kwargs) as ws:
        try:
            while True:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
        except websockets.ConnectionClosed as closed:
            return got, closed.rcvd.code if closed.rcvd else -1
    return got, -1


@dataclass
class ModelServer:
    """The real model server (services.inference.serve) as a subprocess that a test may kill and start again."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Its OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 600) -> None:
        """Start it on its port and wait for /health."""
        env = dict(self.env, SPARKPILOT_INFERENCE_PORT=str(self.port))
        self.proc = subprocess.Popen([sys.executable, "-m", "services.inference.serve"], cwd=ROOT, env=env,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        root = self.url.removesuffix("/v1")
        wait_for(lambda: self.proc.poll() is not None or httpx.get(root + "/health", timeout=2).status_code == 200,
                 timeout, "the model server to start", interval=1)
        if self.proc.poll() is not None:
            raise RuntimeError(f"the model server exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL its whole process group (as an OOM kill or a crash would)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """Terminate it."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def worker_of(stack: Stack, run_id: str) -> str:
    """The `host:pid` of the process executing a run, from the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.env["DATABASE_URL"])
    with engine.connect() as c:
        worker = c.execute(text("SELECT worker FROM runs WHERE id = :id"), {"id": run_id}).scalar_one()
    engine.dispose()
    return worker


def submit_solved_click_button(api: httpx.Client, base_url: str, goals: dict[int, str]) -> list[str]:
    """Replay runs that click the button each click-button goal names (seed → goal): rewarded episodes to train on."""
    ids = []
    for seed, goal in goals.items():
        wanted = goal.split('"')[1] if '"' in goal else goal.split()[-1].rstrip(".")
        body = {"task": "miniwob click-button", "start_url": f"{base_url}/benchmarks/miniwob/click-button.html",
                "max_steps": 3, "policy": "replay", "actions": [{"name": "click", "target": wanted}],
                "env": {"type": "miniwob", "task": "click-button", "seed": seed}}
        resp = api.post("/api/v1/runs", json=body)
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids
