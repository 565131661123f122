"""A team run's plan: proposed by the worker, approved, edited or rejected by a person, and the plan library.

While its plan waits for approval a run holds no worker and no browser: status awaiting_approval
with heartbeat_at NULL and wait = {"kind": "plan"}. Approving (or editing, or rejecting with feedback)
queues it again for any worker; the gateway's reaper fails it once wait_deadline_at passes.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sparkpilot import audit
from sparkpilot.db.models import Run, RunStatus, SavedPlan, User, utcnow
from sparkpilot.errors import Conflict, NotFound
from sparkpilot.events import add_event
from sparkpilot.runs import finish_run, get_run, set_status
from sparkpilot.schemas import EventPublic
from sparkpilot.team_schemas import PlanDecision, PlanPublic, PlanStep

PLAN_TIMED_OUT = "plan approval timed out"
SIMILAR_AT = 0.5  # Jaccard similarity of task words above which a saved plan is offered to the planner


def plan_public(run: Run) -> PlanPublic:
    """The run's plan as the API shows it; NotFound while it has none."""
    if not run.plan:
        raise NotFound(f"run {run.id} has no plan" + (" (a direct run)" if run.mode == "direct" else " yet"),
                       code="no_plan")
    waiting = run.wait is not None and run.wait.get("kind") == "plan"
    return PlanPublic(steps=run.plan["steps"], status=run.plan.get("status", "proposed"),
                      revision=run.plan.get("revision", 1), rejections=run.plan.get("rejections", 0),
                      feedback=run.plan.get("feedback", []), ledger=run.plan.get("ledger", []),
                      deadline_at=run.wait_deadline_at if waiting else None)


def propose_plan(session: Session, run_id: str, steps: list[dict[str, Any]], timeout_s: float,
                 source: str = "model") -> list[EventPublic]:
    """Store the orchestrator's plan; approve it at once (auto_approve) or park the run for a person."""
    run = session.get(Run, run_id)
    assert run is not None
    previous = run.plan or {}
    plan = {"steps": steps, "status": "proposed", "revision": previous.get("revision", 0) + 1,
            "rejections": previous.get("rejections", 0), "feedback": previous.get("feedback", []), "ledger": [],
            "source": source}
    if run.auto_approve:
        run.plan = {**plan, "status": "approved"}
        events = [add_event(session, run_id, "plan.proposed", {"steps": steps, "revision": plan["revision"],
                                                               "source": source})]
        events.append(add_event(session, run_id, "plan.decided", {"action": "approve", "by": "auto_approve"}))
        return events + set_status(session, run_id, {RunStatus.planning}, RunStatus.running)
    run.plan = plan
    events = [add_event(session, run_id, "plan.proposed", {"steps": steps, "revision": plan["revision"],
                                                           "source": source})]
    deadline = utcnow() + timedelta(seconds=timeout_s)
    return events + set_status(session, run_id, {RunStatus.planning}, RunStatus.awaiting_approval,
                               event={"wait": "plan", "deadline_at": deadline.isoformat()},
                               wait={"kind": "plan"}, wait_deadline_at=deadline, heartbeat_at=None, worker=None)


def decide_plan(session: Session, run_id: str, user: User, decision: PlanDecision,
                max_rejections: int) -> tuple[Run, list[EventPublic], bool]:
    """Apply a person's decision; returns the run, its events, and whether to queue it again."""
    run = get_run(session, run_id, user)
    if run.status is not RunStatus.awaiting_approval or (run.wait or {}).get("kind") != "plan":
        raise Conflict(f"run {run_id} is {run.status.value}, not waiting for its plan's approval",
                       code="not_awaiting_plan")
    plan = dict(run.plan or {})
    payload: dict[str, Any] = {"action": decision.action, "by": user.name}
    audit.record(session, user, "plan.decided", "run", run_id, decision=decision.action)
    if decision.action == "reject":
        plan["rejections"] = plan.get("rejections", 0) + 1
        plan["feedback"] = [*plan.get("feedback", []), decision.feedback]
        payload["feedback"] = decision.feedback
        run.plan = plan
        events = [add_event(session, run_id, "plan.decided", payload)]
        if plan["rejections"] > max_rejections:
            events += finish_run(session, run_id, RunStatus.failed,
                                 f"plan rejected {plan['rejections']} times (the limit is {max_rejections})")
            return run, events, False
        events += _requeue(session, run_id, "re-plan with the feedback")
        return run, events, bool(events)
    if decision.action == "edit":
        plan["steps"] = [s.model_dump() for s in decision.steps or []]
        plan["revision"] = plan.get("revision", 1) + 1
        plan["source"] = "person"
        payload["steps"] = plan["steps"]
    plan["status"] = "approved"
    run.plan = plan
    events = [add_event(session, run_id, "plan.decided", payload)]
    events += _requeue(session, run_id, "plan approved")
    return run, events, True


def _requeue(session: Session, run_id: str, why: str) -> list[EventPublic]:
    return set_status(session, run_id, {RunStatus.awaiting_approval}, RunStatus.queued, Run.heartbeat_at.is_(None),
                      event={"reason": why}, wait=None, wait_deadline_at=None)


def expire_plan_waits(session: Session) -> list[EventPublic]:
    """Fail runs whose plan waited for approval past its deadline (the gateway's reaper calls this)."""
    now = utcnow()
    due = session.scalars(select(Run.id).where(Run.status == RunStatus.awaiting_approval, Run.heartbeat_at.is_(None),
                                               Run.wait_deadline_at < now)).all()
    events: list[EventPublic] = []
    for run_id in due:
        events += finish_run(session, run_id, RunStatus.failed, PLAN_TIMED_OUT, None,
                             Run.heartbeat_at.is_(None), Run.wait_deadline_at < now)
    return events


def record_ledger(session: Session, run_id: str, ledger: list[dict[str, Any]], steps: list[dict[str, Any]]) -> None:
    """Persist the progress ledger (and the plan's steps, which a re-plan may change): a resumed run skips done steps."""
    run = session.get(Run, run_id)
    if run is not None and run.plan:
        run.plan = {**run.plan, "ledger": ledger, "steps": steps}


# ---------------------------------------------------------------- the plan library


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]{3,}", text.lower()))


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of two tasks' words (3+ letters)."""
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa and wb else 0.0


def save_plan(session: Session, run: Run) -> SavedPlan | None:
    """Keep a succeeded team run's plan (as last executed) in its owner's library; None if an equal one is there."""
    if not run.plan:
        return None
    steps = [PlanStep.model_validate(s).model_dump() for s in run.plan["steps"]]
    for saved in session.scalars(select(SavedPlan).where(SavedPlan.user_id == run.user_id)):
        if saved.steps == steps and similarity(saved.task, run.task) >= SIMILAR_AT:
            return None
    row = SavedPlan(user_id=run.user_id, task=run.task, steps=steps, source_run_id=run.id)
    session.add(row)
    session.flush()
    return row


def similar_plan(session: Session, user_id: int, task: str) -> SavedPlan | None:
    """The user's saved plan for the most similar task, if similar enough to offer."""
    best, score = None, SIMILAR_AT
    for saved in session.scalars(select(SavedPlan).where(SavedPlan.user_id == user_id)):
        s = similarity(saved.task, task)
        if s >= score:
            best, score = saved, s
    return best


def list_plans(session: Session, user: User, limit: int, offset: int, task: str | None = None) -> tuple[list[SavedPlan], int]:
    """A page of the user's saved plans, newest first (most similar first when `task` is given)."""
    rows = list(session.scalars(select(SavedPlan).where(SavedPlan.user_id == user.id)
                                .order_by(SavedPlan.created_at.desc(), SavedPlan.id)))
    if task:
        rows = sorted((r for r in rows if similarity(r.task, task) > 0), key=lambda r: -similarity(r.task, task))
    return rows[offset:offset + limit], len(rows)


def delete_plan(session: Session, user: User, plan_id: str) -> None:
    """Remove a saved plan; NotFound for another user's or an unknown id."""
    row = session.get(SavedPlan, plan_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"plan {plan_id!r} not found")
    session.delete(row)
