"""The Benchmarks and System pages in real Chromium against the real stack: charts drawn from saved results
written by agent.bench.summarize, every service's health, queue depth and a recent failure."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.helpers import FINISH, Stack, free_port, wait_terminal
from tests.integration.test_benchmarks_api import bench_gateway, write_results

NEWEST_MINIWOB = "miniwob-20250302T100000Z.json"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("dash-bench") / "benchmark-results"
    return folder, write_results(folder)


@pytest.fixture(scope="module")
def stack(stack: Stack, results, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: ANN001
    """The session's stack seen through a gateway of it that reads the saved results above."""
    gw = bench_gateway(stack, results[0], tmp_path_factory.mktemp("dash-bench-logs"))
    try:
        yield gw
    finally:
        gw.stop()


def test_benchmarks_page_draws_the_three_charts_from_saved_results(dash, results) -> None:  # noqa: ANN001
    _folder, reports = results
    dash.open("#/benchmarks")
    page = dash.page
    select = page.get_by_test_id("bench-select")
    expect(select).to_be_visible(timeout=15_000)
    expect(select.locator("option")).to_have_count(4)  # the readable results; the broken ones are listed apart
    expect(page.get_by_test_id("bench-summary")).to_contain_text("learner@v1")  # the newest MiniWoB++ result

    report = reports[NEWEST_MINIWOB]
    bars = page.get_by_test_id("task-bars")
    expect(bars.locator("svg.chart g.bar")).to_have_count(len(report["tasks"]))
    expect(bars.locator("svg.chart g.bar .whisker")).to_have_count(len(report["tasks"]))
    expect(bars.locator("svg.chart")).to_have_attribute("aria-label", re.compile(r"^success rate per item: click-button 0\.6667 \[.*\]; enter-text 0 \[0, "))

    line = page.get_by_test_id("version-line")
    # MiniWoB++ per version (base, learner@v1) and the learning run's rounds: two series, a legend, bands.
    expect(line.locator("svg.chart g.series")).to_have_count(2)
    expect(line.locator("svg.chart g.series polyline")).to_have_count(2)
    expect(line.locator("svg.chart polygon.band")).to_have_count(2)
    expect(line.locator("svg.chart g.legend")).to_contain_text("MiniWoB++")
    expect(line.locator("svg.chart .x-axis")).to_contain_text("learner@v1")

    hist = page.get_by_test_id("harness-hist")
    counts = report["harness_histogram_ms"]["counts"]
    expect(hist.locator("svg.chart rect.bin")).to_have_count(len(counts))
    for q in ("p50", "p95"):  # as the page rounds (JavaScript's Math.round)
        expect(page.get_by_test_id("harness-pcts")).to_contain_text(f"{q} {math.floor(report[f'harness_overhead_ms_{q}'] + 0.5)} ms")
    errors = page.get_by_test_id("bench-errors")
    expect(errors.locator("li")).to_have_count(3)
    expect(errors).to_contain_text("invalid JSON")
    page.wait_for_timeout(300)  # the charts redraw once at their laid-out width
    dash.shot("benchmarks")

    # Keyboard: the picker takes focus; another result redraws the per-task chart and the histogram's card.
    select.focus()
    expect(select).to_be_focused()
    select.select_option(label=next(o for o in select.locator("option").all_inner_texts() if "learning loop" in o))
    expect(bars).to_contain_text("Success per task (last round)")
    expect(hist).to_contain_text("Learning results carry no per-step harness timings")
    older = next(o for o in select.locator("option").all_inner_texts() if "(replay)" in o)
    select.select_option(label=older)
    expect(hist).to_contain_text("saved without a harness histogram")


def test_benchmarks_page_at_phone_width(narrow_dash) -> None:  # noqa: ANN001
    narrow_dash.open("#/benchmarks")
    page = narrow_dash.page
    expect(page.get_by_test_id("harness-hist").locator("svg.chart rect.bin").first).to_be_visible(timeout=15_000)
    page.wait_for_timeout(300)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at 390 px: {width}"
    narrow_dash.shot("benchmarks-narrow")


def test_benchmarks_page_empty_state_tells_how_to_produce_results(browser, stack: Stack, tmp_path: Path) -> None:  # noqa: ANN001
    gw = bench_gateway(stack, tmp_path / "none", tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(gw.base_url + "/#/benchmarks")
        page.fill("#token", gw.token)
        page.click("#save-token")
        empty = page.get_by_test_id("bench-empty")
        expect(empty).to_contain_text("scripts/benchmark.sh miniwob", timeout=15_000)
        expect(page.get_by_test_id("bench-select")).to_have_count(0)
        assert not errors, errors
        page.close()
    finally:
        gw.stop()


def test_system_page_shows_every_service_queue_depth_and_recent_errors(dash, stack: Stack) -> None:  # noqa: ANN001
    headers = {"Authorization": f"Bearer {stack.token}"}
    body = {"task": "system page failure", "start_url": f"http://127.0.0.1:{free_port()}/", **FINISH}
    with httpx.Client(base_url=stack.base_url, headers=headers, timeout=30) as api:
        run = api.post("/api/v1/runs", json=body).json()
        failed = wait_terminal(api, run["id"])
    assert failed["status"] == "failed"

    dash.open("#/system")
    page = dash.page
    services = page.get_by_test_id("system-services")
    expect(services.locator("article.svc")).to_have_count(6, timeout=15_000)
    for name in ("gateway", "database", "redis", "worker", "inference"):
        card = services.get_by_test_id(f"service-{name}")
        expect(card).to_have_attribute("data-status", "ok")
        expect(card.locator(".badge")).to_have_text("ok")
    expect(services.get_by_test_id("service-trainer")).to_be_visible()
    expect(services.get_by_test_id("service-worker")).to_contain_text("live process")

    queues = page.get_by_test_id("queue-depth")
    expect(queues).to_contain_text("Runs waiting on the queue")
    expect(queues.locator("dd").first).to_have_text("0")  # the worker is idle: nothing waits
    expect(page.get_by_test_id("model-throughput")).to_contain_text("Tokens generated (total)")
    expect(page.get_by_test_id("memory")).to_contain_text("Gateway process (RSS)")

    recent = page.get_by_test_id("recent-errors")
    row = recent.locator("tr", has_text=failed["id"][:8])
    expect(row).to_contain_text(failed["reason"][:40])
    expect(row.get_by_role("link")).to_have_attribute("href", f"#/runs/{failed['id']}")
    expect(page.get_by_test_id("system-status")).to_have_text("all essential services up")
    # It refreshes by itself: the "checked" time moves on.
    checked = page.locator("[role=status]", has_text="checked")
    first = checked.inner_text()
    expect(checked).not_to_have_text(first, timeout=12_000)
    dash.shot("system")


def test_system_page_at_phone_width(narrow_dash) -> None:  # noqa: ANN001
    narrow_dash.open("#/system")
    page = narrow_dash.page
    expect(page.get_by_test_id("system-services").locator("article.svc")).to_have_count(6, timeout=15_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at 390 px: {width}"
    narrow_dash.shot("system-narrow")
