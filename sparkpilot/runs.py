"""The run lifecycle as plain functions, shared by the gateway, the worker and the reaper.

A direct run: queued → running → succeeded | failed | cancelled. A team run adds planning and the
waits (see plans.py and approvals.py): queued → planning → awaiting_approval → queued → running ↔
awaiting_approval | awaiting_input → …. Every transition is a conditional UPDATE, so two processes
racing on one run cannot both win, and every terminal run gets a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from sparkpilot import audit
from sparkpilot.db.models import (HELD_STATUSES, LIVE_STATUSES, TERMINAL_STATUSES, Agent, AgentVersion, Run, RunStatus,
                                  User, utcnow)
from sparkpilot.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from sparkpilot.events import add_event
from sparkpilot.queue import PRIORITY_STEPS
from sparkpilot.schemas import EventPublic, RunCreate
from sparkpilot.urls import host_of

WORKER_LOST = "worker lost"
CANCELLED_BY_USER = "cancelled by user"


def step_budget(requested: int | None, default: int, limit: int) -> int:
    """The run's max_steps: the default when none is asked for; InvalidInput above the limit."""
    if requested is None:
        return default
    if requested > limit:
        raise InvalidInput(f"max_steps {requested} is above this server's limit of {limit}", code="max_steps_limit")
    return requested


def active_runs(session: Session, user_id: str, but: str | None = None) -> int:
    """How many of the user's runs are unfinished (queued, planning, waiting or running), `but` one left out."""
    q = select(func.count()).select_from(Run).where(Run.user_id == user_id, Run.status.in_(LIVE_STATUSES))
    if but is not None:
        q = q.where(Run.id != but)
    return int(session.scalar(q) or 0)


def check_quota(session: Session, user: User, limit: int) -> int:
    """The user's unfinished runs; QuotaExceeded (429 `run_quota`) when they already have `limit`."""
    active = active_runs(session, user.id)
    if active >= limit:
        raise QuotaExceeded(f"you have {active} unfinished runs, this server's limit per user "
                            f"(SPARKPILOT_MAX_ACTIVE_RUNS_PER_USER is {limit}); wait for some to end or cancel them",
                            code="run_quota")
    return active


def queue_priority(others: int) -> int:
    """Fair turns across users: with `others` unfinished runs of its user besides it, a run's Celery priority
    (a user's first unfinished run goes first, their second after everyone's first, ...)."""
    return PRIORITY_STEPS[min(others, len(PRIORITY_STEPS) - 1)]


def create_run(
    session: Session, user: User, body: RunCreate, model: str | None = None, max_steps: int = 30,
    agent: Agent | None = None,
) -> tuple[Run, list[EventPublic]]:
    """Insert a queued run on `model` (started from `agent`, if any) and its run.queued event (caller commits, then enqueues)."""
    allowed = body.allowed_domains or []
    if not allowed:  # by default the run stays on its start URL's site (without one: the first site it opens)
        host = host_of(body.start_url or "")
        allowed = [host] if host else []
    policy = {"type": body.policy, **({"actions": body.actions} if body.actions else {}),
              **({"temperature": body.temperature} if body.temperature else {}),
              **({"purpose": body.purpose} if body.purpose != "task" else {}),
              **({"approvals": body.approval_policy} if body.approval_policy else {}),
              **({"instructions": agent.config["instructions"]} if agent and agent.config.get("instructions") else {}),
              # A saved agent's MCP tools (server.tool) and document collections.
              **({k: agent.config[k] for k in ("tools", "documents") if agent and agent.config.get(k)})}
    run = Run(user_id=user.id, task=body.task, start_url=body.start_url, max_steps=body.max_steps or max_steps,
              policy=policy, mode=body.mode, auto_approve=body.auto_approve,
              agent_id=agent.id if agent else None, agent_version=agent.version if agent else None,
              allowed_domains=allowed, env=body.env.model_dump() if body.env else {}, model=model)
    session.add(run)
    session.flush()
    ev = add_event(session, run.id, "run.queued", {"task": run.task, "start_url": run.start_url})
    return run, [ev]


def goal_of(run: Run) -> str:
    """What the run's agents work towards: a saved agent's instructions, then the task."""
    instructions = run.policy.get("instructions")
    return f"{instructions}\n\nTask: {run.task}" if instructions else run.task


def get_run(session: Session, run_id: str, user: User | None = None) -> Run:
    """A run by id, visible only to its owner when `user` is given."""
    run = session.get(Run, run_id)
    if run is None or (user is not None and run.user_id != user.id):
        raise NotFound(f"run {run_id!r} not found")
    return run


@dataclass
class RunFilter:
    """What GET /api/v1/runs narrows the list by; every field is optional and they all apply together."""

    status: RunStatus | None = None
    q: str | None = None  # a case-insensitive substring of the task
    agent: str | None = None  # the agent's id, or a name it has (or had) — matched case-insensitively
    mode: str | None = None  # direct | team
    model: str | None = None  # the model as the run recorded it, or an adapter NAME (any of its versions)
    created_after: datetime | None = None
    created_before: datetime | None = None


def _aware(ts: datetime) -> datetime:
    """A client's timestamp in UTC (one without an offset is read as UTC); 422 past the calendar's ends."""
    try:
        return ts.astimezone(timezone.utc) if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)
    except OverflowError as exc:
        raise InvalidInput(f"{ts.isoformat()} is outside the representable dates", code="invalid_filter") from exc


def _conditions(f: RunFilter) -> list:
    where: list = []
    if f.status is not None:
        where.append(Run.status == f.status)
    if f.q:
        where.append(Run.task.icontains(f.q, autoescape=True))
    if f.agent:
        named = select(AgentVersion.agent_id).where(func.lower(AgentVersion.name) == f.agent.lower())
        where.append(or_(Run.agent_id == f.agent, Run.agent_id.in_(named)))
    if f.mode:
        where.append(Run.mode == f.mode)
    if f.model:
        where.append(or_(Run.model == f.model, Run.model.startswith(f"{f.model}@v", autoescape=True)))
    if f.created_after is not None:
        where.append(Run.created_at >= _aware(f.created_after))
    if f.created_before is not None:
        where.append(Run.created_at <= _aware(f.created_before))
    return where


def list_runs(
    session: Session, user: User, status: RunStatus | None, limit: int, offset: int, filters: RunFilter | None = None,
) -> tuple[list[Run], int]:
    """A page of the user's runs matching `status` and `filters`, newest first, and the total count."""
    f = filters or RunFilter()
    if status is not None:
        f = replace(f, status=status)
    if f.created_after and f.created_before and _aware(f.created_after) > _aware(f.created_before):
        raise InvalidInput("created_after is later than created_before", code="invalid_filter")
    where = [Run.user_id == user.id, *_conditions(f)]
    total = session.scalar(select(func.count()).select_from(Run).where(*where)) or 0
    rows = session.scalars(
        select(Run).where(*where).order_by(Run.created_at.desc(), Run.id).limit(limit).offset(offset)
    )
    return list(rows), total


def _transition(session: Session, run_id: str, allowed: set[RunStatus] | frozenset[RunStatus], *where: object,
                **values: object) -> bool:
    """Set `values` if the run is in one of `allowed` (and matches `where`); True if this caller won."""
    res = session.execute(
        update(Run).where(Run.id == run_id, Run.status.in_(allowed), *where).values(**values)
    )
    return res.rowcount == 1


def finish_run(
    session: Session, run_id: str, status: RunStatus, reason: str, result: str | None = None, *where: object,
    reward: float | None = None,
) -> list[EventPublic]:
    """Move a live run to a terminal status with its event (and the environment's reward); no-op if it already ended."""
    assert status in TERMINAL_STATUSES
    values = dict(status=status, reason=reason, result=result, finished_at=utcnow(), reward=reward, wait=None,
                  wait_deadline_at=None)
    if not _transition(session, run_id, LIVE_STATUSES, *where, **values):
        return []
    payload = {"reason": reason, "result": result, **({"reward": reward} if reward is not None else {})}
    return [add_event(session, run_id, f"run.{status.value}", payload)]  # type: ignore[arg-type]


def set_status(session: Session, run_id: str, allowed: set[RunStatus], status: RunStatus, *where: object,
               event: dict | None = None, **values: object) -> list[EventPublic]:
    """Move a live run between non-terminal statuses with a run.status event; [] if another process won."""
    if not _transition(session, run_id, allowed, *where, status=status, **values):
        return []
    return [add_event(session, run_id, "run.status", {"status": status.value, **(event or {})})]


# A run no worker holds: queued, or waiting for its plan's approval (the worker let go: no heartbeat).
UNHELD = or_(Run.status == RunStatus.queued, and_(Run.status == RunStatus.awaiting_approval, Run.heartbeat_at.is_(None)))


def request_cancel(session: Session, run_id: str, user: User) -> tuple[Run, list[EventPublic]]:
    """Cancel a run no worker holds now, or ask the worker to stop between steps (or waits)."""
    run = get_run(session, run_id, user)
    if run.status in TERMINAL_STATUSES:
        raise Conflict(f"run {run_id} already {run.status.value}", code="run_finished")
    audit.record(session, user, "run.cancel_requested", "run", run_id, status=run.status.value)
    events = finish_run(session, run_id, RunStatus.cancelled, CANCELLED_BY_USER, None, UNHELD)
    if not events:
        # A worker holds it; it checks the flag between steps and while it waits.
        _transition(session, run_id, HELD_STATUSES, cancel_requested=True)
    session.refresh(run)
    if run.status in TERMINAL_STATUSES and not events:
        raise Conflict(f"run {run_id} already {run.status.value}", code="run_finished")
    return run, events


@dataclass
class Claim:
    """What a worker got when it tried to take a run."""

    run: Run | None
    resumed: bool = False
    events: list[EventPublic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if the worker should execute the run."""
        return self.run is not None


REQUEUED = f"{WORKER_LOST}; queued again"


def claim_run(session: Session, run_id: str, worker: str, max_attempts: int) -> Claim:
    """Take a queued run, or resume a running one whose previous worker died (caller holds the run lock)."""
    run = session.get(Run, run_id)
    if run is None or run.status in TERMINAL_STATUSES:
        return Claim(None)
    now = utcnow()
    # A team run without an approved plan plans first; everything else runs.
    working = RunStatus.planning if run.mode == "team" and (run.plan or {}).get("status") != "approved" \
        else RunStatus.running
    if run.status is RunStatus.queued:
        requeued = run.reason == REQUEUED  # handed back to the queue by the reaper after its worker was lost
        if not _transition(session, run_id, {RunStatus.queued}, status=working, started_at=run.started_at or now,
                           heartbeat_at=now, worker=worker, reason=None,
                           attempts=Run.attempts + 1 if requeued else 1):
            return Claim(None)
        session.refresh(run)
        if requeued:
            ev = add_event(session, run_id, "run.message",
                           {"text": f"{WORKER_LOST}; resumed by {worker}", "attempt": run.attempts})
            return Claim(run, resumed=True, events=[ev])
        ev = add_event(session, run_id, "run.started", {"worker": worker, "attempt": 1, "status": working.value})
        return Claim(run, events=[ev])
    if run.status not in HELD_STATUSES or run.heartbeat_at is None:
        return Claim(None)  # waiting for its plan's approval: no worker's business until it is queued again
    # Held but we hold its lock: the worker that had it is gone (redelivered message).
    if run.attempts >= max_attempts:
        return Claim(None, events=finish_run(session, run_id, RunStatus.failed, f"{WORKER_LOST} ({run.attempts} attempts)"))
    if not _transition(session, run_id, HELD_STATUSES, Run.heartbeat_at.is_not(None), status=working,
                       heartbeat_at=now, worker=worker, attempts=Run.attempts + 1, wait=None, wait_deadline_at=None):
        return Claim(None)
    session.refresh(run)
    ev = add_event(session, run_id, "run.message",
                   {"text": f"{WORKER_LOST}; resumed by {worker}", "attempt": run.attempts})
    return Claim(run, resumed=True, events=[ev])


def heartbeat(session: Session, run_id: str) -> bool:
    """Mark the run alive; returns whether cancellation was requested."""
    session.execute(update(Run).where(Run.id == run_id, Run.status.in_(HELD_STATUSES), Run.heartbeat_at.is_not(None))
                    .values(heartbeat_at=utcnow()))
    return bool(session.scalar(select(Run.cancel_requested).where(Run.id == run_id)))


def reap_stale_runs(session: Session, stale_after_s: float, max_attempts: int = 1) -> tuple[list[EventPublic], list[str]]:
    """Held runs whose worker stopped heart-beating: cancelled if asked; a running one with attempts left
    goes back to `queued` (its id returned: the caller sends it to the queue again, where any worker
    resumes it); the rest fail 'worker lost'. Returns (events, ids to send)."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stale = session.scalars(
        select(Run).where(Run.status.in_(HELD_STATUSES), Run.heartbeat_at < cutoff)
    ).all()
    events: list[EventPublic] = []
    requeued: list[str] = []
    for run in stale:
        still_stale = Run.heartbeat_at < cutoff
        if run.cancel_requested:
            events += finish_run(session, run.id, RunStatus.cancelled, CANCELLED_BY_USER, None, still_stale)
        elif run.status is RunStatus.running and run.attempts < max_attempts:
            # Its message is gone with the worker (or waits behind the whole queue): hand it back.
            queued = set_status(session, run.id, {RunStatus.running}, RunStatus.queued, still_stale,
                                event={"reason": REQUEUED, "attempt": run.attempts},
                                worker=None, heartbeat_at=None, reason=REQUEUED)
            events += queued
            requeued += [run.id] if queued else []
        else:
            events += finish_run(session, run.id, RunStatus.failed, WORKER_LOST, None, still_stale)
    return events, requeued
