"""REST endpoints for steering a run: its plan, action approvals, answers to its questions, and the plan library."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from services.gateway.deps import CurrentUser, DB, Offset, Settings
from sparkpilot import approvals, plans, runs
from sparkpilot.db.models import Run, RunStatus, User
from sparkpilot.errors import NotFound
from sparkpilot.events import publish
from sparkpilot.queue import enqueue_run
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import Paginated, RunPublic
from sparkpilot.team_schemas import ApprovalDecision, ApprovalPublic, InputAnswer, PlanDecision, PlanPublic, SavedPlanPublic

router = APIRouter(tags=["team"])


@router.get("/api/v1/runs/{run_id}/plan", response_model=PlanPublic)
def get_plan(run_id: str, db: DB, user: CurrentUser) -> PlanPublic:
    """A team run's plan, its status and ledger; 404 before it has one."""
    return plans.plan_public(runs.get_run(db, run_id, user))


@router.post("/api/v1/runs/{run_id}/plan", response_model=PlanPublic)
def decide_plan(run_id: str, body: PlanDecision, db: DB, user: CurrentUser, settings: Settings) -> PlanPublic:
    """Approve, edit (validated, then approved) or reject with feedback (re-planned); 409 unless the plan waits."""
    return plans.plan_public(apply_plan_decision(db, run_id, user, body, settings.plan_max_rejections))


def apply_plan_decision(db: Session, run_id: str, user: User, body: PlanDecision, max_rejections: int) -> Run:
    """Decide a waiting plan, commit, queue the run again when approved, and publish the events."""
    client = get_redis()
    client.ping()  # fail fast with 503 before deciding anything
    run, events, requeue = plans.decide_plan(db, run_id, user, body, max_rejections)
    db.commit()
    if requeue:
        try:
            enqueue_run(run_id, runs.queue_priority(runs.active_runs(db, run.user_id, but=run_id)))
        except Exception:
            events += runs.finish_run(db, run_id, RunStatus.failed, "could not queue the run again")
            db.commit()
            publish(client, events)
            raise
    publish(client, events)
    db.refresh(run)
    return run


@router.get("/api/v1/runs/{run_id}/approvals", response_model=list[ApprovalPublic])
def list_approvals(run_id: str, db: DB, user: CurrentUser) -> list[ApprovalPublic]:
    """The actions this run paused on, pending and decided."""
    runs.get_run(db, run_id, user)
    return [approvals.approval_public(a) for a in approvals.list_approvals(db, run_id)]


@router.post("/api/v1/runs/{run_id}/approvals/{approval_id}", response_model=ApprovalPublic)
def decide_approval(run_id: str, approval_id: str, body: ApprovalDecision, db: DB, user: CurrentUser) -> ApprovalPublic:
    """Approve or deny a pending action; 404 for an unknown id, 409 once decided or when the run is not waiting."""
    row, events = approvals.decide_approval(db, run_id, user, approval_id, body.approve, body.reason)
    db.commit()
    publish(get_redis(), events)
    return approvals.approval_public(row)


@router.get("/api/v1/runs/{run_id}/approvals/{approval_id}/screenshot", response_class=FileResponse)
def approval_screenshot(run_id: str, approval_id: str, db: DB, user: CurrentUser, settings: Settings) -> FileResponse:
    """The page as it was when the run asked for approval."""
    runs.get_run(db, run_id, user)
    row = next((a for a in approvals.list_approvals(db, run_id) if a.id == approval_id), None)
    if row is None:
        raise NotFound(f"run {run_id} has no approval {approval_id!r}", code="approval_not_found")
    path = settings.workspace_dir / row.screenshot_path if row.screenshot_path else None
    if path is None or not path.is_file():
        raise NotFound(f"approval {approval_id} has no screenshot", code="no_screenshot")
    return FileResponse(path, media_type="image/png")


@router.post("/api/v1/runs/{run_id}/input", response_model=RunPublic)
def answer_input(run_id: str, body: InputAnswer, db: DB, user: CurrentUser):  # noqa: ANN201
    """Answer the run's question; 409 unless it is awaiting_input."""
    run, events = approvals.answer_input(db, run_id, user, body.text)
    db.commit()
    publish(get_redis(), events)
    db.refresh(run)
    return run


@router.get("/api/v1/plans", response_model=Paginated[SavedPlanPublic])
def list_plans(db: DB, user: CurrentUser, task: Annotated[str | None, Query(max_length=10_000)] = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Offset = 0) -> dict:
    """The caller's saved plans, newest first, or most similar to `task` first."""
    items, total = plans.list_plans(db, user, limit, offset, task)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.delete("/api/v1/plans/{plan_id}", status_code=204)
def delete_plan(plan_id: str, db: DB, user: CurrentUser) -> Response:
    """Forget a saved plan."""
    plans.delete_plan(db, user, plan_id)
    db.commit()
    return Response(status_code=204)
