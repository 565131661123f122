"""The agent loop in process: real Chromium on local pages, a scripted (replay) policy."""

from __future__ import annotations

import pytest

from agent.loop import Hooks, LoopConfig, StepRecord, run_agent
from agent.observe import observe
from agent.policies import Decision, ReplayPolicy


class Recorder(Hooks):
    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.messages: list[str] = []

    def record(self, step: StepRecord) -> None:
        step.timings_ms["persist"] = 0.0
        self.steps.append(step)

    def message(self, text: str) -> None:
        self.messages.append(text)


@pytest.fixture
def page(browser, pages):
    ctx = browser.new_context(viewport={"width": 1000, "height": 700})
    p = ctx.new_page()
    p.goto(pages.url + "/agent.html")
    yield p
    ctx.close()


def bid_of(page, predicate) -> str:
    obs = observe(page, screenshot=False)
    matches = [e["bid"] for e in obs.elements if predicate(e)]
    assert matches, "element not found in observation"
    return matches[0]


def test_scripted_run_clicks_fills_selects_scrolls_navigates_and_finishes(page, pages) -> None:
    name = bid_of(page, lambda e: e.get("placeholder") == "Your name")
    color = bid_of(page, lambda e: e["tag"] == "select")
    agree = bid_of(page, lambda e: e.get("type") == "checkbox")
    go = bid_of(page, lambda e: e["text"] == "Go")
    span = bid_of(page, lambda e: e["text"] == "plain span")
    bottom = bid_of(page, lambda e: e["text"] == "Bottom button")
    nxt = bid_of(page, lambda e: e["text"] == "Next page")
    script = [
        {"name": "fill", "bid": name, "text": "Ada"},
        {"name": "select_option", "bid": color, "value": "green"},
        {"name": "click", "bid": agree},
        {"name": "click", "bid": go},
        {"name": "click", "bid": span},
        {"name": "scroll", "dx": 0, "dy": 3000},
        {"name": "click", "bid": bottom},
        {"name": "send_msg_to_user", "text": "almost there"},
        {"name": "click", "bid": nxt},
        {"name": "finish", "answer": "done: Ada"},
    ]
    hooks = Recorder()
    outcome = run_agent(page, ReplayPolicy(script), "fill the form", hooks, LoopConfig(max_steps=20, allowed=["127.0.0.1"]))
    assert (outcome.status, outcome.result) == ("succeeded", "done: Ada"), outcome
    assert [s.error for s in hooks.steps] == [None] * len(script)
    assert [s.action["name"] for s in hooks.steps] == [a["name"] for a in script]
    assert hooks.messages == ["almost there"]
    texts = [s.observation.text for s in hooks.steps]
    assert "Hello Ada g true" in texts[4] and "clicked span" in texts[5]
    assert "bottom clicked" in texts[8]
    assert hooks.steps[-1].observation.title == "Second page"
    first = hooks.steps[0]
    assert first.prompt[0]["role"] == "system" and "GOAL: fill the form" in first.prompt[1]["content"]
    assert first.observation.screenshot.startswith(b"\x89PNG")
    assert {"observe", "prompt", "model", "act"} <= set(first.timings_ms)


def test_ids_stay_stable_across_steps_and_dom_changes(page) -> None:
    before = {e["text"]: e["bid"] for e in observe(page, screenshot=False).elements if e["text"]}
    page.evaluate("""() => { const b = document.createElement('button'); b.textContent = 'New one';
                     document.body.prepend(b); }""")
    after = {e["text"]: e["bid"] for e in observe(page, screenshot=False).elements if e["text"]}
    for text in ("Go", "plain span", "Bottom button", "Next page"):
        assert after[text] == before[text]
    assert after["New one"] not in before.values()


def test_ids_are_random_per_salt_and_say_nothing_about_position(page) -> None:
    texts = ("Go", "plain span", "Bottom button", "Next page")
    first = {e["text"]: e["bid"] for e in observe(page, screenshot=False, salt=11).elements if e["text"] in texts}
    again = {e["text"]: e["bid"] for e in observe(page, screenshot=False, salt=11).elements if e["text"] in texts}
    other = {e["text"]: e["bid"] for e in observe(page, screenshot=False, salt=12).elements if e["text"] in texts}
    assert first == again  # stable within an episode
    assert first != other  # a new salt re-numbers the page
    assert all(2 <= len(b) <= 3 and b.isdigit() for b in first.values())
    ids = [int(e["bid"]) for e in observe(page, screenshot=False, salt=11).elements]
    assert ids != sorted(ids) and len(set(ids)) == len(ids)  # not in document order, no duplicates
    assert page.locator(f'[data-bid="{first["Go"]}"]').inner_text() == "Go"  # the same ids live in the DOM


def test_hidden_and_pointer_elements_are_observed(page) -> None:
    obs = observe(page, screenshot=False)
    span = next(e for e in obs.elements if e["text"] == "plain span")
    assert span["tag"] == "span" and span["visible"]
    hidden = next(e for e in obs.elements if e["text"] == "Hidden button" or (e["tag"] == "button" and not e["visible"]))
    assert hidden["visible"] is False


def test_garbage_policy_fails_after_failure_limit(page) -> None:
    hooks = Recorder()
    policy = ReplayPolicy(["I think I should maybe", "{{{{", "the page is nice"] * 3)
    outcome = run_agent(page, policy, "anything", hooks, LoopConfig(max_steps=10, max_failures=3))
    assert outcome.status == "failed" and outcome.reason.startswith("too many consecutive failures (3)")
    assert len(hooks.steps) == 3 and all(s.error.startswith("could not parse") for s in hooks.steps)
    assert "LAST ERROR: could not parse" in hooks.steps[1].prompt[1]["content"]


def test_guards_give_feedback_or_stop(page) -> None:
    hidden = bid_of(page, lambda e: e["tag"] == "button" and not e["visible"])
    search = bid_of(page, lambda e: e.get("type") == "search")
    script = [
        {"name": "click", "bid": "99999"},
        {"name": "click", "bid": hidden},
        {"name": "goto", "url": "http://elsewhere.test/"},
        {"name": "fill", "bid": search, "text": "shoes"},
        {"name": "finish", "answer": "found"},
    ]
    hooks = Recorder()
    outcome = run_agent(page, ReplayPolicy(script), "t", hooks, LoopConfig(max_steps=5, max_failures=10,
                                                                           allowed=["127.0.0.1"]))
    errors = [s.error for s in hooks.steps]
    assert "no element [99999]" in errors[0]
    assert "not visible" in errors[1]
    assert "outside this run's allowed domains" in errors[2]
    assert errors[3] is None and "did not submit" in errors[4]
    assert outcome.reason == "max_steps (5) reached"
    assert page.url.startswith("http://127.0.0.1")


def test_a_run_without_domains_is_allowed_only_the_first_site_it_opens(browser, pages) -> None:  # noqa: ANN001
    ctx = browser.new_context(viewport={"width": 1000, "height": 700})
    page = ctx.new_page()  # about:blank, like a run without a start URL
    script = [{"name": "goto", "url": "file:///etc/hostname"}, {"name": "goto", "url": pages.url + "/agent.html"},
              {"name": "goto", "url": "http://elsewhere.test/"}, {"name": "finish", "answer": "done"}]
    cfg = LoopConfig(max_steps=4, max_failures=10, allowed=[])
    hooks = Recorder()
    try:
        run_agent(page, ReplayPolicy(script), "t", hooks, cfg)
        errors = [s.error for s in hooks.steps]
        assert errors[0].startswith("goto refused: ") and errors[1] is None
        assert "outside this run's allowed domains (127.0.0.1)" in errors[2]  # the default policy denies leaving
        assert cfg.allowed == ["127.0.0.1"] and page.url.startswith(pages.url)
    finally:
        ctx.close()


def test_repeating_the_same_action_is_stopped(page) -> None:
    go = bid_of(page, lambda e: e["text"] == "Go")
    hooks = Recorder()
    outcome = run_agent(page, ReplayPolicy([{"name": "click", "bid": go}] * 8), "t", hooks,
                        LoopConfig(max_steps=8, max_failures=10))
    assert outcome.status == "failed" and outcome.reason.startswith("stuck: the same action click repeated 5")
    assert "without progress" in hooks.steps[2].error


def test_model_policy_errors_end_the_run_with_a_reason(page) -> None:
    from sparkpilot.llm_client import InferenceUnavailable

    class Down:
        name = "down"

        def prompt_limit(self, space) -> int:
            return 1500

        def count_tokens(self, messages, limit) -> None:
            return None

        def decide(self, messages, space) -> Decision:
            raise InferenceUnavailable("model server at x unreachable after 3 attempts")

        def close(self) -> None:
            pass

    outcome = run_agent(page, Down(), "t", Recorder(), LoopConfig(max_steps=3))
    assert outcome.status == "failed" and outcome.reason.startswith("model server unreachable")


class Relaunching(Recorder):
    def __init__(self, make_page, crash_again: bool = False) -> None:
        super().__init__()
        self.make_page, self.crash_again, self.relaunches = make_page, crash_again, 0

    def relaunch(self):
        self.relaunches += 1
        page = self.make_page()
        if self.crash_again:
            _crash(page)
        return page


def _crash(page) -> None:
    try:
        page.goto("chrome://crash", timeout=5000)
    except Exception:  # noqa: BLE001 - the navigation itself reports the crash
        pass


def test_crashed_page_is_relaunched_once(browser, pages) -> None:
    ctx = browser.new_context()

    def fresh():
        p = ctx.new_page()
        p.goto(pages.url + "/agent.html")
        return p

    page = fresh()
    _crash(page)
    hooks = Relaunching(fresh)
    outcome = run_agent(page, ReplayPolicy([{"name": "finish", "answer": "alive"}]), "t", hooks, LoopConfig(max_steps=3))
    assert (outcome.status, outcome.result, hooks.relaunches) == ("succeeded", "alive", 1)
    assert hooks.steps[0].observation.title == "Agent test page"

    page = fresh()
    _crash(page)
    hooks = Relaunching(fresh, crash_again=True)
    outcome = run_agent(page, ReplayPolicy([{"name": "finish"}]), "t", hooks, LoopConfig(max_steps=3))
    assert outcome.status == "failed" and outcome.reason.startswith("browser crashed")
    assert hooks.relaunches == 1
    ctx.close()


class _SlowReplay(ReplayPolicy):
    """A scripted answer that takes `delay_s`, as a model does; notes the thread it ran on."""

    def __init__(self, actions, delay_s: float) -> None:
        super().__init__(actions)
        self.delay_s, self.threads = delay_s, []

    def decide(self, messages, space):  # noqa: ANN001, ANN201
        import threading
        import time

        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay_s)
        return super().decide(messages, space)


def test_a_text_model_is_asked_while_the_screenshot_is_taken_and_every_step_keeps_its_screenshot(page) -> None:
    go = bid_of(page, lambda e: e["text"] == "Go")
    policy = _SlowReplay([{"name": "click", "bid": go}, {"name": "finish", "answer": "ok"}], delay_s=0.3)
    hooks = Recorder()
    outcome = run_agent(page, policy, "t", hooks, LoopConfig(max_steps=3, allowed=["127.0.0.1"], screenshot=True))
    assert outcome.status == "succeeded"
    assert len(hooks.steps) == 2
    assert all(t.startswith("decide") for t in policy.threads)  # not the loop's (Playwright's) thread
    for step in hooks.steps:
        assert step.observation.screenshot and step.observation.screenshot.startswith(b"\x89PNG")
        t = step.timings_ms
        assert t["model"] >= 300 and t["observe_screenshot"] > 0
        # Sequential, the step would last at least model + screenshot + element list + action.
        assert t["step"] < t["model"] + t["observe_screenshot"] + t["observe_elements"] + t["act"]


def test_a_model_that_reads_the_screenshot_gets_it_before_it_is_asked(page) -> None:
    from sparkpilot.profiles import ModelProfile

    seen = []

    class Looks(ReplayPolicy):
        def decide(self, messages, space):  # noqa: ANN001, ANN201
            seen.append(any(isinstance(m["content"], list) for m in messages))
            return super().decide(messages, space)

    cfg = LoopConfig(max_steps=2, screenshot=True, profile=ModelProfile(input="text+image"))
    outcome = run_agent(page, Looks([{"name": "finish", "answer": "ok"}]), "t", Recorder(), cfg)
    assert outcome.status == "succeeded" and seen == [True]
