"""Static checks of docker-compose.yml, the Dockerfiles, .env.template and config/vllm.env.

No Docker engine is needed (nor used): the compose file is parsed with PyYAML and every
reference in it is checked against the tree, the Python entry points and the settings classes.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from sparkpilot.settings import CommonSettings, GatewaySettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
TEMPLATE = ROOT / ".env.template"
VLLM_ENV = ROOT / "config" / "vllm.env"
INFERENCE_DOCKERFILE = ROOT / "services" / "inference" / "Dockerfile"

SERVICES = {"vllm", "gateway", "worker", "trainer", "redis", "postgres"}
VOLUMES = {"workspace", "models", "adapters", "trajectories", "pgdata"}
PYTHON_SERVICES = ("gateway", "worker", "trainer")
SETTINGS_CLASSES = (CommonSettings, GatewaySettings, WorkerSettings)

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR:+alt}; `$${...}` is an escape.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:]?[-?+][^}]*)?\}")
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def template_entries(text: str | None = None) -> dict[str, tuple[bool, str, int]]:
    """NAME -> (commented_out, value, line index) for every `NAME=` or `# NAME=` line."""
    lines = (TEMPLATE.read_text() if text is None else text).splitlines()
    out: dict[str, tuple[bool, str, int]] = {}
    for i, line in enumerate(lines):
        m = ASSIGNMENT.match(line.strip())
        if m:
            out[m.group(2)] = (bool(m.group(1)), m.group(3), i)
    return out


def env_map(cls: type) -> dict[str, str]:
    """Environment variable -> field name, for every field of a settings class."""
    prefix = cls.model_config.get("env_prefix", "")
    out = {}
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        out[alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper()] = name
    return out


def env_names(cls: type) -> set[str]:
    return set(env_map(cls))


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
    assert {"DATABASE_URL", "REDIS_URL", "SPARKPILOT_ENV", "SPARKPILOT_QUEUE_NAME"} <= names
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
    assert any(v.startswith("models:") and "huggingface" in v for v in services["vllm"]["volumes"])


def test_vllm_gets_the_gpu(services: dict) -> None:
    vllm = services["vllm"]
    assert vllm.get("runtime") == "nvidia"
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


def test_images_of_backing_services(services: dict) -> None:
    assert services["redis"]["image"].split(":")[0] == "redis"
    assert services["redis"]["image"].split(":")[1].startswith("7")
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["postgres"]["image"].split(":")[1].startswith("16")


def test_python_services_point_at_the_compose_network(services: dict) -> None:
    for name in PYTHON_SERVICES:
        svc = services[name]
        env_file = svc.get("env_file")
        assert ".env" in ([env_file] if isinstance(env_file, str) else env_file), name
        env = svc["environment"]
        assert env["SPARKPILOT_ENV"] == "prod", name
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert "@postgres:5432/" in env["DATABASE_URL"], name
        assert env["REDIS_URL"] == "redis://redis:6379/0", name
        assert env["SPARKPILOT_INFERENCE_URL"] == "http://vllm:8000/v1", name
        assert "SPARKPILOT_ADMIN_TOKEN" in INTERPOLATION.findall(str(env["SPARKPILOT_ADMIN_TOKEN"])), name


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


def test_sparkpilot_console_script_has_db_upgrade() -> None:
    from typer.testing import CliRunner

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "sparkpilot" in scripts
    cli = import_attr(scripts["sparkpilot"])
    result = CliRunner().invoke(cli, ["db", "upgrade", "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("service", "module", "queue"),
    [
        ("worker", "services.worker.celery_app", "${SPARKPILOT_QUEUE_NAME:-runs}"),
        ("trainer", "services.trainer.celery_app", "training"),
    ],
)
def test_celery_commands_name_real_apps(services: dict, service: str, module: str, queue: str) -> None:
    from celery import Celery

    raw = services[service]["command"]
    cmd = command_of(services[service])
    assert cmd[0] == "celery" and cmd[cmd.index("-A") + 1] == module
    assert "worker" in cmd
    assert queue in (raw if isinstance(raw, str) else " ".join(raw))
    assert isinstance(getattr(importlib.import_module(module), "app"), Celery)


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
    assert set(result["versions"]) == {"torch", "transformers", "peft"}
    assert all(v is None or isinstance(v, str) for v in result["versions"].values())


# ---------------------------------------------------------------- .env.template


def test_every_compose_variable_is_documented() -> None:
    used = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    assert {"SPARKPILOT_QUEUE_NAME", "SPARKPILOT_CONCURRENCY", "SPARKPILOT_ADMIN_TOKEN"} <= used
    missing = used - set(template_entries())
    assert not missing, f"add to .env.template: {sorted(missing)}"


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_setting_is_documented(cls: type) -> None:
    missing = env_names(cls) - set(template_entries())
    assert not missing, f"add to .env.template: {sorted(missing)}"


def test_every_template_entry_has_a_comment_above() -> None:
    lines = TEMPLATE.read_text().splitlines()
    for name, (_commented, _value, i) in template_entries().items():
        above = lines[i - 1].strip() if i else ""
        assert above.startswith("#") and not ASSIGNMENT.match(above), f"{name} has no comment line above"


def test_admin_token_line_is_the_template_value() -> None:
    from sparkpilot.settings import TEMPLATE_ADMIN_TOKEN

    assert "SPARKPILOT_ADMIN_TOKEN=change-me" in TEMPLATE.read_text().splitlines()
    assert TEMPLATE_ADMIN_TOKEN == "change-me"


@pytest.mark.parametrize("cls", (GatewaySettings, WorkerSettings), ids=lambda c: c.__name__)
def test_template_values_parse(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in env_names(cls):
        monkeypatch.delenv(name, raising=False)
    settings = cls(_env_file=TEMPLATE)
    assert settings.env == "dev"
    fields = env_map(cls)
    checked = 0
    for name, (commented, value, _i) in template_entries().items():
        if not commented and name in fields and value:
            checked += 1
            assert str(getattr(settings, fields[name])).lower() == value.lower(), name
    assert checked >= 10


# ---------------------------------------------------------------- Dockerfiles and vLLM config


def test_worker_image_has_debian_chromium_where_settings_expect_it(services: dict) -> None:
    dockerfile = (ROOT / services["worker"]["build"]["dockerfile"]).read_text()
    assert re.search(r"apt-get install[^\n]*\bchromium\b", dockerfile)
    assert WorkerSettings.model_fields["chromium_path"].default == "/usr/bin/chromium"
    assert "/usr/bin/chromium" in dockerfile
    assert re.search(r"pip install", dockerfile)


def test_inference_image_serves_with_lora() -> None:
    text = INFERENCE_DOCKERFILE.read_text()
    assert re.search(r"^FROM vllm/vllm-openai[:@]", text, re.M)
    assert "--enable-lora" in text
    assert re.search(r"--max-loras \\?\"?\$\{VLLM_MAX_LORAS\}", text)
    assert re.search(r"--max-lora-rank \\?\"?\$\{VLLM_MAX_LORA_RANK\}", text)
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in text
    assert "${SPARKPILOT_MODEL:-microsoft/Fara-7B}" in text


def test_vllm_config_is_documented_and_wired(services: dict) -> None:
    lines = VLLM_ENV.read_text().splitlines()
    entries = {m.group(1): (i, m.group(2)) for i, l in enumerate(lines) if (m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", l))}
    required = {"VLLM_DTYPE", "VLLM_MAX_MODEL_LEN", "VLLM_GPU_MEMORY_UTILIZATION", "VLLM_MAX_LORAS", "VLLM_MAX_LORA_RANK"}
    assert required <= set(entries), required - set(entries)
    dockerfile = INFERENCE_DOCKERFILE.read_text()
    for name, (i, value) in entries.items():
        assert lines[i - 1].startswith("#"), f"{name} needs a comment"
        assert "${" + name + "}" in dockerfile, f"{name} is not used by the inference Dockerfile"
        assert re.search(rf"\b{name}={re.escape(value)}(\s|$)", dockerfile), f"{name}: default differs"
    assert 0 < float(entries["VLLM_GPU_MEMORY_UTILIZATION"][1]) < 1
    assert int(entries["VLLM_MAX_LORAS"][1]) >= 1 and int(entries["VLLM_MAX_LORA_RANK"][1]) >= 8
    env_file = services["vllm"]["env_file"]
    assert "config/vllm.env" in ([env_file] if isinstance(env_file, str) else env_file)


def test_dockerignore_keeps_context_small() -> None:
    entries = {l.strip().rstrip("/") for l in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".git", "workspace", "logs", "benchmark-results", ".env"} <= entries
