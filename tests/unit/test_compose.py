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

from sparkpilot.settings import CommonSettings, GatewaySettings, InferenceSettings, WorkerSettings
from tests.compose_model import COMPOSE_FILE, ROOT, TEMPLATE, Compose, read_env_file

COMPOSE_ENV = ROOT / "config" / "compose.env"
INFERENCE_DOCKERFILE = ROOT / "services" / "inference" / "Dockerfile"

SERVICES = {"vllm", "gateway", "worker", "trainer", "redis", "postgres"}
VOLUMES = {"workspace", "models", "adapters", "trajectories", "pgdata", "redisdata"}
PYTHON_SERVICES = ("gateway", "worker", "trainer")
SETTINGS_CLASSES = (CommonSettings, GatewaySettings, WorkerSettings, InferenceSettings)

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
    assert "models:/data/models" in services["vllm"]["volumes"]


@pytest.mark.parametrize("name", ["vllm", "trainer"])
def test_gpu_services_reserve_the_gpu(services: dict, name: str) -> None:
    devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), name


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

    assert app.conf.task_default_queue == settings.queue_name
    assert app.conf.worker_concurrency == settings.concurrency


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


# ---------------------------------------------------------------- one source of truth for configuration


def all_setting_names() -> set[str]:
    return set().union(*(env_names(cls) for cls in SETTINGS_CLASSES))


def settings_in(env: dict[str, str], cls: type, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """`cls` as it would load inside a container with environment `env` (no .env file of this machine)."""
    for name in list(__import__("os").environ):
        if name.startswith("SPARKPILOT_") or name in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return cls(_env_file=None)


@pytest.fixture(scope="module")
def project() -> Compose:
    return Compose()


def test_compose_resolves_with_a_fresh_env(project: Compose) -> None:
    assert set(project.services) >= SERVICES
    with pytest.raises(ValueError, match="SPARKPILOT_ADMIN_TOKEN"):
        Compose(dotenv={"SPARKPILOT_ADMIN_TOKEN": ""})


def test_served_model_name_is_the_name_every_client_asks_for(project: Compose, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.inference.serve import vllm_command

    inference = settings_in(project.environment("vllm"), InferenceSettings, monkeypatch)
    cmd, _env = vllm_command(inference, version=(0, 11))
    served = cmd[cmd.index("--served-model-name") + 1]
    assert served == "microsoft/Fara-7B"
    assert cmd[cmd.index("--model") + 1] == served, "compose downloads the model by the name it serves"
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and cmd[cmd.index("--port") + 1] == "8000"
    for name, cls in (("gateway", GatewaySettings), ("worker", WorkerSettings), ("trainer", CommonSettings)):
        client = settings_in(project.environment(name), cls, monkeypatch)
        assert client.inference_model == served, name
        assert client.inference_url == "http://vllm:8000/v1", name
        # The gateway validates and evicts adapters with the limits vLLM was started with.
        assert str(client.max_loras) == cmd[cmd.index("--max-loras") + 1], name
        assert str(client.max_lora_rank) == cmd[cmd.index("--max-lora-rank") + 1], name


def test_switching_the_model_in_compose_env_reaches_server_and_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.inference.serve import vllm_command

    small = read_env_file(COMPOSE_ENV) | {"SPARKPILOT_INFERENCE_MODEL": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    project = Compose(compose_env=small)
    cmd, _ = vllm_command(settings_in(project.environment("vllm"), InferenceSettings, monkeypatch), version=(0, 11))
    assert cmd[cmd.index("--served-model-name") + 1] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "--limit-mm-per-prompt" not in cmd, "the text model gets no image limit"
    worker = settings_in(project.environment("worker"), WorkerSettings, monkeypatch)
    assert worker.inference_model == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_a_native_env_file_cannot_resize_the_compose_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """A .env from an older template set the native values outright; compose.env still wins."""
    native = read_env_file(TEMPLATE) | {"SPARKPILOT_INFERENCE_MODEL": "smollm2-135m-instruct", "SPARKPILOT_MAX_LORAS": "2",
                                        "SPARKPILOT_MAX_LORA_RANK": "8", "SPARKPILOT_DTYPE": "float32"}
    project = Compose(dotenv=native)
    for name in ("vllm", "gateway", "worker", "trainer"):
        env = project.environment(name)
        assert env["SPARKPILOT_INFERENCE_MODEL"] == "microsoft/Fara-7B", name
        assert (env["SPARKPILOT_MAX_LORAS"], env["SPARKPILOT_MAX_LORA_RANK"]) == ("4", "64"), name


def test_vllm_serves_fara_with_its_image_limit_and_memory_budget(project: Compose, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.inference.serve import vllm_command

    inference = settings_in(project.environment("vllm"), InferenceSettings, monkeypatch)
    cmd, env = vllm_command(inference, version=(0, 11))
    assert cmd[cmd.index("--dtype") + 1] == "bfloat16"
    assert 0 < float(cmd[cmd.index("--gpu-memory-utilization") + 1]) <= 0.6, "leave unified memory for training"
    assert int(cmd[cmd.index("--max-model-len") + 1]) >= 8192
    assert cmd[cmd.index("--limit-mm-per-prompt") + 1] == '{"image": 3}'
    assert "--enable-lora" in cmd and env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert cmd[cmd.index("--structured-outputs-config") + 1].startswith('{"backend": "xgrammar"')


def test_volumes_are_shared_at_one_path_between_writer_and_readers(project: Compose) -> None:
    by_volume: dict[str, list[tuple[str, str, bool]]] = {}
    for name in project.services:
        for source, target, ro in project.mounts(name):
            by_volume.setdefault(source, []).append((name, target, ro))
    for volume in ("models", "adapters", "workspace", "trajectories"):
        uses = by_volume[volume]
        paths = {target for _n, target, _ro in uses}
        assert len(paths) == 1, f"{volume} is mounted at several paths: {uses}"
        writers = [n for n, _t, ro in uses if not ro]
        assert writers, f"nothing writes the {volume} volume"
        assert len({n for n, _t, _ro in uses}) >= 2, f"{volume}: written by {writers} but read by no other service"


@pytest.mark.parametrize(("volume", "setting"), [("workspace", "workspace_dir"), ("adapters", "adapters_dir"),
                                                  ("trajectories", "trajectories_dir")])
def test_each_service_reads_its_folders_where_the_volume_is(project: Compose, monkeypatch: pytest.MonkeyPatch,
                                                             volume: str, setting: str) -> None:
    for name in PYTHON_SERVICES:
        mounted = {source: target for source, target, _ro in project.mounts(name)}
        if volume not in mounted:
            continue
        settings = settings_in(project.environment(name), CommonSettings, monkeypatch)
        assert str(getattr(settings, setting)) == mounted[volume], f"{name}: {setting}"


def test_models_volume_is_the_hugging_face_cache_of_vllm_and_trainer(project: Compose) -> None:
    for name in ("vllm", "trainer"):
        mounted = {source: target for source, target, _ro in project.mounts(name)}
        assert project.environment(name)["HF_HOME"] == mounted["models"], name


def test_adapters_are_written_by_the_trainer_and_read_only_elsewhere(project: Compose) -> None:
    modes = {name: ro for name in project.services for source, _t, ro in project.mounts(name) if source == "adapters"}
    assert modes == {"vllm": True, "gateway": True, "trainer": False}


def test_trajectories_are_written_by_the_worker_and_read_by_the_trainer(project: Compose) -> None:
    modes = {name: ro for name in project.services for source, _t, ro in project.mounts(name) if source == "trajectories"}
    assert modes == {"worker": False, "trainer": True}


# ---------------------------------------------------------------- .env.template and config/compose.env


def test_every_compose_variable_is_documented() -> None:
    used = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    assert {"SPARKPILOT_ADMIN_TOKEN", "POSTGRES_PASSWORD", "VLLM_IMAGE"} <= used
    missing = used - set(template_entries())
    assert not missing, f"add to .env.template: {sorted(missing)}"


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_setting_is_documented(cls: type) -> None:
    missing = env_names(cls) - set(template_entries())
    assert not missing, f"add to .env.template: {sorted(missing)}"


def test_every_template_entry_is_read_by_some_code() -> None:
    compose_vars = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    unread = set(template_entries()) - all_setting_names() - compose_vars
    assert not unread, f"documented but read by nothing: {sorted(unread)}"


def test_every_compose_env_entry_is_a_setting_with_a_comment() -> None:
    lines = COMPOSE_ENV.read_text().splitlines()
    entries = read_env_file(COMPOSE_ENV)
    assert {"SPARKPILOT_INFERENCE_MODEL", "SPARKPILOT_GPU_MEMORY_UTILIZATION", "SPARKPILOT_MAX_MODEL_LEN",
            "SPARKPILOT_MAX_LORAS", "SPARKPILOT_MAX_LORA_RANK", "SPARKPILOT_DTYPE"} <= set(entries)
    assert not set(entries) - all_setting_names(), f"not settings: {set(entries) - all_setting_names()}"
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z_]+=", line):
            assert lines[i - 1].startswith("#"), f"{line.split('=')[0]} needs its reasoning above it"


def test_the_template_marks_what_compose_sets_differently() -> None:
    """A setting compose.env sets to another value is commented out in the template (its native default shown)."""
    template = template_entries()
    for name, value in read_env_file(COMPOSE_ENV).items():
        commented, template_value, _i = template[name]
        assert commented or template_value == value, f"{name}: .env.template sets {template_value!r}, compose {value!r}"


def test_no_old_names_remain() -> None:
    text = "\n".join(p.read_text() for p in (TEMPLATE, COMPOSE_FILE, COMPOSE_ENV, INFERENCE_DOCKERFILE,
                                             ROOT / "README.md", ROOT / "ARCHITECTURE.md"))
    for old in ("SPARKPILOT_MODEL=", "SPARKPILOT_MODEL:", "VLLM_MAX_LORAS", "VLLM_DTYPE", "config/vllm.env",
                "SPARKPILOT_AGENT_COORDINATES"):
        assert old not in text, old


def test_every_template_entry_has_a_comment_above() -> None:
    lines = TEMPLATE.read_text().splitlines()
    for name, (_commented, _value, i) in template_entries().items():
        above = lines[i - 1].strip() if i else ""
        assert above.startswith("#") and not ASSIGNMENT.match(above.lstrip("# ")) or above.startswith("# ") and " " in above[2:], \
            f"{name} has no comment line above"


def test_admin_token_line_is_the_template_value() -> None:
    from sparkpilot.settings import TEMPLATE_ADMIN_TOKEN

    assert "SPARKPILOT_ADMIN_TOKEN=change-me" in TEMPLATE.read_text().splitlines()
    assert TEMPLATE_ADMIN_TOKEN == "change-me"


@pytest.mark.parametrize("cls", (GatewaySettings, WorkerSettings, InferenceSettings), ids=lambda c: c.__name__)
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
    assert checked >= 5


def test_commented_template_values_are_the_native_defaults() -> None:
    """A commented `# NAME=value` shows the native default: uncommenting it changes nothing."""
    fields = {name: (cls, field) for cls in SETTINGS_CLASSES for name, field in env_map(cls).items()}
    checked = 0
    for name, (commented, value, _i) in template_entries().items():
        if commented and name in fields and "/path/to" not in value and "://" not in value:
            cls, field = fields[name]
            default = cls.model_fields[field].default
            default = "" if default is None else default
            assert str(default).lower() == value.lower(), f"{name}: template says {value!r}, code {default!r}"
            checked += 1
    assert checked >= 8


# ---------------------------------------------------------------- Dockerfiles: both architectures

# Base images published for linux/arm64 and linux/amd64 (Docker Hub official images; NVIDIA NGC's
# vLLM container is multi-arch, which is why the DGX Spark reference stack uses it).
MULTI_ARCH_BASES = ("python:3.11-slim", "nvcr.io/nvidia/vllm:", "redis:7", "postgres:16")


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


def test_compose_images_are_multi_arch(project: Compose) -> None:
    for name, svc in project.services.items():
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


# ---------------------------------------------------------------- cross-check with a real compose binary


def test_resolver_agrees_with_docker_compose_config(tmp_path: Path) -> None:
    """Debian's docker-compose (v1; `scripts/setup.sh --test` installs it) resolves the same environments."""
    import shutil
    import subprocess

    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: run scripts/setup.sh --test"
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    fresh = TEMPLATE.read_text().replace("SPARKPILOT_ADMIN_TOKEN=change-me", "SPARKPILOT_ADMIN_TOKEN=a-real-secret")
    (tmp_path / ".env").write_text(fresh)
    out = subprocess.run([binary, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in __import__("os").environ.items()
                              if not k.startswith(("SPARKPILOT_", "POSTGRES_")) and k not in ("DATABASE_URL", "REDIS_URL")})
    assert out.returncode == 0, out.stderr
    real = yaml.safe_load(out.stdout)["services"]
    ours = Compose(dotenv=read_env_file(tmp_path / ".env"))
    assert set(real) == set(ours.services)
    for name, svc in real.items():
        theirs = {k: "" if v is None else str(v) for k, v in (svc.get("environment") or {}).items()}
        assert theirs == ours.environment(name), name
    assert real["vllm"]["environment"]["SPARKPILOT_INFERENCE_MODEL"] == "microsoft/Fara-7B"
    assert real["worker"]["depends_on"]["vllm"]["condition"] == "service_healthy"
