"""Background loop in the gateway that ends runs whose worker died, and plans nobody approved in time."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sparkpilot import plans, runs
from sparkpilot.db.session import session_scope
from sparkpilot.events import publish
from sparkpilot.redis_client import get_redis
from sparkpilot.settings import GatewaySettings

log = logging.getLogger(__name__)


def reap_once(stale_after_s: float) -> int:
    """One sweep: fail (or cancel) runs with a stale heartbeat or an expired plan wait; returns how many ended."""
    with session_scope() as s:
        events = runs.reap_stale_runs(s, stale_after_s) + plans.expire_plan_waits(s)
    publish(get_redis(), events)
    for ev in events:
        log.warning("run %s ended by the reaper: %s", ev.run_id, ev.payload.get("reason"))
    return len(events)


async def reaper_loop(settings: GatewaySettings) -> None:
    """Sweep forever every `reaper_interval_s`."""
    while True:
        try:
            await run_in_threadpool(reap_once, settings.run_stale_after_s)
        except SQLAlchemyError as exc:
            log.warning("reaper: database unavailable: %s", exc)
        await asyncio.sleep(settings.reaper_interval_s)
