"""A run's live view (CDP screencast frames to the dashboard) and a person's control of its browser.

Playwright's sync API delivers CDP events only while its thread is inside a Playwright call, so
the agent loop calls `pump` while it waits on the model, and a person's turn pumps while it waits
for their next action. Frames are cast only while a dashboard watches (the gateway keeps the watch
key alive), so unwatched runs pay nothing but a poller thread's two Redis reads every POLL_S.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from sparkpilot.control import control_key, frame_message, frames_channel, pop_action, watch_key

log = logging.getLogger(__name__)
POLL_S = 0.2
MAX_FPS = 8  # "a few frames per second": the newest frame wins, none is older than 1/MAX_FPS s when sent
PUMP_MS = 15


class LiveView:
    """Casts the run's page while it is watched, and tells the loop when a person has control."""

    def __init__(self, run_id: str, client: redis.Redis) -> None:
        self.run_id, self.client = run_id, client
        self.watching = threading.Event()
        self.human = threading.Event()
        self.page: Page | None = None
        self._cdp: Any = None
        self._latest: str | None = None
        self._fresh = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll, daemon=True, name=f"live-poll-{run_id}"),
                         threading.Thread(target=self._publish, daemon=True, name=f"live-pub-{run_id}")]
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------ background threads
    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                watched, control = self.client.mget(watch_key(self.run_id), control_key(self.run_id))
                (self.watching.set if watched else self.watching.clear)()
                (self.human.set if control == b"human" or control == "human" else self.human.clear)()
            except redis.RedisError as exc:  # the view pauses; the run goes on
                log.debug("live view poll: %s", exc)
            self._stop.wait(POLL_S)

    def _publish(self) -> None:
        while not self._stop.is_set():
            with self._fresh:
                while self._latest is None and not self._stop.is_set():
                    self._fresh.wait(1.0)
                message, self._latest = self._latest, None
            if message is None:
                continue
            try:
                self.client.publish(frames_channel(self.run_id), message)
            except redis.RedisError as exc:
                log.debug("live view publish: %s", exc)
            self._stop.wait(1 / MAX_FPS)

    def _offer(self, message: str) -> None:
        with self._fresh:
            self._latest = message
            self._fresh.notify()

    # ------------------------------------------------------------ on the loop's (Playwright's) thread
    def attach(self, page: Page) -> None:
        """Cast this page from now on (a new context, or after a relaunch)."""
        self._stop_cast()
        self.page = page

    def sync(self) -> None:
        """Start or stop casting to match whether anyone watches."""
        if self.watching.is_set() and self._cdp is None and self.page is not None:
            try:
                cdp = self.page.context.new_cdp_session(self.page)
                cdp.on("Page.screencastFrame", lambda ev: self._on_frame(cdp, ev))
                cdp.send("Page.startScreencast", {"format": "jpeg", "quality": 60, "maxWidth": 1280, "maxHeight": 800})
                self._cdp = cdp
            except PlaywrightError as exc:
                log.warning("run %s: live view could not start (%s)", self.run_id, str(exc).splitlines()[0])
        elif not self.watching.is_set() and self._cdp is not None:
            self._stop_cast()

    def _on_frame(self, cdp: Any, ev: dict[str, Any]) -> None:
        try:
            cdp.send("Page.screencastFrameAck", {"sessionId": ev["sessionId"]})
        except PlaywrightError:
            return  # the page is closing
        meta = ev.get("metadata", {})
        self._offer(frame_message("frame", data=ev["data"], ts=meta.get("timestamp"), sent=time.time(),
                                  w=meta.get("deviceWidth"), h=meta.get("deviceHeight"),
                                  url=self.page.url if self.page is not None else None))

    def _stop_cast(self) -> None:
        cdp, self._cdp = self._cdp, None
        if cdp is not None:
            try:
                cdp.send("Page.stopScreencast")
                cdp.detach()
            except PlaywrightError:
                pass  # the page is already gone

    def live(self) -> bool:
        """True while someone watches (the loop then pumps while it waits)."""
        return self.watching.is_set()

    def pump(self, ms: float = PUMP_MS) -> None:
        """Let Playwright deliver screencast frames for `ms` (a plain sleep when the page is gone)."""
        self.sync()
        if self.page is None:
            time.sleep(ms / 1000)
            return
        try:
            self.page.wait_for_timeout(ms)
        except PlaywrightError:
            time.sleep(ms / 1000)

    def highlight(self, index: int, action: dict[str, Any], point: tuple[float, float] | None, label: str) -> None:
        """Tell viewers what the agent is about to do, and where."""
        if not self.watching.is_set():
            return
        try:
            self.client.publish(frames_channel(self.run_id), frame_message(
                "action", index=index, name=action.get("name"), label=label, sent=time.time(),
                x=point[0] if point else None, y=point[1] if point else None,
                actor=action.get("actor", "agent")))
        except redis.RedisError as exc:
            log.debug("live view highlight: %s", exc)

    def next_action(self):  # noqa: ANN201 - a HumanAction or None
        """The person's next queued action, if any."""
        try:
            return pop_action(self.client, self.run_id)
        except redis.RedisError as exc:
            log.warning("run %s: could not read the person's actions (%s)", self.run_id, exc)
            return None

    def close(self) -> None:
        """Stop casting and the threads."""
        self._stop_cast()
        self._stop.set()
        with self._fresh:
            self._fresh.notify_all()
        for t in self._threads:
            t.join(2)
