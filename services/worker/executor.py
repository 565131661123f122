"""Executing one run: lock, claim, heartbeat, the steps, and a terminal state with a reason.

For now the run is a *navigate-and-capture run*: open `start_url`, record one step with a
screenshot and the page title, finish. The web-agent loop replaces `navigate_and_capture`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import redis
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page
from redis.exceptions import LockError

from services.worker.browser import get_browser_pool
from sparkpilot import runs
from sparkpilot.db.models import RunStatus, Step
from sparkpilot.db.session import session_scope
from sparkpilot.events import add_event, publish
from sparkpilot.metrics import QUEUE_WAIT_SECONDS, STEP_SECONDS
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import EventPublic
from sparkpilot.settings import WorkerSettings, get_worker_settings

log = logging.getLogger(__name__)


def worker_name() -> str:
    """host:pid of the process executing the run (a pool child, not the Celery main process)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat(threading.Thread):
    """Keeps the run's Redis lock and DB heartbeat fresh and watches for cancellation."""

    def __init__(self, run_id: str, lock: Any, settings: WorkerSettings) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.run_id, self.lock, self.settings = run_id, lock, settings
        self.cancel_requested = threading.Event()
        self._stop_evt = threading.Event()

    def beat(self) -> None:
        """One heartbeat: extend the lock, touch the run, read the cancel flag."""
        try:
            self.lock.extend(self.settings.lease_ttl_s, replace_ttl=True)
        except (LockError, redis.RedisError) as exc:
            log.warning("run %s: lock not extended (%s)", self.run_id, exc)
        try:
            with session_scope() as s:
                if runs.heartbeat(s, self.run_id):
                    self.cancel_requested.set()
        except Exception as exc:  # noqa: BLE001 - a DB hiccup must not kill the heartbeat
            log.warning("run %s: heartbeat failed (%s)", self.run_id, exc)

    def run(self) -> None:
        while not self._stop_evt.wait(self.settings.heartbeat_s):
            self.beat()

    def stop(self) -> None:
        """Stop beating."""
        self._stop_evt.set()


def commit_events(fn, *args: Any) -> list[EventPublic]:  # noqa: ANN001
    """Run `fn(session, *args)` in a transaction, then publish the events it returned."""
    with session_scope() as s:
        events = fn(s, *args)
    publish(get_redis(), events)
    return events


def _emit(session, run_id: str, type_: str, payload: dict) -> list[EventPublic]:  # noqa: ANN001
    return [add_event(session, run_id, type_, payload)]  # type: ignore[arg-type]


def execute_run(run_id: str, settings: WorkerSettings | None = None) -> str:
    """Execute a run end to end; returns what happened ('succeeded', 'skipped', ...)."""
    settings = settings or get_worker_settings()
    client = get_redis()
    lock = client.lock(
        settings.key("run", run_id, "lock"),
        timeout=settings.lease_ttl_s,
        blocking_timeout=settings.lease_ttl_s + 2,
        thread_local=False,  # the heartbeat thread extends it
    )
    if not lock.acquire():
        log.info("run %s is being executed elsewhere; dropping this delivery", run_id)
        return "locked"
    try:
        with session_scope() as s:
            claim = runs.claim_run(s, run_id, worker_name(), settings.max_attempts)
        publish(client, claim.events)
        if not claim.ok:
            return "skipped"
        assert claim.run is not None
        if not claim.resumed:
            wait = (claim.run.started_at - claim.run.created_at).total_seconds()
            QUEUE_WAIT_SECONDS.observe(client, wait)
        heart = Heartbeat(run_id, lock, settings)
        heart.start()
        try:
            status, reason, result = _run_steps(claim.run.id, claim.run.start_url, settings, heart)
        except Exception as exc:  # noqa: BLE001 - the run must end with a reason, whatever broke
            log.exception("run %s crashed", run_id)
            status, reason, result = RunStatus.failed, f"internal error: {type(exc).__name__}: {exc}", None
        finally:
            heart.stop()
        ended = commit_events(runs.finish_run, run_id, status, reason, result)
        return ended[0].type if ended else "already ended"
    finally:
        try:
            lock.release()
        except (LockError, redis.RedisError):
            pass


def _run_steps(
    run_id: str, start_url: str | None, settings: WorkerSettings, heart: Heartbeat
) -> tuple[RunStatus, str, str | None]:
    """The navigate-and-capture run: one step, then a terminal (status, reason, result)."""
    if heart.cancel_requested.is_set():
        return RunStatus.cancelled, runs.CANCELLED_BY_USER, None
    context = get_browser_pool(settings).new_context()
    try:
        page = context.new_page()
        step = navigate_and_capture(run_id, 0, page, start_url or "about:blank", settings)
    finally:
        context.close()  # a cancelled or failed run never keeps its browser context
    heart.beat()
    if heart.cancel_requested.is_set():
        return RunStatus.cancelled, runs.CANCELLED_BY_USER, None
    if step["error"]:
        return RunStatus.failed, step["error"], None
    title = step["observation"].get("title") or ""
    return RunStatus.succeeded, "navigate-and-capture complete", title


def navigate_and_capture(run_id: str, index: int, page: Page, url: str, settings: WorkerSettings) -> dict[str, Any]:
    """Open `url`, screenshot it and record the step (row + events); returns the step's fields."""
    action = {"name": "goto", "url": url}
    commit_events(_emit, run_id, "step.started", {"index": index, "action": action})
    t0 = time.perf_counter()
    error, observation, shot_rel = None, {}, None
    try:
        page.goto(url, wait_until="load")
    except PlaywrightError as exc:
        error = f"navigation failed: {_first_line(exc)}"
    t1 = time.perf_counter()
    try:
        observation = {"url": page.url, "title": page.title()}
        shot_rel = Path("artifacts") / "runs" / run_id / f"step-{index:04d}.png"
        shot_abs = settings.workspace_dir / shot_rel
        shot_abs.parent.mkdir(parents=True, exist_ok=True)
        _screenshot(page, shot_abs)
    except PlaywrightError as exc:
        error = error or f"capture failed: {_first_line(exc)}"
        shot_rel = None
    t2 = time.perf_counter()
    timings = {"navigate": round((t1 - t0) * 1000, 2), "capture": round((t2 - t1) * 1000, 2)}

    def _record(session) -> list[EventPublic]:  # noqa: ANN001
        timings["persist"] = round((time.perf_counter() - t2) * 1000, 2)
        timings["total"] = round((time.perf_counter() - t0) * 1000, 2)
        session.add(Step(run_id=run_id, index=index, action=action, observation=observation,
                         timings_ms=timings, error=error, screenshot_path=str(shot_rel) if shot_rel else None))
        payload = {"index": index, "action": action, "observation": observation, "timings_ms": timings,
                   "error": error, "has_screenshot": shot_rel is not None}
        return [add_event(session, run_id, "step.completed", payload)]

    commit_events(_record)
    STEP_SECONDS.observe(get_redis(), time.perf_counter() - t0)
    return {"observation": observation, "error": error}


def _first_line(exc: PlaywrightError) -> str:
    return (exc.message or str(exc)).splitlines()[0]


def _screenshot(page: Page, path: Path) -> None:
    """PNG screenshot; Chromium under load sometimes refuses the first capture, so try twice."""
    try:
        page.screenshot(path=str(path))
    except PlaywrightError:
        time.sleep(0.2)
        page.screenshot(path=str(path))
