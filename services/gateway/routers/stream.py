"""Live run and training-job events over Server-Sent Events and WebSocket, resumable from the last event id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Header, WebSocket, WebSocketDisconnect
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from services.gateway.event_hub import RESYNC, get_hub
from services.gateway.deps import (CurrentUser, DB, EventId, MAX_INT, WS_PROTOCOL, WS_TOKEN_PREFIX, Settings, Unauthorized,
                                  authenticate, bearer_token)
from sparkpilot import runs, training
from sparkpilot.control import WATCH_TTL_S, frames_channel, watch_key
from sparkpilot.redis_client import get_async_redis
from sparkpilot.db.models import JOB_TERMINAL, TERMINAL_STATUSES, Run, TrainingJob
from sparkpilot.db.session import session_scope
from sparkpilot.errors import NotFound
from sparkpilot.events import channel, job_channel, list_events, list_job_events, parse, parse_job

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["events"])

# Events are stored before they are published, so the database is the truth a stream falls back on:
# every DB_POLL_S while the gateway's pub/sub is down, and every SAFETY_POLL_S while it is up (an
# event whose publish failed on the worker's side still arrives).
DB_POLL_S = 1.0
SAFETY_POLL_S = 5.0


@dataclass(frozen=True)
class Stream:
    """One run's or one job's events: where they are published, how to read the stored ones, how to parse."""

    channel: str
    load: Callable[[int], tuple[list[Any], bool]]  # events with id > after, and whether the source has ended
    parse: Callable[[bytes | str], Any]


def run_stream(run_id: str) -> Stream:
    """A run's event stream."""
    def load(after: int) -> tuple[list[Any], bool]:
        with session_scope() as s:
            run = s.get(Run, run_id)
            return list_events(s, run_id, after), run is None or run.status in TERMINAL_STATUSES

    return Stream(channel(run_id), load, parse)


def job_stream(job_id: str) -> Stream:
    """A training job's event stream."""
    def load(after: int) -> tuple[list[Any], bool]:
        with session_scope() as s:
            job = s.get(TrainingJob, job_id)
            return list_job_events(s, job_id, after), job is None or job.status in JOB_TERMINAL

    return Stream(job_channel(job_id), load, parse_job)


async def follow_events(stream: Stream, after: int) -> AsyncIterator[Any]:
    """Every event with id > after, once and in order, until the terminal one."""
    last = after
    hub = get_hub()
    loop = asyncio.get_running_loop()
    with hub.listen(stream.channel) as queue:  # listen first, then read the backlog: nothing falls between
        while True:
            events, finished = await run_in_threadpool(stream.load, last)
            for ev in events:
                yield ev
                last = ev.id
                if ev.terminal:
                    return
            if finished and not events:
                return
            deadline = loop.time() + (SAFETY_POLL_S if hub.connected else DB_POLL_S)
            while (remaining := deadline - loop.time()) > 0:
                try:
                    raw = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if raw is RESYNC:
                    break  # the hub lost or regained Redis: read the database
                ev = stream.parse(raw)
                if ev.id <= last:
                    continue
                if ev.id != last + 1:
                    break  # a gap: fill it from the database
                yield ev
                last = ev.id
                if ev.terminal:
                    return


async def _sse(stream: Stream, start: int, ping_s: float) -> EventSourceResponse:
    async def gen() -> AsyncIterator[dict]:
        async for ev in follow_events(stream, start):
            yield {"id": str(ev.id), "event": ev.type, "data": ev.model_dump_json()}

    return EventSourceResponse(gen(), ping=int(ping_s))


Resume = Annotated[int | None, Header(ge=0, le=MAX_INT)]  # the Last-Event-ID header


@router.get("/runs/{run_id}/events")
async def sse_events(run_id: str, db: DB, user: CurrentUser, settings: Settings,
                     after: EventId = 0, last_event_id: Resume = None) -> EventSourceResponse:
    """Server-Sent Events; resume with the Last-Event-ID header (or ?after=N)."""
    runs.get_run(db, run_id, user)
    db.close()
    return await _sse(run_stream(run_id), after if last_event_id is None else last_event_id, settings.sse_ping_s)


@router.get("/training/jobs/{job_id}/events")
async def sse_job_events(job_id: str, db: DB, user: CurrentUser, settings: Settings,
                         after: EventId = 0, last_event_id: Resume = None) -> EventSourceResponse:
    """A training job's events (queued, phase, progress with step/loss/eta, finished) as Server-Sent Events."""
    training.get_job(db, job_id, user)
    db.close()
    return await _sse(job_stream(job_id), after if last_event_id is None else last_event_id, settings.sse_ping_s)


def _ws_token(websocket: WebSocket) -> str | None:
    """The token from the Sec-WebSocket-Protocol offer (`bearer.<token>`, what browsers can send) or Authorization."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    token = next((p[len(WS_TOKEN_PREFIX):] for p in offered if p.startswith(WS_TOKEN_PREFIX)), None)
    return token or bearer_token(websocket.headers.get("authorization"))


async def _ws(websocket: WebSocket, authorize: Callable[[str | None], None], stream: Stream, done: str,
              frames_of: str | None = None) -> None:
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    await websocket.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)
    if "token" in websocket.query_params:  # URLs land in access logs and browser history: never a token there
        await websocket.close(code=4400, reason="do not put the token in the URL: offer the subprotocols "
                                                f"'{WS_PROTOCOL}' and '{WS_TOKEN_PREFIX}<token>', or send Authorization")
        return
    try:
        after = int(websocket.query_params.get("after", "0"))
        if not 0 <= after <= MAX_INT:  # a database integer: past it the query itself would fail
            raise ValueError
    except ValueError:
        await websocket.close(code=4422, reason=f"after must be an integer from 0 to {MAX_INT}")
        return
    try:
        await run_in_threadpool(authorize, _ws_token(websocket))
    except Unauthorized as exc:
        await websocket.close(code=4401, reason=exc.message)
        return
    except NotFound as exc:
        await websocket.close(code=4404, reason=exc.message)
        return
    lock = asyncio.Lock()  # events and frames share the socket

    async def send(text: str) -> None:
        async with lock:
            await websocket.send_text(text)

    live = asyncio.create_task(_live_frames(frames_of, send)) if frames_of else None
    try:
        async for ev in follow_events(stream, after):
            await send(ev.model_dump_json())
        await websocket.close(code=1000, reason=done)
    except WebSocketDisconnect:
        return
    finally:
        if live is not None:
            live.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await live


async def _live_frames(run_id: str, send: Callable[[str], Awaitable[None]]) -> None:
    """Forward the run's live frames while the socket is open, keeping the worker casting (the watch key).

    A slow viewer gets the newest frame, not a backlog: frames already superseded in the queue are skipped.
    """
    client = get_async_redis()

    async def keep_watching() -> None:
        while True:
            with contextlib.suppress(redis.RedisError, OSError):
                await client.set(watch_key(run_id), "1", ex=WATCH_TTL_S)
            await asyncio.sleep(WATCH_TTL_S / 3)

    watcher = asyncio.create_task(keep_watching())
    try:
        with get_hub().listen(frames_channel(run_id)) as queue:
            while True:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                texts = [m.decode() if isinstance(m, bytes) else m for m in batch if m is not RESYNC]
                frames = [i for i, t in enumerate(texts) if t.startswith('{"kind":"frame"')]
                for i, text in enumerate(texts):
                    if i in frames and i != frames[-1]:
                        continue
                    await send(text)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        with contextlib.suppress(redis.RedisError, OSError):
            await client.aclose()


@router.websocket("/runs/{run_id}/ws")
async def ws_events(websocket: WebSocket, run_id: str) -> None:
    """WebSocket stream (?after=N; the token as subprotocol `bearer.<token>` or Authorization); closes 4400/4401/4404/4422, or 1000 after the terminal event.

    With ?frames=1 the socket also carries the live view: {"kind": "frame", "data": <base64 JPEG>, …}
    screencast frames and {"kind": "action", …} highlights, which have no event id and are never stored.
    """
    def authorize(token: str | None) -> None:
        with session_scope() as s:
            runs.get_run(s, run_id, authenticate(s, token))

    frames = websocket.query_params.get("frames") in ("1", "true")
    await _ws(websocket, authorize, run_stream(run_id), "run finished", run_id if frames else None)


@router.websocket("/training/jobs/{job_id}/ws")
async def ws_job_events(websocket: WebSocket, job_id: str) -> None:
    """A training job's events over WebSocket; same parameters and close codes as a run's."""
    def authorize(token: str | None) -> None:
        with session_scope() as s:
            training.get_job(s, job_id, authenticate(s, token))

    await _ws(websocket, authorize, job_stream(job_id), "job finished")
