"""The worker's side of the agent loop: steps, screenshots and events go to the DB, files and Redis."""

from __future__ import annotations

import errno
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from playwright.sync_api import BrowserContext, Page
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential
from playwright.sync_api import Error as PlaywrightError

from agent.approval_policy import Judgement
from agent.background import OrderedWriter
from agent.loop import Hooks, Outcome, StepRecord
from agent.observe import Observation
from services.worker.live import LiveView
from agent.chromium import proxy_failure
from services.worker.browser import BrowserPool, BrowserUnavailable
from services.worker.netpolicy import network_policy
from sparkpilot import audit
from sparkpilot.control import set_control
from sparkpilot.db.models import Step
from sparkpilot.db.session import session_scope
from sparkpilot.events import add_event, publish
from sparkpilot.metrics import BROWSER_RESTARTS, STEP_PHASE_SECONDS, STEP_SECONDS
from sparkpilot.redis_client import get_redis
from sparkpilot.errors import SparkpilotError
from sparkpilot.run_files import files_dir, write_file
from sparkpilot.schemas import EventPublic
from sparkpilot.settings import WorkerSettings
from sparkpilot.urls import navigation_refusal, url_allowed

log = logging.getLogger(__name__)
AUDITED_BLOCKS = 50  # distinct blocked URLs audited per run; the rest only counted
STEP_PHASES = ("observe", "prompt", "model", "parse_guard", "approval", "act", "persist")


# A database that restarts (PostgreSQL failover, a restarted container) is waited for this long by each
# write of a run, which then goes on; only a longer outage ends the run.
DB_RETRY_S = 60


@retry(retry=retry_if_exception_type(OperationalError), stop=stop_after_delay(DB_RETRY_S),
       wait=wait_exponential(multiplier=0.2, max=2), reraise=True,
       before_sleep=lambda state: log.warning("database unavailable, retrying: %s", state.outcome.exception()))
def commit_events(fn, *args: Any) -> list[EventPublic]:  # noqa: ANN001
    """Run `fn(session, *args)` in a transaction (again, while the database is unreachable), then publish its events."""
    with session_scope() as s:
        events = fn(s, *args)
    publish(get_redis(), events)
    return events


def emit(session, run_id: str, type_: str, payload: dict) -> list[EventPublic]:  # noqa: ANN001
    """One event in the caller's transaction."""
    return [add_event(session, run_id, type_, payload)]  # type: ignore[arg-type]


def keep_download(download: Any, folder: Path, max_bytes: int) -> tuple[bool, str]:
    """Copy a finished download into the run's files `folder` as `downloads/NAME`, unless it is over `max_bytes`: (kept, note)."""
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", download.suggested_filename or "").strip().lstrip(".")[:128] or "download"
    try:
        size = Path(download.path()).stat().st_size  # path() waits for the download to finish
    except (PlaywrightError, OSError) as exc:
        return False, f"download {name!r} failed: {str(exc).splitlines()[0]}"
    if size > max_bytes:
        download.delete()
        return False, f"download {name!r} refused: {size} bytes is over the limit of {max_bytes} (SPARKPILOT_RUN_FILE_MAX_BYTES)"
    try:  # written without following links: a sandboxed program may have planted one in the run's files
        write_file(folder, f"downloads/{name}", Path(download.path()).read_bytes())
    except (SparkpilotError, OSError) as exc:
        download.delete()
        return False, f"download {name!r} could not be kept: {getattr(exc, 'message', exc)}"
    download.delete()
    return True, f"downloaded {name!r} ({size} bytes) into the run's files as downloads/{name}"


class WorkerHooks(Hooks):
    """Records each step of a run and owns its browser context."""

    def __init__(self, run_id: str, settings: WorkerSettings, heart: Any, pool: BrowserPool, start_url: str | None,
                 allowed: list[str] | None = None) -> None:
        self.run_id, self.settings, self.heart, self.pool = run_id, settings, heart, pool
        self.start_url = start_url
        # The run's allowed domains, for every top-level navigation (links, scripts, redirects), not just `goto`;
        # the loop shares this list and adds a host the approval policy let a `goto` reach.
        self.allowed: list[str] = list(allowed or [])
        self.context: BrowserContext | None = None
        self.page: Page | None = None
        self.env_check: Callable[[], Outcome | None] | None = None
        self.next_index = 0  # the index the next recorded step gets (a team run's web steps continue it)
        self.policy = network_policy(settings)
        # Events and step rows are written on this thread, in order, off the step's critical path.
        self.writer = OrderedWriter(f"recorder-{run_id}")
        self.blocked: list[str] = []  # requests the network policy refused since the model last heard of them
        self.left_for_error = False  # a top-level navigation was refused since the last guard_pages
        self.blocks, self.audited = 0, set()  # requests refused, and the distinct URLs audited
        self.downloads: list[Any] = []  # Playwright downloads started since the last action
        self.live_view = LiveView(run_id, get_redis())
        self.human_since: float | None = None  # when a person took control

    def open(self) -> Page:
        """A fresh context and page for this run, every request of it checked by the network policy."""
        for attempt in range(2):
            try:
                self.context = self.pool.new_context()
                self.context.route("**/*", self._route)
                self.context.on("request", self._on_request)  # redirect hops, which routing does not see
                self.context.on("page", lambda page: page.on("download", self._on_download))  # the page and popups
                self.page = self.context.new_page()
                self.live_view.attach(self.page)
                return self.page
            except PlaywrightError as exc:
                if attempt:
                    raise
                # Chromium died between runs and Playwright has not noticed yet: launch a new one.
                log.warning("run %s: the browser was gone (%s); relaunching", self.run_id, str(exc).splitlines()[0])
                self.pool.discard()
                BROWSER_RESTARTS.inc(get_redis(), "browser")
        raise AssertionError("unreachable")

    def _on_download(self, download: Any) -> None:
        self.downloads.append(download)

    def refusal(self, request: Any) -> str | None:
        """Why the browser may not make this request (judged on Chromium's canonical URL), or None."""
        url, scheme = request.url, request.url.split(":", 1)[0].lower()
        if request.is_navigation_request():
            bad = navigation_refusal(url)
            if bad:
                return f"blocked: {bad}"
            if self._top_level(request) and not url_allowed(url, self.allowed):
                return f"blocked: {url[:200]} is outside this run's allowed domains ({', '.join(self.allowed)})"
        elif scheme not in ("http", "https", "ws", "wss", "data", "blob"):
            return f"blocked: only http(s) may be loaded, not {scheme}: ({url[:200]})"
        return self.policy.check(url)

    @staticmethod
    def _top_level(request: Any) -> bool:
        try:
            return request.frame.parent_frame is None
        except PlaywrightError:  # a service worker's request has no frame
            return False

    def _route(self, route: Any, request: Any) -> None:
        reason = self.refusal(request)
        if reason is None:
            route.continue_()
            return
        route.abort("blockedbyclient")
        self._blocked(reason, request)

    def _on_request(self, request: Any) -> None:
        """A redirect hop: the proxy refuses a non-public address; here the model hears of it and it is audited."""
        if request.redirected_from is None:
            return
        reason = self.refusal(request)
        if reason is not None:
            self._blocked(f"redirect {reason}", request)

    def _blocked(self, reason: str, request: Any) -> None:
        if request.is_navigation_request() and self._top_level(request):
            self.left_for_error = True  # Chromium shows its error page: guard_pages goes back from it
        self.blocked.append(reason)
        self.blocks += 1
        url = request.url[:500]
        # One audit entry per distinct URL (and at most AUDITED_BLOCKS a run): a page that retries a request in a
        # loop must not flood the log; close() adds the run's total.
        if url in self.audited or len(self.audited) >= AUDITED_BLOCKS:
            return
        self.audited.add(url)
        log.warning("run %s: %s", self.run_id, reason)
        self._audit("network.blocked", url=url, navigation=request.is_navigation_request())

    def _audit(self, action: str, **details: Any) -> None:
        try:
            with session_scope() as s:
                audit.record(s, "worker", action, "run", self.run_id, **details)
        except SQLAlchemyError as exc:  # a route handler must never raise into Playwright
            log.warning("run %s: %s was not audited (%s)", self.run_id, action, exc)

    def guard_pages(self) -> None:
        """Leave any page that ended up where the run may not be (a scheme other than http(s), or off its domains).

        The last line behind the route and the proxy: judged on the URL Chromium committed, before the page
        is observed (its text and screenshot go to the model and the run's record).
        """
        if self.context is None:
            return
        back, self.left_for_error = self.left_for_error, False
        for page in self.context.pages:
            url = page.url
            if url.startswith("chrome-error:") and back:  # a refused link or script navigation: stay where it was
                try:
                    page.go_back()
                except PlaywrightError as exc:
                    log.warning("run %s: could not go back from a refused navigation (%s)", self.run_id, exc)
                continue
            if url.startswith(("about:", "chrome-error:")):
                continue
            bad = navigation_refusal(url) or (None if url_allowed(url, self.allowed) else
                                              f"{url[:200]} is outside this run's allowed domains ({', '.join(self.allowed)})")
            if bad:
                self.blocked.append(f"left the page: {bad}")
                log.warning("run %s: left %s (%s)", self.run_id, url[:200], bad)
                try:
                    page.goto("about:blank")
                except PlaywrightError as exc:
                    log.warning("run %s: could not leave %s (%s)", self.run_id, url[:200], exc)

    def network_notes(self) -> str | None:
        """What the network policy blocked, or a download refused, since the last call, for the model to read."""
        self.guard_pages()
        for download in self.downloads:
            kept, note = keep_download(download, files_dir(self.settings, self.run_id),
                                       self.settings.run_file_max_bytes)
            if kept:
                self.message(note)
            else:
                self.blocked.append(note)
            log.info("run %s: %s", self.run_id, note)
        self.downloads.clear()
        if not self.blocked:
            return None
        notes = "; ".join(dict.fromkeys(self.blocked))
        self.blocked.clear()
        return notes

    def open_start(self) -> str | None:
        """A fresh page on the run's start URL; the reason if navigating there failed."""
        try:
            page = self.open()
        except BrowserUnavailable as exc:
            return str(exc)
        if self.start_url:
            try:
                response = page.goto(self.start_url, wait_until="load")
            except PlaywrightError as exc:
                return self.network_notes() or f"navigation failed: {(exc.message or str(exc)).splitlines()[0]}"
            failure = proxy_failure(response.headers if response else None)
            if failure:
                return f"navigation failed: {self.start_url[:200]}: {failure}"
            notes = self.network_notes()
            if page.url == "about:blank" and notes:  # redirected somewhere the run may not be
                return notes
            if notes:
                self.blocked.append(notes)  # the model hears of it at the first step
        return None

    def flush(self) -> None:
        """Wait until every queued step and event is written (raise the first write error)."""
        self.writer.flush()

    def close(self) -> None:
        """At the run's end: write what is still queued, stop the writer, close the browser context."""
        if self.blocks:
            self._audit("network.summary", requests=self.blocks, distinct_urls_audited=len(self.audited))
        try:
            self.writer.flush()
        except Exception as exc:  # noqa: BLE001 - the run's end is written by the caller either way
            log.warning("run %s: a step was not persisted (%s)", self.run_id, exc)
        self.writer.close()
        self.live_view.close()
        try:
            set_control(get_redis(), self.run_id, "agent")  # a person's control ends with the run
        except redis.RedisError as exc:
            log.warning("run %s: could not clear its control keys (%s)", self.run_id, exc)
        self._close_context()

    def _close_context(self) -> None:
        if self.context is not None:
            try:
                self.context.close()
            except Exception:  # noqa: BLE001 - a dead browser is already closed
                pass
            self.context = None

    def relaunch(self) -> Page:
        """After a crash: a new context (relaunching Chromium if it died) on the last known URL."""
        last_url = self.page.url if self.page is not None else None
        self._close_context()
        page = self.open()
        target = last_url if last_url and last_url != "about:blank" else self.start_url
        if target:
            page.goto(target, wait_until="load")
        self.writer.submit(lambda: commit_events(emit, self.run_id, "run.message",
                                                 {"text": "the browser crashed and was relaunched"}))
        BROWSER_RESTARTS.inc(get_redis(), "page")
        return page

    def env_outcome(self) -> Outcome | None:
        """The environment's verdict (MiniWoB reward), when the run has one."""
        return self.env_check() if self.env_check else None

    def env_judges_end(self) -> bool:
        """True for runs in an environment (MiniWoB): its reward, not finish, decides success."""
        return self.env_check is not None

    def step_started(self, index: int) -> None:
        """Event step.started (and the live view starts or stops casting, as viewers come and go)."""
        self.live_view.sync()
        self.writer.submit(lambda: commit_events(emit, self.run_id, "step.started", {"index": index}))

    def message(self, text: str) -> None:
        """Event run.message from the agent."""
        self.writer.submit(lambda: commit_events(emit, self.run_id, "run.message", {"text": text, "from": "agent"}))

    def ask_approval(self, judgement: Judgement, action: dict[str, Any], obs: Observation) -> tuple[bool, str]:
        """Pause the run until a person answers (approval.requested / approval.decided events)."""
        from services.worker.waits import wait_for_approval  # waits builds on this module's commit_events

        self.writer.flush()  # the step's events come before the request
        return wait_for_approval(self.run_id, judgement.category, action, judgement.reason, obs.screenshot,
                                 self.settings, self.heart)

    def should_cancel(self) -> bool:
        """The cancel flag as the heartbeat thread last read it (every SPARKPILOT_HEARTBEAT_S)."""
        return self.heart.cancel_requested.is_set()

    def live(self) -> bool:
        """True while a dashboard shows this run's live view."""
        return self.live_view.live()

    def pump(self) -> None:
        """Deliver screencast frames for a moment."""
        self.live_view.pump()

    def acting(self, index: int, action: dict[str, Any], point: tuple[float, float] | None, label: str) -> None:
        """Highlight the coming action on the live view."""
        self.live_view.highlight(index, action, point, label)

    def human_control(self) -> bool:
        """True while a person has control; after SPARKPILOT_HUMAN_CONTROL_TIMEOUT_S idle, it returns to the agent."""
        if not self.live_view.human.is_set():
            return False
        now = time.monotonic()
        if self.human_since is None:
            self.human_since = now
        elif now - self.human_since > self.settings.human_control_timeout_s:
            set_control(get_redis(), self.run_id, "agent")
            self.live_view.human.clear()
            self.message(f"no action from the person for {self.settings.human_control_timeout_s:g} s: "
                         "the agent takes the browser back")
            return False
        return True

    def human_action(self) -> Any:
        """The person's next queued action (each one restarts the idle timeout)."""
        act = self.live_view.next_action()
        if act is not None:
            self.human_since = time.monotonic()
        return act

    def control_changed(self, by: str) -> None:
        """Event run.control: who has the browser now."""
        if by == "agent":
            self.human_since = None
        text = "a person has taken control of the browser" if by == "human" else "the agent has the browser again"
        self.writer.submit(lambda: commit_events(emit, self.run_id, "run.control", {"by": by, "text": text}))

    def record(self, step: StepRecord) -> None:
        """Queue the step's screenshot file, Step row and step.completed event (written in order, then published)."""
        self.next_index = step.index + 1
        self.writer.submit(lambda: self._persist(step))

    def _persist(self, step: StepRecord) -> None:
        t0 = time.perf_counter()
        shot_rel, full = None, None
        if step.observation.screenshot:
            shot_rel = Path("artifacts") / "runs" / self.run_id / f"step-{step.index:04d}.png"
            shot_abs = self.settings.workspace_dir / shot_rel
            try:
                shot_abs.parent.mkdir(parents=True, exist_ok=True)
                shot_abs.write_bytes(step.observation.screenshot)
            except OSError as exc:  # a full disk: the step is still stored (without its picture), then the run ends
                if exc.errno != errno.ENOSPC:
                    raise
                shot_abs.unlink(missing_ok=True)
                shot_rel, full = None, exc
        obs = step.observation.summary()

        def _write(session) -> list[EventPublic]:  # noqa: ANN001
            row = Step(run_id=self.run_id, index=step.index, action=step.action, observation=obs,
                       timings_ms={}, error=step.error, screenshot_path=str(shot_rel) if shot_rel else None,
                       prompt={"messages": step.prompt}, raw_output=step.raw_output,
                       model=step.model_metrics.get("model"))
            session.add(row)
            session.flush()
            # persist = screenshot file + the step's row written (one transaction; its commit is left out).
            step.timings_ms["persist"] = round((time.perf_counter() - t0) * 1000, 2)
            row.timings_ms = {**step.timings_ms, "model_metrics": step.model_metrics}
            payload = {"index": step.index, "action": step.action, "observation": obs, "timings_ms": step.timings_ms,
                       "error": step.error, "has_screenshot": shot_rel is not None}
            return emit(session, self.run_id, "step.completed", payload)

        commit_events(_write)
        if full is not None:
            raise full
        STEP_SECONDS.observe(get_redis(), step.timings_ms.get("step", 0.0) / 1000)
        STEP_PHASE_SECONDS.observe_many(get_redis(), [(step.timings_ms[p] / 1000, p) for p in STEP_PHASES
                                                      if p in step.timings_ms])
