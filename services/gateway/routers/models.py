"""Model registry and direct inference: base model, versioned LoRA adapters, LRU-loaded into vLLM.

Reads (GET /models, GET /models/cache, POST /inference) take any token; registry writes need an admin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from sqlalchemy import select

from services.gateway.deps import DB, AdminUser, CurrentUser, Settings
from sparkpilot import audit, registry
from sparkpilot.db.models import Adapter, AdapterAlias, AdapterStatus, BaseModelRow
from sparkpilot.errors import NotFound
from sparkpilot.llm_client import LLMClient
from sparkpilot.profiles import served_profile
from sparkpilot.schemas import AdapterCreate, CachePublic, InferenceRequest, InferenceResult, ModelPublic
from sparkpilot.settings import GatewaySettings

router = APIRouter(prefix="/api/v1", tags=["models"])


def _public(row: Adapter, current: bool) -> ModelPublic:
    return ModelPublic(name=row.served_name, kind="adapter", version=row.version, base=row.base_model,
                       status=row.status.value, current=current, rank=row.rank, source=row.source,
                       created_at=row.created_at, last_used_at=row.last_used_at, error=row.error)


@router.get("/models", response_model=list[ModelPublic])
def list_models(db: DB, _user: CurrentUser, settings: Settings) -> list[ModelPublic]:
    """The base model and every registered adapter version."""
    aliases = {a.name: a.version for a in db.scalars(select(AdapterAlias))}
    rows = db.scalars(select(Adapter).order_by(Adapter.name, Adapter.version)).all()
    profile = served_profile(settings).model_dump(include={"input", "actions", "answer"})
    base = ModelPublic(name=settings.inference_model, kind="base", status="loaded", current=True, source="served")
    # Other servable bases (merged adapters): registered, not served; serve one with SPARKPILOT_MODEL_DIR=path.
    others = [ModelPublic(name=b.name, kind="base", status="available", source=b.source, path=b.path,
                          created_at=b.created_at)
              for b in db.scalars(select(BaseModelRow).order_by(BaseModelRow.name)) if b.name != settings.inference_model]
    adapters = (_public(r, aliases.get(r.name) == r.version) for r in rows)
    return [m.model_copy(update=profile) for m in (base, *adapters)] + others


@router.post("/models/adapters", status_code=201, response_model=ModelPublic)
def register_adapter(body: AdapterCreate, db: DB, admin: AdminUser, settings: Settings) -> ModelPublic:
    """Register the next version of an adapter folder (validated; 422 with the reason otherwise)."""
    with registry.registry_lock(settings):
        row = registry.register(db, body.name, Path(body.path), settings.inference_model, settings.max_lora_rank,
                                body.source, settings.adapters_dir, promote=body.promote)
        audit.record(db, admin, "adapter.registered", "adapter", row.served_name, promote=body.promote, source=body.source)
        db.commit()
    return _public(row, registry.is_current(db, row))


@router.post("/models/adapters/{ref}/load", response_model=ModelPublic)
def load_adapter(ref: str, db: DB, admin: AdminUser, settings: Settings) -> ModelPublic:
    """Load an adapter (NAME or NAME@vN) into vLLM, evicting the least recently used past max_loras."""
    with registry.registry_lock(settings):
        row = registry.resolve(db, ref)
        audit.record(db, admin, "adapter.load", "adapter", row.served_name)  # the attempt, kept even if it fails
        try:
            registry.adapter_cache(settings).load(db, row)
        finally:
            db.commit()
    return _public(row, registry.is_current(db, row))


@router.post("/models/adapters/{ref}/unload", response_model=ModelPublic)
def unload_adapter(ref: str, db: DB, admin: AdminUser, settings: Settings) -> ModelPublic:
    """Unload an adapter from vLLM; it stays registered."""
    with registry.registry_lock(settings):
        row = registry.resolve(db, ref)
        registry.adapter_cache(settings).unload(db, row)
        audit.record(db, admin, "adapter.unloaded", "adapter", row.served_name)
        db.commit()
    return _public(row, registry.is_current(db, row))


@router.post("/models/adapters/{name}/rollback", response_model=ModelPublic)
def rollback_adapter(name: str, db: DB, admin: AdminUser, settings: Settings) -> ModelPublic:
    """Point NAME's traffic at its previous version."""
    with registry.registry_lock(settings):
        row = registry.rollback(db, name)
        audit.record(db, admin, "adapter.rolled_back", "adapter", row.served_name)
        db.commit()
    return _public(row, True)


@router.post("/models/adapters/{ref}/promote", response_model=ModelPublic)
def promote_adapter(ref: str, db: DB, admin: AdminUser, settings: Settings) -> ModelPublic:
    """Point NAME's traffic (plain NAME, new runs) at the version `ref` (NAME@vN) names."""
    with registry.registry_lock(settings):
        row = registry.promote(db, ref)
        audit.record(db, admin, "adapter.promoted", "adapter", row.served_name)
        db.commit()
    return _public(row, True)


@router.get("/models/cache", response_model=CachePublic)
def cache_state(db: DB, _user: CurrentUser, settings: Settings) -> CachePublic:
    """Loaded adapters and the cache counters."""
    loaded = db.scalars(select(Adapter).where(Adapter.status == AdapterStatus.loaded)
                        .order_by(Adapter.last_used_at.desc())).all()
    return CachePublic(max_loras=settings.max_loras, loaded=[r.served_name for r in loaded], **registry.adapter_cache(settings).stats())


_client: LLMClient | None = None


def shared_client(settings: GatewaySettings) -> LLMClient:
    """One policy client (connection pool) for the gateway process, made on first use."""
    global _client
    if _client is None:
        _client = LLMClient(settings.inference_url, settings.inference_model, settings.inference_timeout_s,
                               settings.inference_retries)
    return _client


async def close_shared_client() -> None:
    """Close the shared client (app shutdown)."""
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None


@router.post("/inference", response_model=InferenceResult)
async def direct_inference(body: InferenceRequest, _user: CurrentUser, settings: Settings) -> InferenceResult:
    """One completion from the base model, a named model, or an adapter (loaded on demand)."""
    from starlette.concurrency import run_in_threadpool

    served, adapter = settings.inference_model, None
    if body.model and body.model != settings.inference_model:
        raise NotFound(f"model {body.model!r} is not served; GET /api/v1/models lists what is", code="model_not_found")
    if body.adapter:
        served = adapter = await run_in_threadpool(registry.ensure_loaded, body.adapter, settings)
    messages = body.messages or [{"role": "user", "content": body.prompt}]
    out = await shared_client(settings).complete(messages, model=served, max_tokens=body.max_tokens,
                                                 temperature=body.temperature)
    m = out.metrics
    return InferenceResult(text=out.text, model=m.model, adapter=adapter, latency_ms=m.latency_ms, ttft_ms=m.ttft_ms,
                           prompt_tokens=m.prompt_tokens, completion_tokens=m.completion_tokens,
                           finish_reason=out.finish_reason)
