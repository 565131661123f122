"""One headless Chromium per worker process, a fresh context per run."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from agent.chromium import CHROMIUM_ARGS, proxy_args
from sparkpilot.settings import WorkerSettings

log = logging.getLogger(__name__)


class BrowserUnavailable(RuntimeError):
    """The browser is not started: no egress proxy answers, or the account it runs as is missing."""


def check_egress(proxy: str) -> None:
    """Raise BrowserUnavailable unless the egress proxy accepts connections."""
    parts = urlsplit(proxy)
    if not parts.hostname:
        raise BrowserUnavailable("SPARKPILOT_BROWSER_PROXY is not set: the browser has no egress gate "
                                "(start one with `python -m services.egress`)")
    try:
        with socket.create_connection((parts.hostname, parts.port or 3128), timeout=3):
            return
    except OSError as exc:
        raise BrowserUnavailable(f"the egress proxy at {proxy} does not answer ({exc.strerror or exc}); "
                                "`make up` starts it (logs/egress.log), compose runs it as `egress`") from exc


# Playwright starts this script in Chromium's place: as root it hands the profile to `browser_user` and
# becomes that account, so Chromium keeps its own sandbox; as any other user it starts Chromium as itself.
AS_USER = Path(__file__).with_name("chromium-as-user.sh")


def launch_options(settings: WorkerSettings, downloads: Path) -> dict[str, Any]:
    """Playwright's launch options: Chromium sandboxed, never as root, with a scrubbed environment (no
    token or database URL of the worker's reaches it), behind the egress proxy, saving downloads in
    `downloads` (a private folder, given to the browser's account)."""
    user = ""
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(settings.browser_user)
        except KeyError:
            raise BrowserUnavailable(f"the account {settings.browser_user!r} that Chromium runs as does not exist: "
                                     "`make up` creates it (useradd --system), or set SPARKPILOT_BROWSER_USER") from None
        os.chown(downloads, account.pw_uid, account.pw_gid)
        user = settings.browser_user
    return {
        "executable_path": str(AS_USER), "chromium_sandbox": True, "headless": settings.headless,
        "args": [*CHROMIUM_ARGS, *proxy_args(settings.browser_proxy)],
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                "SPARKPILOT_BROWSER_USER": user, "SPARKPILOT_BROWSER_BINARY": settings.chromium_path},
        "downloads_path": str(downloads),
    }


class BrowserPool:
    """Launches Chromium lazily and relaunches it if it died; hands out isolated contexts."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._downloads: Path | None = None
        self._lock = threading.Lock()

    def _ensure_browser(self) -> Browser:
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        check_egress(self.settings.browser_proxy)
        if self._pw is None:
            self._pw = sync_playwright().start()
        log.info("launching chromium %s behind %s", self.settings.chromium_path, self.settings.browser_proxy)
        # A fresh private folder per launch (0700, the browser's account's alone): every account can reach
        # the system's temp folder, which the workspace's parents may not let the browser's account do.
        # A download waits there until its run keeps it in its files or refuses it.
        self._forget_downloads()
        self._downloads = Path(tempfile.mkdtemp(prefix="sparkpilot-downloads-"))
        self._browser = self._pw.chromium.launch(**launch_options(self.settings, self._downloads))
        return self._browser

    def _forget_downloads(self) -> None:
        if self._downloads is not None:
            shutil.rmtree(self._downloads, ignore_errors=True)
            self._downloads = None

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
        self._forget_downloads()


_pool: BrowserPool | None = None


def get_browser_pool(settings: WorkerSettings) -> BrowserPool:
    """The process's browser pool (created after fork, on first use)."""
    global _pool
    if _pool is None:
        _pool = BrowserPool(settings)
    return _pool
