"""The model registry: versioned LoRA adapters, runtime loading into vLLM with LRU eviction, rollback.

Adapters are served to vLLM as `name@vN`; a plain `name` means the version its alias points at
(the promoted one: registration promotes by default, promote and rollback move it). Adapter folders
must lie inside the adapters folder (`SPARKPILOT_ADAPTERS_DIR`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sparkpilot.db.models import Adapter, AdapterAlias, AdapterStatus, BaseModelRow, utcnow
from sparkpilot.errors import Conflict, InvalidInput, NotFound
from sparkpilot.llm_client import InferenceError, InferenceUnavailable
from sparkpilot.redis_client import get_redis
from sparkpilot.settings import CommonSettings, get_settings

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass
class AdapterCheck:
    """What validation learned from an adapter folder."""

    rank: int
    base_model: str
    path: Path  # resolved, inside the adapters folder


def adapter_path(path: Path | str, adapters_dir: Path) -> Path:
    """The real (resolved) folder `path` names, relative to `adapters_dir` or absolute; InvalidInput outside it."""
    root = Path(adapters_dir).resolve()
    try:
        real = (root / path).resolve()  # an absolute `path` replaces `root`; symlinks are followed
        real.exists()  # raises for what the filesystem refuses to look up (e.g. a name too long)
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidInput(f"adapter path {str(path)!r} cannot be resolved: {exc}", code="adapter_path") from exc
    if real == root or not real.is_relative_to(root):
        raise InvalidInput(f"adapter path {str(path)!r} is outside the adapters folder {str(root)!r}",
                           code="adapter_path")
    return real


def check_adapter_dir(path: Path, base_model: str, max_rank: int, adapters_dir: Path) -> AdapterCheck:
    """Validate a PEFT LoRA folder inside `adapters_dir` for this server, or raise InvalidInput saying why."""
    path = adapter_path(path, adapters_dir)
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise InvalidInput(f"{path} has no adapter_config.json", code="adapter_invalid")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"adapter_config.json is not valid JSON: {exc}", code="adapter_invalid") from exc
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise InvalidInput(f"peft_type is {config.get('peft_type')!r}, only LORA is served", code="adapter_invalid")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise InvalidInput(f"{path} has no adapter weights ({' or '.join(WEIGHT_FILES)})", code="adapter_invalid")
    rank = int(config.get("r") or 0)
    if not 0 < rank <= max_rank:
        raise InvalidInput(f"adapter rank {rank} is above the server's max LoRA rank {max_rank}", code="adapter_rank")
    declared = str(config.get("base_model_name_or_path") or "")
    if not _same_base(declared, base_model):
        raise InvalidInput(f"adapter base model {declared!r} does not match the served base {base_model!r}",
                           code="adapter_base_mismatch")
    return AdapterCheck(rank=rank, base_model=declared, path=path)


def _same_base(declared: str, base_model: str) -> bool:
    """A base matches by name (any path ending in it) or by the served model's folder name."""
    names = {base_model.lower(), Path(base_model).name.lower()}
    return bool(declared) and (declared.lower() in names or Path(declared).name.lower() in names)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'name' → (name, None); 'name@v3' → (name, 3)."""
    name, sep, ver = ref.partition("@")
    if not sep:
        return name, None
    # A version is a database integer: at most 9 digits, so an overlong number is a 422, not an overflow.
    if not (ver.startswith("v") and ver[1:].isdigit() and len(ver) <= 10):
        raise InvalidInput(f"bad adapter reference {ref!r}; use NAME or NAME@vN", code="adapter_ref")
    return name, int(ver[1:])


def resolve(session: Session, ref: str) -> Adapter:
    """The adapter version `ref` names (plain names follow their alias)."""
    name, version = parse_ref(ref)
    if version is None:
        alias = session.get(AdapterAlias, name)
        if alias is None and session.scalar(select(Adapter.id).where(Adapter.name == name).limit(1)) is not None:
            raise NotFound(f"adapter {name!r} has no promoted version; name one as {name}@vN or promote it",
                           code="adapter_not_promoted")
        version = alias.version if alias else None
    row = session.scalar(select(Adapter).where(Adapter.name == name, Adapter.version == version)) if version else None
    if row is None:
        raise NotFound(f"adapter {ref!r} not found", code="adapter_not_found")
    return row


def is_current(session: Session, row: Adapter) -> bool:
    """True if `row` is the version its name's alias points at."""
    alias = session.get(AdapterAlias, row.name)
    return alias is not None and alias.version == row.version


def resolve_model(session: Session, ref: str | None, base_model: str, default_adapter: str) -> str:
    """The model a run uses: `ref` as served, else `default_adapter`'s promoted version, else the base."""
    if not ref:
        alias = session.get(AdapterAlias, default_adapter) if default_adapter else None
        return resolve(session, default_adapter).served_name if alias is not None else base_model
    if ref == base_model:
        return base_model
    return resolve(session, ref).served_name


def register(session: Session, name: str, path: Path | str, base_model: str, max_rank: int, source: str,
             adapters_dir: Path, promote: bool = True) -> Adapter:
    """Validate and add the next version of `name`; the alias moves to it if `promote`."""
    check = check_adapter_dir(Path(path), base_model, max_rank, adapters_dir)
    latest = session.scalar(select(func.max(Adapter.version)).where(Adapter.name == name)) or 0
    row = Adapter(name=name, version=latest + 1, base_model=check.base_model, path=str(check.path), rank=check.rank,
                  source=source)
    session.add(row)
    if promote:
        _point_alias(session, name, row.version)
    session.flush()
    return row


def register_base(session: Session, name: str, path: Path, source: str) -> BaseModelRow:
    """Record a servable model folder (config + weights) as a base; re-registering a name points it at `path`."""
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise InvalidInput(f"{path} is not a model folder (config.json and *.safetensors)", code="model_invalid")
    row = session.scalar(select(BaseModelRow).where(BaseModelRow.name == name))
    if row is None:
        row = BaseModelRow(name=name, path=str(path), source=source)
        session.add(row)
    else:
        row.path, row.source = str(path), source
    session.flush()
    return row


def promote(session: Session, ref: str) -> Adapter:
    """Point the alias of `ref`'s name at the version `ref` names (NAME@vN, or NAME: a no-op)."""
    row = resolve(session, ref)
    if row.status is AdapterStatus.failed:
        raise Conflict(f"adapter {row.served_name} failed to load ({row.error}); load it before promoting it",
                       code="adapter_failed")
    _point_alias(session, row.name, row.version)
    session.flush()
    return row


def _point_alias(session: Session, name: str, version: int) -> None:
    alias = session.get(AdapterAlias, name)
    if alias is None:
        session.add(AdapterAlias(name=name, version=version))
    else:
        alias.version, alias.updated_at = version, utcnow()


def rollback(session: Session, name: str) -> Adapter:
    """Point `name` at the newest version older than the current one that has not failed."""
    current = resolve(session, name)
    previous = session.scalar(
        select(Adapter)
        .where(Adapter.name == name, Adapter.version < current.version, Adapter.status != AdapterStatus.failed)
        .order_by(Adapter.version.desc())
    )
    if previous is None:
        raise Conflict(f"adapter {name!r} has no earlier version to roll back to", code="no_previous_version")
    _point_alias(session, name, previous.version)
    session.flush()
    return previous


class AdapterCache:
    """Keeps loaded adapters within max_loras on the vLLM server, evicting the least recently used."""

    def __init__(self, vllm_base: str, max_loras: int, client: redis.Redis, timeout_s: float = 120.0) -> None:
        self.vllm_base = vllm_base.rstrip("/").removesuffix("/v1")
        self.max_loras = max_loras
        self.redis = client
        self.timeout_s = timeout_s

    @property
    def _stats_key(self) -> str:
        return get_settings().key("models", "cache")

    def stats(self) -> dict[str, int]:
        """Hit, miss and eviction counters."""
        raw = self.redis.hgetall(self._stats_key)
        return {k: int(raw.get(k.encode(), 0)) for k in ("hits", "misses", "evictions")}

    def _count(self, what: str) -> None:
        self.redis.hincrby(self._stats_key, what, 1)

    def _post(self, path: str, body: dict) -> None:
        try:
            resp = httpx.post(self.vllm_base + path, json=body, timeout=self.timeout_s)
        except httpx.TransportError as exc:
            raise InferenceUnavailable(f"model server unreachable: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500:
            raise InferenceUnavailable(f"model server error {resp.status_code}: {resp.text[:300]}")
        if resp.status_code >= 400:
            raise InferenceError(f"{path} refused: {resp.text[:500]}")

    def served(self) -> set[str]:
        """Model and adapter names the server has right now."""
        try:
            resp = httpx.get(self.vllm_base + "/v1/models", timeout=10)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise InferenceUnavailable(f"model server unreachable: {type(exc).__name__}: {exc}") from exc
        return {m["id"] for m in resp.json().get("data", [])}

    def load(self, session: Session, row: Adapter) -> bool:
        """Make sure `row` is loaded (evicting LRU ones past max_loras); True on a cache hit."""
        row.last_used_at = utcnow()
        served = self.served()
        # A restarted server forgets its adapters: trust what it serves, not what we recorded.
        for stale in session.scalars(select(Adapter).where(Adapter.status == AdapterStatus.loaded)):
            if stale.served_name not in served:
                stale.status = AdapterStatus.registered
        if row.status is AdapterStatus.loaded:
            self._count("hits")
            session.flush()
            return True
        self._count("misses")
        loaded = session.scalars(
            select(Adapter).where(Adapter.status == AdapterStatus.loaded).order_by(Adapter.last_used_at.asc())
        ).all()
        for victim in loaded[: max(0, len(loaded) - self.max_loras + 1)]:
            self.unload(session, victim)
            self._count("evictions")
        try:
            self._post("/v1/load_lora_adapter", {"lora_name": row.served_name, "lora_path": row.path})
        except InferenceError as exc:
            row.status, row.error = AdapterStatus.failed, exc.message
            session.flush()
            raise
        row.status, row.error = AdapterStatus.loaded, None
        session.flush()
        return False

    def unload(self, session: Session, row: Adapter) -> None:
        """Unload `row` from the server (a no-op if it is not loaded)."""
        if row.status is AdapterStatus.loaded:
            self._post("/v1/unload_lora_adapter", {"lora_name": row.served_name})
        if row.status is not AdapterStatus.failed:
            row.status = AdapterStatus.registered
        session.flush()


def adapter_cache(settings: CommonSettings) -> AdapterCache:
    """The cache for the configured model server."""
    return AdapterCache(settings.inference_url, settings.max_loras, get_redis(), settings.inference_timeout_s)


def registry_lock(settings: CommonSettings):  # noqa: ANN201 - a redis Lock
    """One registry mutation at a time across processes (gateways, workers): the LRU bookkeeping is not atomic."""
    return get_redis().lock(settings.key("models", "lock"), timeout=300, blocking_timeout=300)


def ensure_loaded(ref: str, settings: CommonSettings) -> str:
    """Load the adapter version `ref` names into vLLM if it is not (evicting LRU ones); its served name."""
    from sparkpilot.db.session import session_scope

    with registry_lock(settings), session_scope() as s:
        row = resolve(s, ref)
        adapter_cache(settings).load(s, row)
        return row.served_name
