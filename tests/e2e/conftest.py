"""Dashboard tests in real Chromium: a signed-in page that fails its test on any console error, and screenshots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect


ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"  # test artifacts; the README's pictures are copied from here


@dataclass
class Dash:
    """A dashboard tab: its page, the console errors seen, and the ones the test expects."""

    page: Page
    base_url: str
    token: str
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """A console error this test provokes on purpose (e.g. the browser's log of a 401)."""
        self.allowed.append(re.compile(pattern))

    def open(self, route: str = "#/runs", sign_in: bool = True) -> None:
        """Load the dashboard at `route`, signed in with the stack's admin token."""
        self.page.goto(f"{self.base_url}/{route}")
        if sign_in:
            self.sign_in(self.token)

    def sign_in(self, token: str) -> None:
        """Type the token into the header's sign-in form."""
        self.page.fill("#token", token)
        self.page.click("#save-token")
        if token == self.token:
            expect(self.page.locator("#sign-out")).to_be_visible(timeout=10_000)

    def go(self, route: str) -> None:
        """Navigate inside the app (hash route)."""
        self.page.evaluate("(r) => { location.hash = r; }", route)

    def shot(self, name: str) -> Path:
        """Save a full-page screenshot as a test artifact."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def unexpected_errors(self) -> list[str]:
        """Console errors no `allow` pattern covers."""
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


def open_dash(browser, base_url: str, token: str, width: int = 1280, height: int = 800) -> Iterator[Dash]:  # noqa: ANN001
    """A dashboard tab on any stack (generator: the caller yields from it); fails on unexpected console errors."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    dash = Dash(page, base_url, token)
    page.on("console", lambda m: dash.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: dash.errors.append(f"page error: {exc}"))
    yield dash
    context.close()
    assert not dash.unexpected_errors(), f"console errors: {dash.unexpected_errors()}"


@pytest.fixture
def dash(browser, stack) -> Iterator[Dash]:  # noqa: ANN001
    """A fresh 1280×800 dashboard tab; the test fails if the page logs an error it did not allow."""
    yield from open_dash(browser, stack.base_url, stack.token, 1280, 800)


@pytest.fixture
def narrow_dash(browser, stack) -> Iterator[Dash]:  # noqa: ANN001
    """The same at a phone's width (390×844)."""
    yield from open_dash(browser, stack.base_url, stack.token, 390, 844)
