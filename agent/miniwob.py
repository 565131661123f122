"""MiniWoB++ episode harness: serve the task pages and drive episodes with our own Playwright page."""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from playwright.sync_api import Page

_TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_REGISTERED = re.compile(r'id="miniwob/([a-z0-9-]+)-v1"')

# One round trip: end any running episode, seed, lift the timer, generate the problem, read the instruction.
_START_JS = """([seed, maxTime, mode]) => {
  if (core.EP_TIMER !== null) { core.endEpisode(0); }
  Math.seedrandom(seed);
  core.EPISODE_MAX_TIME = maxTime;
  if (mode !== null) { core.setDataMode(mode); }
  core.startEpisodeReal();
  if (!WOB_TASK_READY) { return {ready: false, utterance: null}; }
  return {ready: true, utterance: core.getUtterance()};
}"""

_STATUS_JS = """() => (typeof WOB_DONE_GLOBAL === 'undefined' ? null : {
  done: WOB_DONE_GLOBAL,
  reward: WOB_REWARD_GLOBAL,
  raw: WOB_RAW_REWARD_GLOBAL,
  reason: WOB_REWARD_REASON,
})"""

_UTTERANCE_JS = "() => core.getUtterance()"


def _package_dir() -> Path:
    """The installed `miniwob` package folder, found without importing it (its import pulls in gymnasium)."""
    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the miniwob package is not installed (pip install miniwob)")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def html_dir() -> Path:
    """The `miniwob/html` folder of the installed package (holds miniwob/, core/, common/, flight/)."""
    path = _package_dir() / "html"
    if not (path / "core" / "core.js").is_file():
        raise RuntimeError(f"miniwob html folder not found at {path}")
    return path


def _is_task_page(path: Path) -> bool:
    """True if the page loads core.js and defines genProblem, i.e. is a playable task."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return "core/core.js" in text and "genProblem" in text


@functools.cache
def _all_tasks() -> tuple[str, ...]:
    """Every task page under html/miniwob, sorted (flight.* tasks live elsewhere and need a server)."""
    pages = sorted((html_dir() / "miniwob").glob("*.html"))
    return tuple(p.stem for p in pages if _TASK_NAME.match(p.stem) and _is_task_page(p))


@functools.cache
def _registered_tasks() -> frozenset[str]:
    """Task names the gym package registers as `miniwob/<task>-v1`, read from its source text."""
    text = (_package_dir() / "registration.py").read_text(encoding="utf-8")
    return frozenset(_REGISTERED.findall(text))


def list_tasks(registered_only: bool = False) -> list[str]:
    """Task names playable as `miniwob/<task>.html`; registered_only keeps the gym-registered ones."""
    tasks = list(_all_tasks())
    if registered_only:
        registered = _registered_tasks()
        tasks = [t for t in tasks if t in registered]
    return tasks


def task_path(base_url: str, task: str) -> str:
    """The URL of a task page under a base URL that serves html_dir() (http:// or file://)."""
    if task not in _all_tasks():
        raise ValueError(f"unknown MiniWoB task: {task!r}")
    return f"{base_url.rstrip('/')}/miniwob/{task}.html"


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static file handler that does not log every request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the access log line."""

    def end_headers(self) -> None:
        """Forbid caching so a reload always gets the packaged file."""
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that stays quiet when a browser drops a connection mid-response."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects (a reload aborts loads); report anything else as usual."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            super().handle_error(request, client_address)


class MiniwobServer:
    """Serves html_dir() on 127.0.0.1 (a free port) from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind and start serving at once."""
        handler = functools.partial(_QuietHandler, directory=str(html_dir()))
        self._httpd = _Server((host, port), handler)
        self.host, self.port = self._httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="miniwob-http", daemon=True)
        self._thread.start()

    def task_url(self, task: str) -> str:
        """The served URL of one task page."""
        return task_path(self.url, task)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        """Context manager entry: the running server."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Context manager exit: close the server."""
        self.close()


@dataclass
class EpisodeStatus:
    """The page's episode outcome globals at one moment."""

    done: bool
    reward: float
    raw_reward: float
    reason: str | None

    @property
    def success(self) -> bool:
        """True when the task judged the episode a success (raw reward > 0)."""
        return self.raw_reward > 0


class MiniwobEpisode:
    """Runs MiniWoB++ episodes on one Playwright page: start with a seed, then read the status."""

    ROOT = "#area"  # the task's own area; the instruction above it is given as the goal
    MAX_TIME_MS = 1_000_000
    READY_TIMEOUT_MS = 5_000

    def __init__(self, page: Page, data_mode: str | None = "train") -> None:
        """Wrap a page; data_mode 'train' matches the gym env's default episodes."""
        self.page = page
        self.data_mode = data_mode
        self.task: str | None = None
        self.seed: int | None = None
        self._utterance: str | None = None

    @property
    def utterance(self) -> str:
        """The instruction of the current episode."""
        if self._utterance is None:
            raise RuntimeError("no episode started")
        return self._utterance

    def start(self, task: str, seed: int, url: str, reload: bool = False) -> str:
        """Start a seeded episode of `task` from base `url`; reset in-page when already there."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError("seed must be an int (string seeds collide in seedrandom)")
        target = task_path(url, task)
        if reload or self.page.url.split("#", 1)[0] != target:
            self.page.goto(target, wait_until="load")
        res = self.page.evaluate(_START_JS, [seed, self.MAX_TIME_MS, self.data_mode])
        if not res["ready"]:
            self.page.wait_for_function("() => WOB_TASK_READY === true", timeout=self.READY_TIMEOUT_MS)
            res["utterance"] = self.page.evaluate(_UTTERANCE_JS)
        utterance = res["utterance"]
        if isinstance(utterance, dict):
            utterance = utterance["utterance"]
        self.task, self.seed, self._utterance = task, seed, str(utterance)
        return self._utterance

    def status(self) -> EpisodeStatus | None:
        """Read WOB_DONE_GLOBAL, WOB_REWARD_GLOBAL, WOB_RAW_REWARD_GLOBAL and WOB_REWARD_REASON."""
        res = self.page.evaluate(_STATUS_JS)
        if res is None:  # not on a MiniWoB page any more
            return None
        return EpisodeStatus(
            done=bool(res["done"]),
            reward=float(res["reward"] or 0.0),
            raw_reward=float(res["raw"] or 0.0),
            reason=res["reason"],
        )


def episode_outcome(episode: MiniwobEpisode):  # noqa: ANN201 - returns loop.Outcome | None
    """The loop's outcome once the episode is over (reward > 0 = succeeded), else None."""
    from playwright.sync_api import Error as PlaywrightError

    from agent.loop import Outcome

    try:
        st = episode.status()
    except PlaywrightError:  # the action navigated: let the new page load, then look again
        try:
            episode.page.wait_for_load_state("load", timeout=10_000)
            st = episode.status()
        except PlaywrightError as exc:
            return Outcome("failed", f"MiniWoB page lost: {(exc.message or str(exc)).splitlines()[0]}")
    if st is None:
        return Outcome("failed", f"left the MiniWoB task page (now at {episode.page.url})")
    if not st.done:
        return None
    reason = f"miniwob reward {st.raw_reward:g}" + (f" ({st.reason})" if st.reason else "")
    return Outcome("succeeded" if st.success else "failed", reason, f"{st.raw_reward:g}", st.raw_reward)


def episode_reward(episode: MiniwobEpisode) -> float:
    """The reward the episode earned so far: its raw reward once done, else 0 (nothing earned)."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        st = episode.status()
    except PlaywrightError:
        return 0.0
    return st.raw_reward if st is not None and st.done else 0.0


def base_of(task_url: str) -> str:
    """The served html root of a task page URL (…/miniwob/TASK.html → …)."""
    head, sep, _ = task_url.rpartition("/miniwob/")
    if not sep:
        raise ValueError(f"{task_url!r} is not a MiniWoB task page URL")
    return head
