"""Take control: a person pauses the agent, acts in the live view, and hands the browser back."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.gateway.deps import CurrentUser, DB
from sparkpilot import audit, runs
from sparkpilot.control import HumanAction, ControlRequest, actions_key, control_key, queue_action, set_control
from sparkpilot.db.models import RunStatus
from sparkpilot.errors import Conflict
from sparkpilot.redis_client import get_redis

router = APIRouter(prefix="/api/v1/runs", tags=["control"])


class ControlPublic(BaseModel):
    """Who has a run's browser, and how many of the person's actions wait for the worker."""

    run_id: str
    mode: str  # human | agent
    queued: int


def _state(run_id: str) -> ControlPublic:
    client = get_redis()
    pipe = client.pipeline()
    pipe.get(control_key(run_id))
    pipe.llen(actions_key(run_id))
    control, queued = pipe.execute()
    human = control in (b"human", "human")
    return ControlPublic(run_id=run_id, mode="human" if human else "agent", queued=int(queued))


@router.get("/{run_id}/control", response_model=ControlPublic)
def get_control(run_id: str, db: DB, user: CurrentUser) -> ControlPublic:
    """Who has the run's browser now."""
    runs.get_run(db, run_id, user)
    return _state(run_id)


@router.post("/{run_id}/control", response_model=ControlPublic)
def change_control(run_id: str, body: ControlRequest, db: DB, user: CurrentUser) -> ControlPublic:
    """Take the browser from the agent ('human'; the agent pauses before its next step) or hand it back ('agent').

    409 unless the run is running: a queued run has no browser yet, a waiting one needs its answer first.
    """
    run = runs.get_run(db, run_id, user)
    if body.mode == "human" and run.status is not RunStatus.running:
        raise Conflict(f"the run is {run.status.value}: only a running run's browser can be taken")
    set_control(get_redis(), run_id, body.mode)
    audit.record(db, user, f"run.control.{body.mode}", "run", run_id)
    return _state(run_id)


@router.post("/{run_id}/control/actions", status_code=202, response_model=ControlPublic)
def human_action(run_id: str, body: HumanAction, db: DB, user: CurrentUser) -> ControlPublic:
    """Queue a click, typing, key press or scroll for the worker to do on the person's behalf (recorded as a human step)."""
    run = runs.get_run(db, run_id, user)
    if run.status is not RunStatus.running:
        raise Conflict(f"the run is {run.status.value}: there is no browser to act in")
    if _state(run_id).mode != "human":
        raise Conflict("take control first (POST /api/v1/runs/{id}/control with mode 'human')")
    queue_action(get_redis(), run_id, body)
    return _state(run_id)
