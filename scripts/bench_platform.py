"""Platform benchmark: N concurrent one-step runs (scripted finish, no model), followed live over SSE."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from httpx_sse import SSEError, aconnect_sse
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sparkpilot.stats import pct  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"run.succeeded", "run.failed", "run.cancelled"}
TASK = "benchmark: open the page and finish"
PAGE = b"<!doctype html><html><head><title>Sparkpilot benchmark page</title></head><body><h1>Benchmark</h1></body></html>"
MAX_RECONNECTS = 10
console = Console(stderr=True)


class PageHandler(BaseHTTPRequestHandler):
    """Answers every GET/HEAD with the benchmark page."""

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        """Send the page."""
        self.do_HEAD()
        self.wfile.write(PAGE)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server API
        """Send the headers only."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


def serve_page() -> tuple[ThreadingHTTPServer, str]:
    """Start the local page server on a free port; returns (server, url)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="bench-page").start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def parse_ts(value: str) -> float:
    """ISO-8601 (with Z, +00:00 or no zone, read as UTC) → epoch seconds."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def env_file_token() -> str | None:
    """SPARKPILOT_ADMIN_TOKEN from the repo's .env, if any."""
    env = ROOT / ".env"
    if not env.is_file():
        return None
    for line in env.read_text().splitlines():
        if line.strip().startswith("SPARKPILOT_ADMIN_TOKEN="):
            return line.split("=", 1)[1].strip().strip("'\"") or None
    return None


class Bench:
    """Submits the runs, follows their streams and collects the measurements."""

    def __init__(self, client: httpx.AsyncClient, url: str, timeout: float, progress: Progress, task_id: int) -> None:
        self.client, self.url, self.timeout = client, url, timeout
        self.progress, self.task_id = progress, task_id
        self.latencies: dict[str, list[float]] = {}
        self.live_latencies: list[float] = []
        self.queue_to_start: list[float] = []
        self.outcomes: dict[str, int] = {}
        self.errors: list[str] = []
        self.last_terminal = 0.0

    async def one(self) -> None:
        """Submit one run and follow it to its end; records its outcome."""
        try:
            outcome = await asyncio.wait_for(self._submit_and_follow(), self.timeout)
        except asyncio.TimeoutError:
            outcome = "timeout"
        except Exception as exc:  # noqa: BLE001 - one broken run must not stop the benchmark
            outcome = "error"
            self.errors.append(f"{type(exc).__name__}: {exc}")
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.progress.advance(self.task_id)

    async def _submit_and_follow(self) -> str:
        # A scripted policy that finishes at once: this measures the platform, not the model.
        body = {"task": TASK, "start_url": self.url, "max_steps": 1, "policy": "replay",
                "actions": [{"name": "finish", "answer": "benchmark"}]}
        resp = await self.client.post("/api/v1/runs", json=body)
        if resp.status_code != 201:
            self.errors.append(f"submit: HTTP {resp.status_code} {resp.text[:200]}")
            return "submit_error"
        run = resp.json()
        created = parse_ts(run["created_at"])
        last_id, failures = 0, 0
        while True:
            headers = {"Last-Event-ID": str(last_id)} if last_id else {}
            try:
                async with aconnect_sse(self.client, "GET", f"/api/v1/runs/{run['id']}/events", headers=headers) as src:
                    src.response.raise_for_status()
                    listening = time.time()
                    async for sse in src.aiter_sse():
                        received = time.time()
                        if not sse.data or not sse.id or int(sse.id) <= last_id:
                            continue  # keep-alive or a duplicate after reconnecting
                        ev = json.loads(sse.data)
                        last_id, failures = int(sse.id), 0
                        created_ts = parse_ts(ev["ts"])
                        self.latencies.setdefault(ev["type"], []).append((received - created_ts) * 1000)
                        if created_ts >= listening:  # live push, not backlog read on connect
                            self.live_latencies.append((received - created_ts) * 1000)
                        if ev["type"] == "run.started":
                            self.queue_to_start.append((parse_ts(ev["ts"]) - created) * 1000)
                        if ev["type"] in TERMINAL:
                            self.last_terminal = max(self.last_terminal, received)
                            return ev["type"].removeprefix("run.")
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code < 500:
                    raise
            except (httpx.TransportError, SSEError):
                pass
            failures += 1  # the stream ended or broke before the terminal event: resume
            if failures > MAX_RECONNECTS:
                raise RuntimeError(f"run {run['id']}: stream lost {failures} times, last event {last_id}")
            await asyncio.sleep(min(0.5 * failures, 3.0))


async def preflight(client: httpx.AsyncClient, base_url: str) -> None:
    """Exit with a clear message unless the gateway answers /health and accepts the token."""
    try:
        health = await client.get("/health")
    except httpx.TransportError as exc:
        sys.exit(f"error: gateway not reachable at {base_url} ({type(exc).__name__}: {exc}); is it running?")
    if health.status_code != 200:
        sys.exit(f"error: {base_url}/health answered HTTP {health.status_code}")
    info = health.json()
    if info.get("status") != "ok":
        console.print(f"[yellow]warning: gateway is {info.get('status')}: {info.get('checks')}[/yellow]")
    auth = await client.get("/api/v1/runs", params={"limit": 1})
    if auth.status_code == 401:
        sys.exit("error: the token was refused (HTTP 401); pass --token or set SPARKPILOT_TOKEN")


def report(result: dict) -> None:
    """Print the figures as a table."""
    ev, q = result["event_latency_ms"], result["queue_to_start_ms"]
    table = Table(title=f"platform benchmark: {result['runs']} concurrent runs")
    table.add_column("metric")
    table.add_column("value", justify="right")
    fmt = lambda v: "-" if v is None else f"{v:,.1f}"  # noqa: E731
    rows = [
        ("runs succeeded / failed", f"{result['succeeded']} / {result['failed']}"),
        ("outcomes", ", ".join(f"{k}={v}" for k, v in sorted(result["outcomes"].items()))),
        ("wall time (s)", fmt(result["wall_s"])),
        ("throughput (runs/min)", fmt(result["runs_per_minute"])),
        *((f"event latency {k} (ms)", fmt(ev[k])) for k in ("p50", "p95", "p99", "max")),
        ("events measured", str(ev["count"])),
        *((f"queue-to-start {k} (ms)", fmt(q[k])) for k in ("p50", "p95", "p99")),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


async def main(args: argparse.Namespace) -> int:
    """Run the benchmark; returns the process exit code."""
    token = args.token or os.environ.get("SPARKPILOT_TOKEN") or env_file_token()
    if not token:
        sys.exit("error: no API token; pass --token, set SPARKPILOT_TOKEN, or put SPARKPILOT_ADMIN_TOKEN= in .env")
    server, url = (None, args.url) if args.url else serve_page()
    limits = httpx.Limits(max_connections=args.runs + 10, max_keepalive_connections=args.runs + 10)
    timeout = httpx.Timeout(30.0, read=90.0)  # the gateway pings SSE streams every ~15 s
    headers = {"Authorization": f"Bearer {token}"}
    started_at = datetime.now(timezone.utc)
    try:
        async with httpx.AsyncClient(base_url=args.base_url, headers=headers, limits=limits, timeout=timeout) as client:
            await preflight(client, args.base_url)
            console.print(f"benchmark: {args.runs} runs against {args.base_url}, page {url}")
            columns = (TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as progress:
                bench = Bench(client, url, args.timeout, progress, progress.add_task("runs", total=args.runs))
                t0 = time.time()
                await asyncio.gather(*(bench.one() for _ in range(args.runs)))
    finally:
        if server is not None:
            server.shutdown()
    completed = sum(bench.outcomes.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
    wall = max((bench.last_terminal or time.time()) - t0, 1e-9)
    # Headline: events created while the client was already listening (worker → client push).
    # Events that existed before it connected (run.queued, always) are only in the by-type figures.
    lat, q = bench.live_latencies, bench.queue_to_start
    succeeded = bench.outcomes.get("succeeded", 0)
    result = {
        "suite": "platform",
        "runs": args.runs,
        "succeeded": succeeded,
        "failed": args.runs - succeeded,
        "outcomes": bench.outcomes,
        "wall_s": round(wall, 3),
        "runs_per_minute": round(completed / wall * 60, 2),
        "event_latency_ms": {**{f"p{p}": pct(lat, p) for p in (50, 95, 99)},
                             "max": round(max(lat), 2) if lat else None, "count": len(lat)},
        "event_latency_ms_by_type": {t: {"p50": pct(v, 50), "p95": pct(v, 95), "count": len(v)}
                                     for t, v in sorted(bench.latencies.items())},
        "queue_to_start_ms": {f"p{p}": pct(q, p) for p in (50, 95, 99)},
        "started_at": started_at.isoformat(),
        "base_url": args.base_url,
        "start_url": url,
        "errors": bench.errors[:20],
        "host": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    report(result)
    out = args.json or ROOT / "benchmark-results" / f"platform-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"results written to {out}")
    for err in bench.errors[:5]:
        console.print(f"[red]{err}[/red]")
    return 0 if succeeded == args.runs else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="benchmark.sh platform", description=__doc__)
    p.add_argument("--runs", type=int, default=50, help="runs submitted at once (default 50)")
    p.add_argument("--url", help="start URL (default: a page served locally on 127.0.0.1; the worker must reach it)")
    p.add_argument("--token", help="API token (default: $SPARKPILOT_TOKEN, else SPARKPILOT_ADMIN_TOKEN in .env)")
    p.add_argument("--base-url", default=os.environ.get("SPARKPILOT_BASE_URL", "http://127.0.0.1:8000"),
                   help="gateway URL (default: $SPARKPILOT_BASE_URL or http://127.0.0.1:8000)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per run (default 600)")
    p.add_argument("--json", type=Path, help="write the results here (default benchmark-results/platform-*.json)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    args.base_url = args.base_url.rstrip("/")
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
