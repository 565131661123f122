"""Mid-run waits: an action that needs a person's approval, and a question for the person (UserProxy).

The worker keeps the run (its lock, heartbeat and browser) while it waits and polls the database;
the gateway records the person's answer and moves the run back to `running`. A wait past its
deadline is settled by the worker: an unanswered approval is a deny, an unanswered question "no answer".
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sparkpilot import audit
from sparkpilot.db.models import Approval, ApprovalStatus, Run, RunStatus, User, utcnow
from sparkpilot.errors import Conflict, NotFound
from sparkpilot.events import add_event
from sparkpilot.runs import get_run, set_status
from sparkpilot.schemas import EventPublic
from sparkpilot.team_schemas import ApprovalPublic

APPROVAL_TIMED_OUT = "no answer before the approval's deadline"


def approval_public(row: Approval) -> ApprovalPublic:
    """Table row → API schema."""
    return ApprovalPublic(id=row.id, run_id=row.run_id, category=row.category, action=row.action, reason=row.reason,
                          has_screenshot=row.screenshot_path is not None, status=row.status.value,
                          decided_reason=row.decided_reason, created_at=row.created_at, deadline_at=row.deadline_at,
                          decided_at=row.decided_at)


def list_approvals(session: Session, run_id: str) -> list[Approval]:
    """The run's approvals, oldest first."""
    return list(session.scalars(select(Approval).where(Approval.run_id == run_id).order_by(Approval.created_at)))


def request_approval(session: Session, run_id: str, category: str, action: dict[str, Any], reason: str,
                     screenshot_path: str | None, timeout_s: float) -> tuple[str | None, list[EventPublic]]:
    """Pause a running run on `action`; returns the approval's id (None if the run is no longer running)."""
    deadline = utcnow() + timedelta(seconds=timeout_s)
    row = Approval(run_id=run_id, category=category, action=action, reason=reason, screenshot_path=screenshot_path,
                   deadline_at=deadline)
    session.add(row)
    session.flush()
    events = set_status(session, run_id, {RunStatus.running}, RunStatus.awaiting_approval,
                        event={"wait": "action", "approval_id": row.id, "deadline_at": deadline.isoformat()},
                        wait={"kind": "action", "approval_id": row.id, "category": category, "reason": reason},
                        wait_deadline_at=deadline)
    if not events:
        session.delete(row)
        return None, []
    payload = {"approval_id": row.id, "category": category, "action": action, "reason": reason,
               "deadline_at": deadline.isoformat(), "has_screenshot": screenshot_path is not None}
    return row.id, events + [add_event(session, run_id, "approval.requested", payload)]


def _get_approval(session: Session, run_id: str, approval_id: str) -> Approval:
    row = session.get(Approval, approval_id)
    if row is None or row.run_id != run_id:
        raise NotFound(f"run {run_id} has no approval {approval_id!r}", code="approval_not_found")
    return row


def decide_approval(session: Session, run_id: str, user: User, approval_id: str, approve: bool,
                    reason: str | None) -> tuple[Approval, list[EventPublic]]:
    """A person's answer to a pending approval; the run goes back to running (the worker acts or tells the model)."""
    run = get_run(session, run_id, user)
    row = _get_approval(session, run_id, approval_id)
    if row.status is not ApprovalStatus.pending:
        raise Conflict(f"approval {approval_id} is already {row.status.value}", code="approval_decided")
    if run.status is not RunStatus.awaiting_approval or (run.wait or {}).get("approval_id") != approval_id:
        raise Conflict(f"run {run_id} is {run.status.value}, not waiting for approval {approval_id}",
                       code="not_awaiting_approval")
    status = ApprovalStatus.approved if approve else ApprovalStatus.denied
    audit.record(session, user, "approval.decided", "run", run_id, approval_id=approval_id, approve=approve,
                 category=row.category)
    return row, _settle(session, run_id, row, status, reason or f"{'approved' if approve else 'denied'} by {user.name}")


def _settle(session: Session, run_id: str, row: Approval, status: ApprovalStatus, why: str,
            resume: bool = True) -> list[EventPublic]:
    """Decide a pending approval once (a conditional UPDATE) with its event; `resume` moves the run back to running."""
    res = session.execute(update(Approval).where(Approval.id == row.id, Approval.status == ApprovalStatus.pending)
                          .values(status=status, decided_reason=why, decided_at=utcnow()))
    if res.rowcount != 1:
        return []
    session.refresh(row)
    events = [add_event(session, run_id, "approval.decided",
                        {"approval_id": row.id, "status": status.value, "reason": why})]
    if not resume:
        return events
    return events + set_status(session, run_id, {RunStatus.awaiting_approval}, RunStatus.running,
                               wait=None, wait_deadline_at=None)


def withdraw_approval(session: Session, run_id: str, approval_id: str, why: str) -> list[EventPublic]:
    """Deny a still-pending approval because the run is ending (cancelled); the run's status is left to its end."""
    row = session.get(Approval, approval_id)
    return _settle(session, run_id, row, ApprovalStatus.denied, why, resume=False) if row is not None else []


def settle_approval(session: Session, run_id: str, approval_id: str) -> tuple[ApprovalStatus, str | None, list[EventPublic]]:
    """The worker's poll: the approval's status, timing it out (a deny) once its deadline passed."""
    row = session.get(Approval, approval_id)
    assert row is not None
    if row.status is ApprovalStatus.pending and utcnow() >= row.deadline_at:
        events = _settle(session, run_id, row, ApprovalStatus.timed_out, APPROVAL_TIMED_OUT)
        session.refresh(row)
        return row.status, row.decided_reason, events
    return row.status, row.decided_reason, []


def ask_input(session: Session, run_id: str, question: str, timeout_s: float) -> list[EventPublic]:
    """Pause a running run on a question for the person."""
    deadline = utcnow() + timedelta(seconds=timeout_s)
    events = set_status(session, run_id, {RunStatus.running}, RunStatus.awaiting_input,
                        event={"wait": "input", "deadline_at": deadline.isoformat()},
                        wait={"kind": "input", "question": question}, wait_deadline_at=deadline)
    if events:
        events.append(add_event(session, run_id, "input.requested",
                                {"question": question, "deadline_at": deadline.isoformat()}))
    return events


def answer_input(session: Session, run_id: str, user: User, text: str) -> tuple[Run, list[EventPublic]]:
    """The person's answer to the run's question; the run goes back to running."""
    run = get_run(session, run_id, user)
    if run.status is not RunStatus.awaiting_input:
        raise Conflict(f"run {run_id} is {run.status.value}, not waiting for input", code="not_awaiting_input")
    wait = {**(run.wait or {}), "answer": text}
    events = set_status(session, run_id, {RunStatus.awaiting_input}, RunStatus.running, wait=wait,
                        wait_deadline_at=None)
    if not events:
        raise Conflict(f"run {run_id} stopped waiting for input", code="not_awaiting_input")
    events.append(add_event(session, run_id, "input.answered", {"text": text, "by": user.name}))
    audit.record(session, user, "input.answered", "run", run_id)
    session.refresh(run)
    return run, events


def settle_input(session: Session, run_id: str) -> tuple[bool, str | None, list[EventPublic]]:
    """The worker's poll: (settled, the answer or None, events); past the deadline it settles with no answer."""
    run = session.get(Run, run_id)
    assert run is not None
    wait = run.wait or {}
    if run.status is RunStatus.running and "answer" in wait:
        run.wait = None
        return True, wait["answer"], []
    if run.status is RunStatus.awaiting_input and run.wait_deadline_at is not None and utcnow() >= run.wait_deadline_at:
        events = set_status(session, run_id, {RunStatus.awaiting_input}, RunStatus.running, Run.wait_deadline_at <= utcnow(),
                            wait=None, wait_deadline_at=None)
        if events:
            events.append(add_event(session, run_id, "input.answered", {"text": None, "timed_out": True}))
            return True, None, events
    return False, None, []
