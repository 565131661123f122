"""One headless Chromium per worker process, a fresh context per run."""

from __future__ import annotations

import logging
import socket
import threading
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from agent.chromium import CHROMIUM_ARGS, proxy_args
from sparkpilot.settings import WorkerSettings

log = logging.getLogger(__name__)


class EgressUnavailable(RuntimeError):
    """The egress proxy is not configured or does not answer: the browser is not started without it."""


def check_egress(proxy: str) -> None:
    """Raise EgressUnavailable unless the egress proxy accepts connections."""
    parts = urlsplit(proxy)
    if not parts.hostname:
        raise EgressUnavailable("SPARKPILOT_BROWSER_PROXY is not set: the browser has no egress gate "
                                "(start one with `python -m services.egress`)")
    try:
        with socket.create_connection((parts.hostname, parts.port or 3128), timeout=3):
            return
    except OSError as exc:
        raise EgressUnavailable(f"the egress proxy at {proxy} does not answer ({exc.strerror or exc}); "
                                "`make up` starts it (logs/egress.log), compose runs it as `egress`") from exc


class BrowserPool:
    """Launches Chromium lazily and relaunches it if it died; hands out isolated contexts."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = threading.Lock()

    def _ensure_browser(self) -> Browser:
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        check_egress(self.settings.browser_proxy)
        if self._pw is None:
            self._pw = sync_playwright().start()
        log.info("launching chromium %s behind %s", self.settings.chromium_path, self.settings.browser_proxy)
        # Downloads land in the workspace (never the system's temp folder) until the run keeps or refuses them.
        self._browser = self._pw.chromium.launch(
            executable_path=self.settings.chromium_path, headless=self.settings.headless,
            args=[*CHROMIUM_ARGS, *proxy_args(self.settings.browser_proxy)],
            downloads_path=str(self.settings.workspace_dir / "downloads"),
        )
        return self._browser

    def new_context(self) -> BrowserContext:
        """A fresh, isolated browser context (cookies, storage) for one run."""
        with self._lock:
            browser = self._ensure_browser()
        ctx = browser.new_context(
            viewport={"width": self.settings.viewport_width, "height": self.settings.viewport_height}
        )
        ctx.set_default_navigation_timeout(self.settings.navigation_timeout_s * 1000)
        ctx.set_default_timeout(self.settings.navigation_timeout_s * 1000)
        return ctx

    def discard(self) -> None:
        """Forget a browser found dead (its process killed before Playwright noticed); the next context relaunches."""
        with self._lock:
            if self._browser is not None:
                try:
                    self._browser.close()
                except PlaywrightError:
                    pass
                self._browser = None

    def close(self) -> None:
        """Close Chromium and Playwright."""
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._pw is not None:
            self._pw.stop()
            self._pw = None


_pool: BrowserPool | None = None


def get_browser_pool(settings: WorkerSettings) -> BrowserPool:
    """The process's browser pool (created after fork, on first use)."""
    global _pool
    if _pool is None:
        _pool = BrowserPool(settings)
    return _pool
