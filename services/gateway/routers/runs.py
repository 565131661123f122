"""REST endpoints for runs and their steps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.gateway.deps import CurrentUser, DB, MAX_INT, Offset, Settings
from sparkpilot import audit, registry, run_files, runs
from sparkpilot.db.models import Agent, Run, RunStatus, Step, User
from sparkpilot.errors import Conflict, NotFound
from sparkpilot.events import publish
from sparkpilot.redis_client import get_redis
from sparkpilot.queue import enqueue_run
from sparkpilot.schemas import Paginated, RunCreate, RunFilePublic, RunPublic, StepPublic
from sparkpilot.settings import GatewaySettings
from sparkpilot.trajectory import TrajectoryStep, run_records
from sparkpilot.urls import check_start_url

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])
NO_NUL = r"^[^\x00]*$"  # PostgreSQL refuses NUL in text: a 422 here, not a database error


@router.post("", status_code=201, response_model=RunPublic)
def create_run(body: RunCreate, db: DB, user: CurrentUser, settings: Settings) -> Run:
    """Create a run and queue it; 404 for an unknown model, 503 (and nothing stored) if the queue is down."""
    return submit_run(db, user, body, settings)


def submit_run(db: Session, user: User, body: RunCreate, settings: GatewaySettings, agent: Agent | None = None) -> Run:
    """Validate, store and queue a run (of `agent`, if given); nothing is left behind if queueing fails."""
    if body.start_url:
        body.start_url = check_start_url(body.start_url)
    max_steps = runs.step_budget(body.max_steps, settings.default_max_steps, settings.max_steps_limit)
    client = get_redis()
    client.ping()  # fail fast with 503 before touching the database
    others = runs.check_quota(db, user, settings.max_active_runs_per_user)
    model = registry.resolve_model(db, body.model, settings.inference_model, settings.agent_adapter)
    run, events = runs.create_run(db, user, body, model, max_steps, agent)
    db.commit()
    try:
        enqueue_run(run.id, runs.queue_priority(others))
    except Exception:
        db.delete(run)  # nothing half-made is left behind
        db.commit()
        raise
    # Recorded once the run is really queued: the audit log is append-only, so it never names a run that was undone.
    audit.record(db, user, "run.created", "run", run.id, mode=run.mode, model=run.model,
                 **({"agent_id": agent.id, "agent_version": agent.version} if agent else {}))
    db.commit()
    publish(client, events)
    return run


@router.get("", response_model=Paginated[RunPublic])
def list_runs(
    db: DB,
    user: CurrentUser,
    status: RunStatus | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=500, pattern=NO_NUL,
                                   description="text in the task (any case)")] = None,
    agent: Annotated[str | None, Query(min_length=1, max_length=100, pattern=NO_NUL,
                                       description="the agent's id or name")] = None,
    mode: Literal["direct", "team"] | None = None,
    model: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL,
                                       description="a model as runs record it, or an adapter name (any version)")] = None,
    created_after: Annotated[datetime | None, Query(description="ISO 8601; without an offset, UTC")] = None,
    created_before: Annotated[datetime | None, Query(description="ISO 8601; without an offset, UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> dict:
    """The caller's runs, newest first, narrowed by every filter given; 422 for a bad value."""
    filters = runs.RunFilter(q=q, agent=agent, mode=mode, model=model, created_after=created_after,
                             created_before=created_before)
    items, total = runs.list_runs(db, user, status, limit, offset, filters)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/{run_id}", response_model=RunPublic)
def get_run(run_id: str, db: DB, user: CurrentUser) -> Run:
    """One run."""
    return runs.get_run(db, run_id, user)


@router.post("/{run_id}/cancel", response_model=RunPublic)
def cancel_run(run_id: str, db: DB, user: CurrentUser) -> Run:
    """Cancel a queued run now or a running one between steps; 409 if it already ended."""
    run, events = runs.request_cancel(db, run_id, user)
    db.commit()
    publish(get_redis(), events)
    return run


def _to_step(step: Step) -> StepPublic:
    return StepPublic(
        index=step.index, action=step.action, observation=step.observation, timings_ms=step.timings_ms,
        error=step.error, has_screenshot=step.screenshot_path is not None, created_at=step.created_at,
        actor=step.action.get("actor", "agent"), raw_output=step.raw_output, model=step.model,
    )


@router.get("/{run_id}/steps", response_model=list[StepPublic])
def list_steps(run_id: str, db: DB, user: CurrentUser) -> list[StepPublic]:
    """The run's recorded steps in order."""
    runs.get_run(db, run_id, user)
    return [_to_step(s) for s in db.scalars(select(Step).where(Step.run_id == run_id).order_by(Step.index))]


@router.get("/{run_id}/trajectory", response_model=list[TrajectoryStep])
def trajectory(run_id: str, db: DB, user: CurrentUser) -> list[TrajectoryStep]:
    """The run as trajectory records (messages, target action, raw output, outcome), one per step."""
    return run_records(db, runs.get_run(db, run_id, user))


@router.get("/{run_id}/steps/{index}/screenshot", response_class=FileResponse)
def step_screenshot(run_id: str, index: Annotated[int, Path(ge=0, le=MAX_INT)], db: DB, user: CurrentUser, settings: Settings) -> FileResponse:
    """The PNG screenshot taken at a step."""
    runs.get_run(db, run_id, user)
    step = db.scalar(select(Step).where(Step.run_id == run_id, Step.index == index))
    if step is None:
        raise NotFound(f"run {run_id} has no step {index}")
    path = (settings.workspace_dir / step.screenshot_path) if step.screenshot_path else None
    if path is None or not path.is_file():
        raise NotFound(f"step {index} of run {run_id} has no screenshot", code="no_screenshot")
    return FileResponse(path, media_type="image/png")


@router.get("/{run_id}/files", response_model=list[RunFilePublic])
def list_run_files(run_id: str, db: DB, user: CurrentUser, settings: Settings) -> list[RunFilePublic]:
    """The run's files: what was uploaded and what its agents wrote."""
    runs.get_run(db, run_id, user)
    return run_files.list_files(run_files.files_dir(settings, run_id))


@router.post("/{run_id}/files", status_code=201, response_model=RunFilePublic)
async def upload_run_file(run_id: str, request: Request, db: DB, user: CurrentUser, settings: Settings,
                          name: Annotated[str, Query(min_length=1, max_length=128)]) -> RunFilePublic:
    """Upload the body as the file `name` (replacing one of that name); 413 past SPARKPILOT_RUN_FILE_MAX_BYTES."""
    run = runs.get_run(db, run_id, user)
    if run.status.terminal:
        raise Conflict(f"run {run_id} already {run.status.value}: its inputs can no longer change", code="run_finished")
    db.close()
    return await run_files.save_upload(run_files.files_dir(settings, run_id), name, request.stream(),
                                       settings.run_file_max_bytes)


@router.get("/{run_id}/files/{name:path}")
def download_run_file(run_id: str, name: str, db: DB, user: CurrentUser, settings: Settings) -> FileResponse:
    """One file of the run, as an attachment."""
    runs.get_run(db, run_id, user)
    path = run_files.find(run_files.files_dir(settings, run_id), name)
    return FileResponse(path, filename=path.name, media_type="application/octet-stream")
