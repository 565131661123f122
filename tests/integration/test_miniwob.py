"""MiniWoB++ harness: real task pages served locally, driven by our Playwright in headless Chromium."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from agent.miniwob import (
    MiniwobEpisode,
    MiniwobServer,
    html_dir,
    list_tasks,
)

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
CLICK_BUTTON = re.compile(r'^Click on the "(.+)" button\.$')
ENTER_TEXT = re.compile(r'^Enter "(.+)" into the text field and press Submit\.$')


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server() -> Iterator[MiniwobServer]:
    """The packaged task pages over local HTTP."""
    with MiniwobServer() as s:
        yield s


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page at MiniWoB's usual small viewport."""
    ctx = browser.new_context(viewport={"width": 500, "height": 320})
    p = ctx.new_page()
    yield p
    ctx.close()


def _button_texts(page: Page) -> list[str]:
    """Texts of the task's buttons, in page order."""
    return page.locator("#area button").all_inner_texts()


def _solve_click_button(page: Page, utterance: str) -> None:
    """Click a button whose text is exactly the requested one."""
    m = CLICK_BUTTON.match(utterance)
    assert m, utterance
    page.get_by_role("button", name=m.group(1), exact=True).first.click()


def test_list_tasks_has_the_benchmark() -> None:
    tasks = list_tasks()
    assert len(tasks) > 100
    assert {"click-button", "enter-text", "click-test", "email-inbox-nl-turk"} <= set(tasks)
    assert not any(t.startswith("flight") for t in tasks)
    assert all((html_dir() / "miniwob" / f"{t}.html").is_file() for t in tasks)
    registered = list_tasks(registered_only=True)
    assert 100 < len(registered) < len(tasks) and "click-button" in registered


def test_server_serves_task_pages(server: MiniwobServer) -> None:
    import httpx

    r = httpx.get(server.task_url("click-button"))
    assert r.status_code == 200 and "genProblem" in r.text
    assert httpx.get(f"{server.url}/core/core.js").status_code == 200
    with pytest.raises(ValueError):
        server.task_url("../../etc/passwd")


def test_click_button_solved(page: Page, server: MiniwobServer) -> None:
    ep = MiniwobEpisode(page)
    utterance = ep.start("click-button", 3, server.url)
    assert CLICK_BUTTON.match(utterance) and ep.utterance == utterance
    before = ep.status()
    assert not before.done and before.raw_reward == 0 and not before.success
    _solve_click_button(page, utterance)
    st = ep.status()
    assert st.done and st.success
    assert st.raw_reward == 1.0
    assert st.reward == pytest.approx(1.0, abs=0.01)  # time-proportional, but the limit is 1000 s


def test_click_button_wrong_click_fails(page: Page, server: MiniwobServer) -> None:
    ep = MiniwobEpisode(page)
    for seed in range(50):  # find a seed whose page has a button other than the requested one
        target = CLICK_BUTTON.match(ep.start("click-button", seed, server.url)).group(1)
        wrong = [t for t in _button_texts(page) if t != target]
        if wrong:
            break
    else:
        pytest.fail("no click-button episode with a wrong button in 50 seeds")
    page.get_by_role("button", name=wrong[0], exact=True).first.click()
    st = ep.status()
    assert st.done and not st.success
    assert st.raw_reward == -1.0 and st.reward == -1.0


def test_click_test_and_enter_text_solved(page: Page, server: MiniwobServer) -> None:
    ep = MiniwobEpisode(page)
    assert ep.start("click-test", 5, server.url) == "Click the button."
    page.click("#subbtn")
    st = ep.status()
    assert st.done and st.success and st.raw_reward == 1.0

    m = ENTER_TEXT.match(ep.start("enter-text", 11, server.url))
    assert m, ep.utterance
    page.fill("#tt", m.group(1))
    page.click("#subbtn")
    st = ep.status()
    assert st.done and st.success and st.raw_reward == 1.0

    m = ENTER_TEXT.match(ep.start("enter-text", 12, server.url))
    page.fill("#tt", m.group(1) + "x")  # wrong text is judged a failure
    page.click("#subbtn")
    st = ep.status()
    assert st.done and not st.success and st.raw_reward == -1.0


def test_seeds_are_deterministic_and_in_page_reset_works(browser: Browser, page: Page, server: MiniwobServer) -> None:
    ep = MiniwobEpisode(page)
    first = ep.start("click-button", 7, server.url)
    first_buttons = _button_texts(page)
    page_id = page.evaluate("() => (window.__probe = Math.random())")  # survives only without a reload

    # Same page, no reload: reset in-page; the unfinished episode is abandoned and a new one is playable.
    utterances = {ep.start("click-button", s, server.url) for s in range(20, 30)}
    assert len(utterances) > 1  # different seeds give different episodes
    again = ep.start("click-button", 7, server.url)
    assert page.evaluate("() => window.__probe") == page_id  # really no reload happened
    assert again == first and _button_texts(page) == first_buttons
    assert not ep.status().done
    _solve_click_button(page, again)
    assert ep.status().success

    # After a finished episode, the next in-page start is playable too.
    nxt = ep.start("click-button", 8, server.url)
    assert page.evaluate("() => window.__probe") == page_id
    st = ep.status()
    assert not st.done and st.raw_reward == 0 and st.reason is None
    _solve_click_button(page, nxt)
    assert ep.status().success

    # A fresh page (and a reload) with seed 7 gives the very same episode.
    other = browser.new_page(viewport={"width": 500, "height": 320})
    try:
        ep2 = MiniwobEpisode(other)
        assert ep2.start("click-button", 7, server.url) == first
        assert _button_texts(other) == first_buttons
        assert ep2.start("click-button", 7, server.url, reload=True) == first
    finally:
        other.close()


def test_nl_turk_utterance_is_a_string(page: Page, server: MiniwobServer) -> None:
    ep = MiniwobEpisode(page)
    utterance = ep.start("email-inbox-nl-turk", 1, server.url)
    assert isinstance(utterance, str) and len(utterance) > 5
    raw = page.evaluate("() => core.getUtterance()")
    assert isinstance(raw, dict) and raw["utterance"] == utterance


def test_file_url_base_works(page: Page) -> None:
    ep = MiniwobEpisode(page)
    utterance = ep.start("click-button", 7, html_dir().as_uri())
    assert CLICK_BUTTON.match(utterance)
    _solve_click_button(page, utterance)
    assert ep.status().success


def test_reset_vs_reload_timing(page: Page, server: MiniwobServer) -> None:
    """Measure (print only) an in-page reset against a full reload over 20 episodes each."""
    ep = MiniwobEpisode(page)
    ep.start("click-button", 0, server.url)
    timings: dict[str, list[float]] = {"in-page reset": [], "reload": []}
    for i in range(20):
        for label, reload in (("in-page reset", False), ("reload", True)):
            t0 = time.perf_counter()
            utterance = ep.start("click-button", 100 + i, server.url, reload=reload)
            timings[label].append((time.perf_counter() - t0) * 1000)
            assert CLICK_BUTTON.match(utterance)
    for label, ms in timings.items():
        print(f"\nminiwob {label}: median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms over {len(ms)}")


def test_ids_differ_between_two_episodes_of_the_same_task(page: Page, server: MiniwobServer) -> None:
    from agent.observe import bid_salt, observe

    ep = MiniwobEpisode(page)
    ids = []
    for seed in (0, 1):
        ep.start("click-checkboxes", seed, server.url)
        obs = observe(page, screenshot=False, salt=bid_salt("miniwob", "click-checkboxes", seed), root=MiniwobEpisode.ROOT)
        ids.append([e["bid"] for e in obs.elements])
        assert page.locator("#query").get_attribute("data-bid") is None  # the instruction is the goal, not an element
    assert ids[0] and ids[1] and ids[0] != ids[1]
