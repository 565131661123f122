"""One source of truth for configuration: names, .env.template, config/compose.env, volumes, the served model.

docker-compose.yml is resolved by tests/compose_model.py as compose would (interpolation from .env,
env files in order, `environment:` last) and cross-checked against a real `docker-compose config`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sparkpilot.settings import CommonSettings, GatewaySettings, InferenceSettings, WorkerSettings
from tests.compose_model import (ASSIGNMENT, COMPOSE_ENV, COMPOSE_FILE, INTERPOLATION, ROOT, SETTINGS_CLASSES, TEMPLATE,
                                 Compose, all_setting_names, env_map, env_names, read_env_file, settings_in,
                                 template_entries)

PYTHON_SERVICES = ("gateway", "worker", "trainer")
SERVICES = {"vllm", "gateway", "worker", "trainer", "redis", "postgres"}
INFERENCE_DOCKERFILE = ROOT / "services" / "inference" / "Dockerfile"


# ---------------------------------------------------------------- one source of truth for configuration


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
        assert above.startswith("#") and not ASSIGNMENT.match(above), f"{name} has no comment line above"


def test_admin_token_line_is_the_template_value() -> None:
    from sparkpilot.settings import TEMPLATE_ADMIN_TOKEN

    assert "SPARKPILOT_ADMIN_TOKEN=change-me" in TEMPLATE.read_text().splitlines()
    assert TEMPLATE_ADMIN_TOKEN == "change-me"


@pytest.mark.parametrize("cls", (GatewaySettings, WorkerSettings, InferenceSettings), ids=lambda c: c.__name__)
def test_template_values_parse(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in env_names(cls):
        monkeypatch.delenv(name, raising=False)
    settings = cls(_env_file=TEMPLATE)
    assert settings.deployment == "dev"
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


# ---------------------------------------------------------------- cross-check with a real compose binary


def test_resolver_agrees_with_docker_compose_config(tmp_path: Path) -> None:
    """Debian's docker-compose (v1; `scripts/setup.sh --test` installs it) resolves the same environments."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: run scripts/setup.sh --test"
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    fresh = TEMPLATE.read_text().replace("SPARKPILOT_ADMIN_TOKEN=change-me", "SPARKPILOT_ADMIN_TOKEN=a-real-secret-of-enough-length")
    fresh = fresh.replace("POSTGRES_PASSWORD=sparkpilot", "POSTGRES_PASSWORD=0a1b2c3d4e5f")  # as make up writes it
    fresh = fresh.replace("SPARKPILOT_METRICS_TOKEN=\n", "SPARKPILOT_METRICS_TOKEN=sp_metrics_of_enough_length\n")
    (tmp_path / ".env").write_text(fresh)
    out = subprocess.run([binary, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in __import__('os').environ.items()
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
