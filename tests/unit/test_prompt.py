"""The prompt keeps goal, rules and last error whatever the page size; the page is what gets cut."""

from services.worker.agent.observe import Observation
from services.worker.agent.prompt import CHARS_PER_TOKEN, build_messages


def _obs(n_elements: int, text_len: int) -> Observation:
    elements = [{"bid": str(i), "tag": "button", "role": "", "text": f"button number {i}", "visible": True,
                 "in_viewport": True} for i in range(n_elements)]
    return Observation(url="http://x.test/", title="Big page", elements=elements, text="lorem ipsum " * text_len)


def test_huge_page_is_cut_to_the_budget_keeping_the_head() -> None:
    msgs = build_messages("buy the red shoes", _obs(5000, 50_000), ["click(bid='3')"], "no element [77]", 1500)
    total = sum(len(m["content"]) for m in msgs)
    assert total <= 1500 * CHARS_PER_TOKEN + 200
    user = msgs[1]["content"]
    assert user.startswith("GOAL: buy the red shoes")
    assert "LAST ERROR: no element [77]" in user and "click(bid='3')" in user
    assert "[0] button" in user and "more elements cut" in user
    assert "finish(answer)" in msgs[0]["content"]


def test_small_page_is_whole() -> None:
    msgs = build_messages("g", _obs(3, 2), [], None, 1500)
    user = msgs[1]["content"]
    assert "[2] button \"button number 2\"" in user and "lorem ipsum" in user
    assert "LAST ERROR" not in user and "PREVIOUS ACTIONS" not in user
