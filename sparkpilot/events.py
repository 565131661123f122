"""Run and training-job events: stored in the database first, then published on Redis."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sparkpilot.db.models import Event, JobEvent, Run, TrainingJob, utcnow
from sparkpilot.metrics import EVENT_PUBLISH_SECONDS
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import EventPublic, EventType, JobEventPublic, JobEventType
from sparkpilot.settings import get_settings

log = logging.getLogger(__name__)


def channel(run_id: str) -> str:
    """The Redis pub/sub channel of a run's events."""
    return get_settings().key("run", run_id, "events")


def add_event(session: Session, run_id: str, type_: EventType, payload: dict[str, Any] | None = None) -> EventPublic:
    """Append an event in the caller's transaction; its id is the run's next sequence number."""
    # UPDATE ... RETURNING takes the run row's lock, so concurrent writers get distinct ids.
    seq = session.execute(
        update(Run).where(Run.id == run_id).values(last_event_id=Run.last_event_id + 1).returning(Run.last_event_id)
    ).scalar_one()
    row = Event(run_id=run_id, seq=seq, type=type_, payload=payload or {}, created_at=utcnow())
    session.add(row)
    session.flush()
    return to_public(row)


def to_public(row: Event) -> EventPublic:
    """Table row → wire event."""
    return EventPublic(id=row.seq, run_id=row.run_id, type=row.type, ts=row.created_at, payload=row.payload)


def list_events(session: Session, run_id: str, after: int = 0, limit: int = 1000) -> list[EventPublic]:
    """Stored events of a run with id > after, in order."""
    rows = session.scalars(
        select(Event).where(Event.run_id == run_id, Event.seq > after).order_by(Event.seq).limit(limit)
    )
    return [to_public(r) for r in rows]


def publish(client: redis.Redis, events: Iterable[EventPublic]) -> None:
    """Publish already-committed events; a Redis failure is logged, never raised (clients catch up from the DB)."""
    for ev in events:
        try:
            client.publish(channel(ev.run_id), ev.model_dump_json())
        except redis.RedisError as exc:
            log.warning("could not publish event %s/%s: %s", ev.run_id, ev.id, exc)
            continue
        EVENT_PUBLISH_SECONDS.observe(client, time.time() - ev.ts.timestamp())


def parse(raw: bytes | str) -> EventPublic:
    """Wire JSON → event."""
    return EventPublic.model_validate(json.loads(raw))


# ---------------------------------------------------------------- training jobs


def job_channel(job_id: str) -> str:
    """The Redis pub/sub channel of a training job's events."""
    return get_settings().key("job", job_id, "events")


def add_job_event(session: Session, job_id: str, type_: JobEventType, payload: dict[str, Any] | None = None) -> JobEventPublic:
    """Append a job event in the caller's transaction; it is published when that transaction commits."""
    seq = session.execute(
        update(TrainingJob).where(TrainingJob.id == job_id).values(last_event_id=TrainingJob.last_event_id + 1)
        .returning(TrainingJob.last_event_id)
    ).scalar_one()
    row = JobEvent(job_id=job_id, seq=seq, type=type_, payload=payload or {}, created_at=utcnow())
    session.add(row)
    session.flush()
    ev = job_to_public(row)
    # The training functions are called from many places; publishing follows the commit itself.
    session.info.setdefault("job_events", []).append(ev)
    return ev


@sa_event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    for ev in session.info.pop("job_events", []):
        try:
            get_redis().publish(job_channel(ev.job_id), ev.model_dump_json())
        except redis.RedisError as exc:
            log.warning("could not publish job event %s/%s: %s", ev.job_id, ev.id, exc)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    session.info.pop("job_events", None)


def job_to_public(row: JobEvent) -> JobEventPublic:
    """Table row → wire event."""
    return JobEventPublic(id=row.seq, job_id=row.job_id, type=row.type, ts=row.created_at, payload=row.payload)


def list_job_events(session: Session, job_id: str, after: int = 0, limit: int = 1000) -> list[JobEventPublic]:
    """Stored events of a job with id > after, in order."""
    rows = session.scalars(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after).order_by(JobEvent.seq).limit(limit)
    )
    return [job_to_public(r) for r in rows]


def parse_job(raw: bytes | str) -> JobEventPublic:
    """Wire JSON → job event."""
    return JobEventPublic.model_validate(json.loads(raw))
