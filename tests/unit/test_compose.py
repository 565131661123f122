"""Static checks of docker-compose.yml, the Dockerfiles, .env.template and config/compose.env.

No Docker engine is needed (nor used, nor a compose binary: none installs from the registries
here): the compose file is resolved by tests/compose_model.py as `docker compose config` would
(interpolation from .env, env_file order, `environment:` last), and every reference in it is
checked against the tree, the Python entry points and the settings classes.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from sparkpilot.settings import CommonSettings, WorkerSettings
from tests.compose_model import (COMPOSE_FILE, INTERPOLATION, ROOT, TEMPLATE, Compose, env_names, read_env_file,
                                 settings_in, template_entries)

INFERENCE_DOCKERFILE = ROOT / "services" / "inference" / "Dockerfile"

SERVICES = {"vllm", "gateway", "worker", "trainer", "redis", "postgres", "egress"}
VOLUMES = {"workspace", "models", "adapters", "trajectories", "pgdata", "redisdata"}
PYTHON_SERVICES = ("gateway", "worker", "trainer")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def command_of(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def import_attr(spec: str) -> object:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


# ---------------------------------------------------------------- helpers checked too


def test_interpolation_regex_finds_every_form_and_skips_escapes() -> None:
    text = "a ${A} b ${B:-x} c ${C:?must} d $${NOT_ME} e ${D-y} f $$HOSTNAME"
    assert INTERPOLATION.findall(text) == ["A", "B", "C", "D"]


def test_env_names_follow_prefix_and_aliases() -> None:
    names = env_names(CommonSettings)
    assert {"DATABASE_URL", "REDIS_URL", "SPARKPILOT_DEPLOYMENT", "SPARKPILOT_QUEUE_NAME"} <= names
    assert "SPARKPILOT_DATABASE_URL" not in names


def test_template_parser_sees_commented_and_plain_entries() -> None:
    entries = template_entries("# note\n# FOO=1\nBAR=2\n# just a comment = not a var\n")
    assert entries == {"FOO": (True, "1", 1), "BAR": (False, "2", 2)}


# ---------------------------------------------------------------- compose structure


def test_all_services_exist(services: dict) -> None:
    assert SERVICES <= set(services), SERVICES - set(services)


def test_build_contexts_and_dockerfiles_exist(services: dict) -> None:
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert {"vllm", *PYTHON_SERVICES} <= set(built)
    for name, build in built.items():
        build = {"context": build} if isinstance(build, str) else build
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        assert context.is_dir(), f"{name}: build context {context} is missing"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for line in dockerfile.read_text().splitlines():
            parts = line.split()
            if parts and parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts):
                for src in parts[1:-1]:
                    if not src.startswith("--"):
                        assert (context / src).exists(), f"{name}: COPY source {src} is not in {context}"


def test_python_images_use_python_311_slim(services: dict) -> None:
    for name in PYTHON_SERVICES:
        dockerfile = ROOT / services[name]["build"]["dockerfile"]
        assert re.search(r"^FROM python:3\.11-slim\b", dockerfile.read_text(), re.M), name


def test_every_service_has_a_healthcheck(services: dict) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        test = check.get("test")
        assert test and test != ["NONE"], f"{name} has an empty healthcheck"


def test_healthchecks_probe_the_right_thing(services: dict) -> None:
    def text(name: str) -> str:
        test = services[name]["healthcheck"]["test"]
        return test if isinstance(test, str) else " ".join(test)

    assert "localhost:8000/health" in text("gateway")
    assert "localhost:8000/health" in text("vllm")
    assert "redis-cli ping" in text("redis")
    assert "pg_isready" in text("postgres")
    assert "services.worker.celery_app inspect ping" in text("worker")
    assert "services.trainer.celery_app inspect ping" in text("trainer")
    assert "localhost:9090/-/healthy" in text("prometheus")
    assert "localhost:3000/api/health" in text("grafana")


def test_depends_on_waits_for_healthy(services: dict) -> None:
    seen = 0
    for name, svc in services.items():
        deps = svc.get("depends_on")
        if deps is None:
            continue
        assert isinstance(deps, dict), f"{name}: depends_on must name a condition for each service"
        for dep, spec in deps.items():
            seen += 1
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {dep}"
    assert seen, "no service depends on another"
    assert {"postgres", "redis"} <= set(services["gateway"]["depends_on"])
    assert "gateway" in services["worker"]["depends_on"], "the worker must wait for the migrations"


def test_named_volumes_are_declared_and_used(compose: dict, services: dict) -> None:
    declared = set(compose.get("volumes") or {})
    assert VOLUMES <= declared, VOLUMES - declared
    used = set()
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
    assert VOLUMES <= used, f"declared but unused: {VOLUMES - used}"
    assert any(v.startswith("pgdata:/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert "models:/data/models" in services["vllm"]["volumes"]


@pytest.mark.parametrize("name", ["vllm", "trainer"])
def test_gpu_services_reserve_the_gpu(services: dict, name: str) -> None:
    devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), name


def test_the_worker_reaches_out_only_through_the_egress_proxy(compose: dict, services: dict) -> None:
    assert compose["networks"]["browser"]["internal"] is True
    worker = services["worker"]
    assert worker["networks"] == ["browser"], "the worker may have no route out but the egress proxy"
    assert worker["environment"]["SPARKPILOT_BROWSER_PROXY"] == "http://egress:3128"
    assert worker["depends_on"]["egress"]["condition"] == "service_healthy"
    egress = services["egress"]
    assert set(egress["networks"]) == {"default", "browser"}
    assert command_of(egress)[:3] == ["python", "-m", "services.egress"]
    assert egress["environment"]["SPARKPILOT_EGRESS_PORT"] == "3128"
    # Every service the worker talks to is on its network.
    for name in ("gateway", "vllm", "redis", "postgres"):
        assert "browser" in services[name]["networks"], name
    # The proxy holds no secret.
    assert not {"SPARKPILOT_ADMIN_TOKEN", "DATABASE_URL"} & set(egress["environment"]) and "env_file" not in egress
    assert "squid" in (ROOT / "services/worker/Dockerfile").read_text()


def test_only_gpu_services_reserve_the_gpu(services: dict) -> None:
    assert {n for n, s in services.items() if "deploy" in s} == {"vllm", "trainer"}


def test_images_of_backing_services(services: dict) -> None:
    assert services["redis"]["image"].split(":")[0] == "redis"
    assert services["redis"]["image"].split(":")[1].startswith("7")
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["postgres"]["image"].split(":")[1].startswith("16")


def test_python_services_point_at_the_compose_network(services: dict) -> None:
    for name in PYTHON_SERVICES:
        svc = services[name]
        env_file = svc.get("env_file")
        assert [".env", "config/compose.env"] == env_file, f"{name}: .env, then compose.env (which wins)"
        env = svc["environment"]
        assert env["SPARKPILOT_DEPLOYMENT"] == "prod", name
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert "@postgres:5432/" in env["DATABASE_URL"], name
        assert env["REDIS_URL"] == "redis://redis:6379/0", name
        assert env["SPARKPILOT_INFERENCE_URL"] == "http://vllm:8000/v1", name
    assert "SPARKPILOT_ADMIN_TOKEN" in INTERPOLATION.findall(services["gateway"]["environment"]["SPARKPILOT_ADMIN_TOKEN"])


SECRETS = ("SPARKPILOT_ADMIN_TOKEN", "SPARKPILOT_METRICS_TOKEN", "DATABASE_URL", "POSTGRES_PASSWORD",
           "GF_SECURITY_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "HF_TOKEN")


def test_each_secret_reaches_only_the_containers_that_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparkpilot.settings import InferenceSettings, TrainerSettings

    project = Compose(dotenv=read_env_file(TEMPLATE) | {"HF_TOKEN": "hf_secret", "GRAFANA_ADMIN_PASSWORD": "grafana-pw"})
    holders = {secret: {name for name in project.services if project.environment(name).get(secret)}
               for secret in SECRETS}
    assert holders == {
        "SPARKPILOT_ADMIN_TOKEN": {"gateway"},
        "SPARKPILOT_METRICS_TOKEN": {"gateway", "prometheus"},
        "DATABASE_URL": {"gateway", "worker", "trainer"},
        "POSTGRES_PASSWORD": {"postgres"},
        "GF_SECURITY_ADMIN_PASSWORD": {"grafana"},
        "GRAFANA_ADMIN_PASSWORD": set(),
        "HF_TOKEN": {"vllm", "trainer"},
    }
    prometheus = project.services["prometheus"]
    assert "env_file" not in prometheus and set(prometheus["environment"]) == {"SPARKPILOT_METRICS_TOKEN"}
    assert "$SPARKPILOT_METRICS_TOKEN\" > /prometheus/token" in command_of(prometheus)[0]
    # Without the admin token (or the database URL) every other service's settings still load.
    for name, cls in (("worker", WorkerSettings), ("trainer", TrainerSettings), ("vllm", InferenceSettings)):
        assert settings_in(project.environment(name), cls, monkeypatch).deployment == "prod", name


# ---------------------------------------------------------------- entry points


def test_gateway_command_runs_migrations_then_the_real_asgi_app(services: dict) -> None:
    cmd = command_of(services["gateway"])
    assert cmd[:2] == ["sh", "-c"], cmd
    inner = shlex.split(cmd[2])
    assert inner[:3] == ["sparkpilot", "db", "upgrade"], inner
    spec = inner[inner.index("uvicorn") + 1]
    assert spec == "services.gateway.main:app"
    assert callable(import_attr(spec))
    assert inner[inner.index("--host") + 1] == "0.0.0.0"
    assert inner[inner.index("--port") + 1] == "8000"
    assert "--no-proxy-headers" in inner  # X-Forwarded-For is never trusted


def test_sparkpilot_console_script_has_db_upgrade() -> None:
    from typer.testing import CliRunner

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "sparkpilot" in scripts
    cli = import_attr(scripts["sparkpilot"])
    result = CliRunner().invoke(cli, ["db", "upgrade", "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("service", "module"),
    [("worker", "services.worker.celery_app"), ("trainer", "services.trainer.celery_app")],
)
def test_celery_commands_name_real_apps(services: dict, service: str, module: str) -> None:
    from celery import Celery

    cmd = command_of(services[service])
    assert cmd[0] == "celery" and cmd[cmd.index("-A") + 1] == module
    assert "worker" in cmd
    # Queue, concurrency and log level come from the settings, not from flags that would shadow them.
    assert not {"-Q", "--queues", "-l", "--loglevel"} & set(cmd), cmd
    app = getattr(importlib.import_module(module), "app")
    assert isinstance(app, Celery)


def test_worker_consumes_the_queue_the_gateway_publishes_to() -> None:
    from services.worker.celery_app import app, settings
    from sparkpilot.settings import run_slots

    assert app.conf.task_default_queue == settings.queue_name
    assert app.conf.worker_concurrency == run_slots(settings)


def test_worker_concurrency_is_one_run_per_two_cores_unless_set(monkeypatch) -> None:  # noqa: ANN001
    from sparkpilot.settings import WorkerSettings, run_slots

    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(20)))  # the cores this process may use
    assert run_slots(WorkerSettings(concurrency=0)) == 10
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    assert run_slots(WorkerSettings(concurrency=0)) == 1
    assert run_slots(WorkerSettings(concurrency=3)) == 3


def test_trainer_app_is_configured_and_pings() -> None:
    from services.trainer.celery_app import app, ping

    assert app.conf.task_default_queue == "training"
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert ping.name == "sparkpilot.trainer.ping"
    assert ping.name in app.tasks
    result = ping.run()
    assert result["reply"] == "pong"
    assert set(result["versions"]) == {"torch", "transformers", "peft", "bitsandbytes", "unsloth"}
    assert all(v is None or isinstance(v, str) for v in result["versions"].values())


# ---------------------------------------------------------------- Dockerfiles: both architectures

# Base images published for linux/arm64 and linux/amd64 (Docker Hub official images; NVIDIA NGC's
# vLLM container is multi-arch, which is why the DGX Spark reference stack uses it).
# Prometheus and Grafana (the observability profile) publish both architectures too.
MULTI_ARCH_BASES = ("python:3.11-slim", "nvcr.io/nvidia/vllm:", "redis:7", "postgres:16", "prom/prometheus:",
                    "grafana/grafana:")


def dockerfiles() -> list[Path]:
    return sorted(ROOT.glob("services/*/Dockerfile"))


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_builds_on_arm64_and_amd64(path: Path) -> None:
    text = path.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    for base in re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", text, re.M):
        base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), base)
        assert base.startswith(MULTI_ARCH_BASES), f"{path}: base {base} is not known to exist for arm64"
    assert "--platform" not in text, f"{path} pins a platform"
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"amd64|x86_64|x64\b", code, re.I), f"{path} names an amd64-only artifact"


def test_compose_images_are_multi_arch() -> None:
    for name, svc in Compose().services.items():
        if "build" not in svc:
            assert svc["image"].startswith(MULTI_ARCH_BASES), name
        args = (svc.get("build") or {}).get("args") or {}
        for value in args.values():
            if "/" in str(value) and ":" in str(value):
                assert str(value).startswith(MULTI_ARCH_BASES), f"{name}: {value}"
        assert "platform" not in svc, f"{name} pins a platform"


def test_trainer_torch_index_has_aarch64_wheels() -> None:
    text = (ROOT / "services" / "trainer" / "Dockerfile").read_text()
    index = re.search(r"^ARG TORCH_INDEX_URL=(\S+)", text, re.M).group(1)
    # CUDA 12.8 wheels are the first with both x86_64 and aarch64 (DGX Spark) builds.
    assert index.rstrip("/").endswith(("cu128", "cu129", "cu130")), index


def test_worker_image_has_debian_chromium_where_settings_expect_it(services: dict) -> None:
    dockerfile = (ROOT / services["worker"]["build"]["dockerfile"]).read_text()
    assert re.search(r"apt-get install[^\n]*\bchromium\b", dockerfile)
    assert WorkerSettings.model_fields["chromium_path"].default == "/usr/bin/chromium"
    assert "/usr/bin/chromium" in dockerfile


def test_inference_image_runs_the_shared_serve_script() -> None:
    text = INFERENCE_DOCKERFILE.read_text()
    assert re.search(r'^ENTRYPOINT \["python3", "-m", "services.inference.serve"\]', text, re.M)
    for needed in ("sparkpilot/settings.py", "sparkpilot/profiles.py", "services/inference/serve.py", "config/models.json"):
        assert needed in text, needed
    assert "pydantic-settings" in text
    # serve.py imports nothing else from the project: the image holds only those files.
    imports = set(re.findall(r"^from (sparkpilot\.\w+|services\.\w+)", (ROOT / "services/inference/serve.py").read_text(), re.M))
    assert imports == {"sparkpilot.profiles", "sparkpilot.settings"}
    profiles_imports = set(re.findall(r"^from (sparkpilot\.\w+)", (ROOT / "sparkpilot/profiles.py").read_text(), re.M))
    assert profiles_imports <= {"sparkpilot.settings"}


def test_python_images_ship_the_model_profiles(services: dict) -> None:
    for name in PYTHON_SERVICES:
        assert "COPY config/ config/" in (ROOT / services[name]["build"]["dockerfile"]).read_text(), name


def test_dockerignore_keeps_context_small() -> None:
    entries = {l.strip().rstrip("/") for l in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".venv-inference", ".git", "workspace", "logs", "benchmark-results", ".env"} <= entries




def test_the_worker_runs_under_dockers_default_profile_plus_the_sandbox_calls(services: dict) -> None:
    import json

    from scripts.seccomp_profile import SANDBOX_CALLS

    opts = services["worker"]["security_opt"]
    assert "seccomp=./config/seccomp/worker.json" in opts and "seccomp=unconfined" not in opts
    assert "systempaths=unconfined" in opts  # bubblewrap's /proc (docs/security.md)
    profile = json.loads((ROOT / "config" / "seccomp" / "worker.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"  # a syscall not listed is refused
    ours = [r for r in profile["syscalls"] if "Sparkpilot" in r.get("comment", "")]
    assert ours == [profile["syscalls"][-1]] and ours[0]["names"] == SANDBOX_CALLS
    unconditional = {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("includes")
                     and not r.get("args") for n in r["names"]}
    assert not {"ptrace", "bpf", "keyctl", "kexec_load", "init_module", "perf_event_open"} & unconditional
