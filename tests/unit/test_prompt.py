"""The prompt keeps goal, history and last error whatever the page size; the page is what gets cut."""

import pytest

from agent.action_space import build_action_space
from agent.observe import Observation
from agent.prompt import PromptTooLong, build_messages, fit_messages, system_prompt


def _obs(n_elements: int, text_len: int) -> Observation:
    elements = [{"bid": str(100 + i), "tag": "button", "role": "", "text": f"button number {i}", "visible": True,
                 "in_viewport": True} for i in range(n_elements)]
    return Observation(url="http://x.test/", title="Big page", elements=elements, text="lorem ipsum " * text_len)


def _count(messages) -> int:  # a stand-in tokenizer: one token per 3 characters
    return sum(len(m["content"]) for m in messages) // 3


def test_huge_page_is_cut_to_the_limit_keeping_the_head() -> None:
    obs = _obs(5000, 50_000)
    space = build_action_space(obs)
    msgs, tokens = fit_messages(lambda e, t: build_messages("buy the red shoes", obs, space, ['click [103] "x"'],
                                                             "no element [77]", e, t), _count, 1500)
    assert tokens == _count(msgs) <= 1500
    user = msgs[1]["content"]
    assert user.startswith("GOAL: buy the red shoes")
    assert "LAST ERROR: no element [77]" in user and 'click [103] "x"' in user
    assert "[100] button" in user and "more elements cut" in user and "lorem" not in user
    assert user.endswith("ANSWER:")


def test_small_page_is_whole_and_the_system_part_is_fixed() -> None:
    obs = _obs(3, 0)
    obs.text = "button number 0\nSome other text"
    msgs, _ = fit_messages(lambda e, t: build_messages("g", obs, build_action_space(obs), [], None, e, t), _count, 1500)
    user = msgs[1]["content"]
    assert '[102] button "button number 2"' in user
    assert "PAGE TEXT:\nSome other text" in user  # only what the elements do not show
    assert "LAST ERROR" not in user and "PREVIOUS ACTIONS" not in user
    assert msgs[0]["content"] == system_prompt() and '{"action":"click","target":"Submit","bid":"57"}' in msgs[0]["content"]


def test_a_limit_below_the_fixed_part_is_a_clear_error() -> None:
    obs = _obs(3, 0)
    with pytest.raises(PromptTooLong):
        fit_messages(lambda e, t: build_messages("g", obs, build_action_space(obs), [], None, e, t), _count, 50)
