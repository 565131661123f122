"""Journey J1 in a real browser: the dashboard submits a run and shows it live with a screenshot."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from agent.chromium import CHROMIUM_ARGS


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()


def test_dashboard_runs_a_task_live(stack, pages, page) -> None:
    page.goto(stack.base_url + "/")
    expect(page.locator("#health")).to_contain_text("healthy", timeout=10_000)
    page.fill("#token", "wrong-token")
    page.click("#save-token")
    expect(page.locator("#error")).to_contain_text("401", timeout=10_000)

    page.fill("#token", stack.token)
    page.click("#save-token")
    page.fill("#task", "read the title of the test page")
    page.fill("#start-url", pages.url + "/index.html")
    page.fill("#max-steps", "2")
    page.click("#submit-run")

    # The real (tiny) model drives this run: any terminal status is fine, the live view is what is tested.
    expect(page.locator("#run-status")).to_have_text(re.compile("succeeded|failed"), timeout=120_000)
    assert page.locator("#events [data-event-id]").count() >= 5
    shot = page.locator("img.step-shot").first
    expect(shot).to_be_visible(timeout=10_000)
    assert page.evaluate("(img) => img.naturalWidth", shot.element_handle()) > 100
    expect(page.locator("#runs [data-run-id]").first).to_be_visible()


def test_dashboard_shows_validation_errors(stack, page) -> None:
    page.goto(stack.base_url + "/")
    page.fill("#token", stack.token)
    page.click("#save-token")
    page.fill("#task", "bad url")
    page.fill("#start-url", "ftp://example.test/")
    page.click("#submit-run")
    expect(page.locator("#error")).to_contain_text("not allowed", timeout=10_000)
