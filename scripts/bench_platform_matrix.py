"""Platform benchmark matrix: the platform suite on SQLite and PostgreSQL, with 1 and 2 worker processes.

Each configuration gets its own gateway and Celery workers started here (real processes, a fresh
database, its own Redis queue and key prefix), then `bench_platform.py` at each `--runs` size.
Nothing of a running `make up` stack is used or touched.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sparkpilot.db.migrate import upgrade  # noqa: E402

BIN = Path(sys.executable).parent
console = Console(stderr=True)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:  # noqa: ANN001
    """Poll `check` until it is true; SystemExit naming `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"error: {what} not ready in {timeout:.0f} s")


class Config:
    """One configuration's database, gateway and workers."""

    def __init__(self, db: str, workers: int, pg_admin: str, tmp: Path) -> None:
        self.db, self.workers, self.pg_admin, self.tmp = db, workers, pg_admin, tmp
        self.procs: list[subprocess.Popen] = []
        self.port = free_port()
        self.egress_port = free_port()
        self.tag = uuid.uuid4().hex[:8]
        self.pg_name = f"sparkpilot_bench_{self.tag}"
        self.token = "sp_bench_" + secrets.token_hex(16)

    @property
    def base_url(self) -> str:
        """The gateway's URL."""
        return f"http://127.0.0.1:{self.port}"

    def database_url(self) -> str:
        """A fresh, migrated database for this configuration."""
        if self.db == "sqlite":
            url = f"sqlite:///{self.tmp / 'bench.db'}"
        else:
            admin = sa.create_engine(self.pg_admin, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(sa.text(f'CREATE DATABASE "{self.pg_name}"'))
            admin.dispose()
            url = self.pg_admin.rsplit("/", 1)[0] + f"/{self.pg_name}"
        upgrade(url)
        return url

    def env(self, database_url: str) -> dict[str, str]:
        """The services' environment: this repo's defaults, a bench token, no model, limits off."""
        empty = self.tmp / "empty.env"
        empty.write_text("")
        base = {k: v for k, v in os.environ.items() if not k.startswith("SPARKPILOT_") and k != "DATABASE_URL"}
        return base | {
            "SPARKPILOT_ENV_FILE": str(empty), "SPARKPILOT_DEPLOYMENT": "test",
            "SPARKPILOT_ADMIN_TOKEN": self.token, "DATABASE_URL": database_url,
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "SPARKPILOT_WORKSPACE_DIR": str(self.tmp / "workspace"),
            "SPARKPILOT_QUEUE_NAME": f"bench-runs-{self.tag}", "SPARKPILOT_KEY_PREFIX": f"spbench-{self.tag}",
            "SPARKPILOT_BROWSER_ALLOW_PRIVATE": "127.0.0.1",  # the benchmark page is served on loopback
            "SPARKPILOT_EGRESS_PORT": str(self.egress_port),
            "SPARKPILOT_BROWSER_PROXY": f"http://127.0.0.1:{self.egress_port}",
            "SPARKPILOT_RATE_LIMIT_PER_TOKEN": "1000000/minute", "SPARKPILOT_RATE_LIMIT_PER_IP": "1000000/minute",
            "SPARKPILOT_INFERENCE_URL": "", "SPARKPILOT_LOG_LEVEL": "WARNING",
        }

    def start(self) -> None:
        """Gateway and workers up, each worker seen by /health."""
        env = self.env(self.database_url())
        logs = self.tmp / "logs"
        logs.mkdir(exist_ok=True)

        def spawn(name: str, args: list[str]) -> None:
            out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process's life
            self.procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                               start_new_session=True))

        # The browser's egress proxy; its logs under /tmp, where Squid can write after dropping root.
        spawn("egress", [sys.executable, "-m", "services.egress", tempfile.mkdtemp(prefix="sparkpilot-egress-")])
        spawn("gateway", [str(BIN / "uvicorn"), "services.gateway.main:app", "--host", "127.0.0.1",
                          "--port", str(self.port), "--no-proxy-headers"])
        wait_until(lambda: httpx.get(self.base_url + "/health", timeout=2).status_code == 200, 60, "gateway")
        for i in range(self.workers):
            spawn(f"worker{i}", [str(BIN / "celery"), "-A", "services.worker.celery_app", "worker",
                                 "-n", f"bench{i}-{self.tag}@%h"])
        wait_until(lambda: httpx.get(self.base_url + "/health", timeout=2).json()["checks"]["worker"] == "ok",
                   90, "worker")
        time.sleep(2)  # let every worker's pool children finish booting before the load arrives

    def stop(self) -> None:
        """Stop the processes and drop the PostgreSQL database."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if self.db == "postgresql":
            admin = sa.create_engine(self.pg_admin, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
            admin.dispose()


def postgres_answers(url: str) -> str | None:
    """None when PostgreSQL answers at `url`, else why not."""
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).splitlines()[0]


def run_one(cfg: Config, runs: int, timeout: float, out: Path) -> dict:
    """One platform benchmark against this configuration's gateway; its JSON result."""
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_platform.py"), "--runs", str(runs), "--base-url",
           cfg.base_url, "--token", cfg.token, "--timeout", str(timeout), "--json", str(out)]
    subprocess.run(cmd, cwd=ROOT, check=False)
    if not out.is_file():
        raise SystemExit(f"error: the platform benchmark wrote no result ({' '.join(cmd)})")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    """Run every configuration; print and save the table."""
    p = argparse.ArgumentParser(prog="benchmark.sh platform --matrix", description=__doc__)
    p.add_argument("--runs", default="50,200", help="concurrent run counts (default 50,200)")
    p.add_argument("--dbs", default="sqlite,postgresql", help="databases (default sqlite,postgresql)")
    p.add_argument("--workers", default="1,2",
                   help="worker process counts (default 1,2), each with SPARKPILOT_CONCURRENCY's run slots")
    p.add_argument("--postgres-url", default=os.environ.get("SPARKPILOT_TEST_POSTGRES_URL",
                                                            "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                   help="a PostgreSQL the benchmark may create databases in")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per run (default 900)")
    p.add_argument("--json", type=Path, help="write the results here (default benchmark-results/platform-matrix-*.json)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop this configuration's processes on the way out
    sizes = [int(x) for x in args.runs.split(",")]
    dbs = args.dbs.split(",")
    if "postgresql" in dbs and (why := postgres_answers(args.postgres_url)):
        console.print(f"[bold red]PostgreSQL configurations SKIPPED: no PostgreSQL at {args.postgres_url} ({why}); "
                      "start one with scripts/test_postgres.sh or pass --postgres-url[/bold red]")
        dbs = [d for d in dbs if d != "postgresql"]
    rows = []
    started = datetime.now(timezone.utc)
    for db in dbs:
        for workers in [int(x) for x in args.workers.split(",")]:
            with tempfile.TemporaryDirectory(prefix="sparkpilot-bench-") as tmp:
                cfg = Config(db, workers, args.postgres_url, Path(tmp))
                console.rule(f"{db}, {workers} worker process(es)")
                try:
                    cfg.start()
                    for n in sizes:
                        r = run_one(cfg, n, args.timeout, Path(tmp) / f"result-{n}.json")
                        if r["succeeded"] < n:  # keep the services' logs of a configuration that lost runs
                            kept = ROOT / "benchmark-results" / "platform-matrix-logs" / f"{db}-{workers}w-{n}"
                            shutil.copytree(Path(tmp) / "logs", kept, dirs_exist_ok=True)
                            console.print(f"[red]{n - r['succeeded']} runs did not succeed; logs kept in {kept}[/red]")
                        rows.append({"db": db, "workers": workers, "runs": n, "succeeded": r["succeeded"],
                                     "runs_per_minute": r["runs_per_minute"], "queue_to_start_ms": r["queue_to_start_ms"],
                                     "event_latency_ms": r["event_latency_ms"], "outcomes": r["outcomes"],
                                     "event_latency_ms_by_type": r["event_latency_ms_by_type"]})
                finally:
                    cfg.stop()
    table = Table(title="platform benchmark matrix (scripted one-step runs, no model)")
    for col in ("db", "workers", "runs", "finished", "runs/min", "queue→start p50/p99 ms", "event p50/p99 ms"):
        table.add_column(col, justify="right")
    for r in rows:
        q, e = r["queue_to_start_ms"], r["event_latency_ms"]
        table.add_row(r["db"], str(r["workers"]), str(r["runs"]), f"{r['succeeded']}/{r['runs']}",
                      f"{r['runs_per_minute']:.0f}", f"{q['p50']:.0f} / {q['p99']:.0f}", f"{e['p50']:.1f} / {e['p99']:.1f}")
    Console().print(table)
    out = args.json or ROOT / "benchmark-results" / f"platform-matrix-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"suite": "platform-matrix", "started_at": started.isoformat(), "rows": rows,
                               "host": {"cpu_count": os.cpu_count()}}, indent=2) + "\n")
    console.print(f"results written to {out}")
    return 0 if all(r["succeeded"] == r["runs"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
