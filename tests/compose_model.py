"""docker-compose.yml resolved as `docker compose config` would, without a Docker engine (for the static tests).

Compose reads `.env` for ${VAR} interpolation and loads each service's env_file list in order,
then its `environment:` (which wins). A fresh machine's .env is .env.template with a real
admin token, metrics token and database password, so the template stands in for it here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkpilot.settings import (CommonSettings, EgressSettings, GatewaySettings, InferenceSettings, TrainerSettings,
                                 WorkerSettings)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_ENV = ROOT / "config" / "compose.env"
TEMPLATE = ROOT / ".env.template"
SETTINGS_CLASSES = (CommonSettings, GatewaySettings, WorkerSettings, InferenceSettings, TrainerSettings, EgressSettings)

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR:+alt}; `$$` is an escaped `$`.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of an env file (comments and blank lines skipped, no quotes processing needed here)."""
    out = {}
    for line in path.read_text().splitlines():
        m = _ASSIGN.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's variable substitution, recursively; a `:?` with the variable unset raises ValueError."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        current = variables.get(name)
        unset_or_empty = not current
        if op == ":-":
            return arg if unset_or_empty else current
        if op == "-":
            return arg if current is None else current
        if op in (":?", "?"):
            if (unset_or_empty if op == ":?" else current is None):
                raise ValueError(f"{name}: {arg}")
            return current
        if op == ":+":
            return "" if unset_or_empty else arg
        return current or ""

    return _VAR.sub(sub, value)


class Compose:
    """The resolved compose project: services, their environments and volumes."""

    def __init__(self, dotenv: dict[str, str] | None = None, compose_env: dict[str, str] | None = None) -> None:
        self.compose_env = compose_env  # replaces config/compose.env's content when given
        self.dotenv = dict(read_env_file(TEMPLATE) if dotenv is None else dotenv)
        self.dotenv.setdefault("SPARKPILOT_ADMIN_TOKEN", "x" * 24)
        if self.dotenv["SPARKPILOT_ADMIN_TOKEN"] == "change-me":
            self.dotenv["SPARKPILOT_ADMIN_TOKEN"] = "a-real-secret-made-by-make-up"
        if not self.dotenv.get("SPARKPILOT_METRICS_TOKEN"):  # make up writes a random one
            self.dotenv["SPARKPILOT_METRICS_TOKEN"] = "a-metrics-token-made-by-make-up"
        if self.dotenv.get("POSTGRES_PASSWORD", "sparkpilot") == "sparkpilot":  # make up writes a random one
            self.dotenv["POSTGRES_PASSWORD"] = "a-random-password-made-by-make-up"
        self.raw = yaml.safe_load(COMPOSE_FILE.read_text())
        self.data = interpolate(self.raw, self.dotenv)
        self.services: dict[str, dict[str, Any]] = self.data["services"]

    def env_files(self, name: str) -> list[Path]:
        """The service's env_file entries as paths."""
        files = self.services[name].get("env_file") or []
        files = [files] if isinstance(files, (str, dict)) else files
        return [ROOT / (f["path"] if isinstance(f, dict) else f) for f in files]

    def environment(self, name: str) -> dict[str, str]:
        """What the container's environment holds: env files in order, then `environment:`."""
        env: dict[str, str] = {}
        for f in self.env_files(name):
            if f.name == ".env":
                env.update(self.dotenv)
            elif f.name == "compose.env" and self.compose_env is not None:
                env.update(self.compose_env)
            else:
                env.update(read_env_file(f))
        block = self.services[name].get("environment") or {}
        if isinstance(block, list):
            block = dict(item.split("=", 1) for item in block)
        env.update({k: "" if v is None else str(v) for k, v in block.items()})
        return env

    def mounts(self, name: str) -> list[tuple[str, str, bool]]:
        """(source, target, read_only) of each volume mount."""
        out = []
        for vol in self.services[name].get("volumes", []):
            if isinstance(vol, str):
                parts = vol.split(":")
                out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
            else:
                out.append((vol["source"], vol["target"], bool(vol.get("read_only"))))
        return out


# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR:+alt}; `$${...}` is an escape.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:]?[-?+][^}]*)?\}")
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


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
        if field.exclude:  # not a setting: the refusal of a renamed one (e.g. SPARKPILOT_ENV)
            continue
        alias = field.validation_alias
        out[alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper()] = name
    return out


def env_names(cls: type) -> set[str]:
    return set(env_map(cls))


def all_setting_names() -> set[str]:
    return set().union(*(env_names(cls) for cls in SETTINGS_CLASSES))


def settings_in(env: dict[str, str], cls: type, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """`cls` as it would load inside a container with environment `env` (no .env file of this machine)."""
    for name in list(os.environ):
        if name.startswith("SPARKPILOT_") or name in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return cls(_env_file=None)
