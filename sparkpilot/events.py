"""Run events: stored in the database first, then published on Redis."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sparkpilot.db.models import Event, Run, utcnow
from sparkpilot.metrics import EVENT_PUBLISH_SECONDS
from sparkpilot.schemas import EventPublic, EventType
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
