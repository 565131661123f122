"""Live run events over Server-Sent Events and WebSocket, resumable from the last event id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated

import redis
from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from services.gateway.deps import DB, CurrentUser, Settings, Unauthorized, authenticate, bearer_token
from sparkpilot import runs
from sparkpilot.db.models import TERMINAL_STATUSES, Run
from sparkpilot.db.session import session_scope
from sparkpilot.errors import NotFound
from sparkpilot.events import channel, list_events, parse
from sparkpilot.redis_client import get_async_redis
from sparkpilot.schemas import EventPublic

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/runs", tags=["events"])

# Between pub/sub messages the stream re-reads the database this often, which
# also covers a Redis outage: events are stored before they are published.
DB_POLL_S = 1.0


def _load(run_id: str, after: int) -> tuple[list[EventPublic], bool]:
    with session_scope() as s:
        events = list_events(s, run_id, after)
        run = s.get(Run, run_id)
        return events, run is None or run.status in TERMINAL_STATUSES


async def follow_events(run_id: str, after: int) -> AsyncIterator[EventPublic]:
    """Every event with id > after, once and in order, until the terminal one."""
    last = after
    client = get_async_redis()
    pubsub = None
    loop = asyncio.get_running_loop()
    try:
        while True:
            if pubsub is None:
                try:
                    pubsub = client.pubsub()
                    await pubsub.subscribe(channel(run_id))
                except (redis.RedisError, OSError):
                    pubsub = None
            # Read the backlog after subscribing, so nothing published in between is missed.
            events, finished = await run_in_threadpool(_load, run_id, last)
            for ev in events:
                yield ev
                last = ev.id
                if ev.terminal:
                    return
            if finished and not events:
                return
            deadline = loop.time() + DB_POLL_S
            while (remaining := deadline - loop.time()) > 0:
                if pubsub is None:
                    await asyncio.sleep(remaining)
                    break
                try:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
                except (redis.RedisError, OSError):
                    pubsub = None
                    break
                if msg is None:
                    continue
                ev = parse(msg["data"])
                if ev.id <= last:
                    continue
                if ev.id != last + 1:
                    break  # a gap: fill it from the database
                yield ev
                last = ev.id
                if ev.terminal:
                    return
    finally:
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except (redis.RedisError, OSError):
                pass
        await client.aclose()


@router.get("/{run_id}/events")
async def sse_events(
    run_id: str,
    db: DB,
    user: CurrentUser,
    settings: Settings,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> EventSourceResponse:
    """Server-Sent Events; resume with the Last-Event-ID header (or ?after=N)."""
    runs.get_run(db, run_id, user)
    db.close()
    start = last_event_id if last_event_id is not None else after

    async def gen() -> AsyncIterator[dict]:
        async for ev in follow_events(run_id, start):
            yield {"id": str(ev.id), "event": ev.type, "data": ev.model_dump_json()}

    return EventSourceResponse(gen(), ping=int(settings.sse_ping_s))


def _ws_authorize(websocket: WebSocket, run_id: str) -> None:
    token = websocket.query_params.get("token") or bearer_token(websocket.headers.get("authorization"))
    with session_scope() as s:
        runs.get_run(s, run_id, authenticate(s, token))


@router.websocket("/{run_id}/ws")
async def ws_events(websocket: WebSocket, run_id: str) -> None:
    """WebSocket stream (?after=N, ?token=… for browsers); closes 4401/4404/4422, or 1000 after the terminal event."""
    await websocket.accept()
    try:
        after = int(websocket.query_params.get("after", "0"))
        if after < 0:
            raise ValueError
    except ValueError:
        await websocket.close(code=4422, reason="after must be a non-negative integer")
        return
    try:
        await run_in_threadpool(_ws_authorize, websocket, run_id)
    except Unauthorized as exc:
        await websocket.close(code=4401, reason=exc.message)
        return
    except NotFound as exc:
        await websocket.close(code=4404, reason=exc.message)
        return
    try:
        async for ev in follow_events(run_id, after):
            await websocket.send_text(ev.model_dump_json())
        await websocket.close(code=1000, reason="run finished")
    except WebSocketDisconnect:
        return
