"""The prompt: a fixed system part first (so the server's prefix cache hits every step), then the
goal, recent actions, the last error and the page; fitted to the model's context in real tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.action_space import ActionSpace, ThoughtMode, example_answer
from agent.observe import Observation, render_elements
from agent.tools import tool_lines

Messages = list[dict[str, str]]
CHARS_PER_TOKEN = 4  # only for policies without a tokenizer (scripted replay)

SYSTEM = """You are a web agent. You see a GOAL and the page's ELEMENTS, one per line as [ID] role "text".
Answer with ONE action as a JSON object, naming the element by its text and its ID from the list:
{"action":"click","target":TEXT,"bid":ID} click an element
{"action":"fill","target":TEXT,"bid":ID,"text":TEXT} type TEXT into a textbox
{"action":"select_option","target":TEXT,"bid":ID,"value":OPTION} choose an option of a list
{"action":"press","target":TEXT,"bid":ID,"key":KEY} press a key in a textbox
{"action":"scroll","dy":300} scroll down
{"action":"finish","answer":TEXT} the goal is reached
Only the actions that fit the page are allowed at each step.

Example 1:
GOAL: Click the "Submit" button.
ELEMENTS:
[318] button "Cancel"
[57] button "Submit"
ANSWER: %s

Example 2:
GOAL: Type "Paris" in the city field and press Search.
ELEMENTS:
[802] textbox "City"
[41] button "Search"
ANSWER: %s

Example 3:
GOAL: Type "Paris" in the city field and press Search.
PREVIOUS ACTIONS:
fill [802] "City" text='Paris'
ELEMENTS:
[802] textbox "City" value='Paris'
[41] button "Search"
ANSWER: %s"""


def system_prompt(thought: ThoughtMode = "none") -> str:
    """The goal-independent instructions with one worked example in the exact answer format."""
    return SYSTEM % (example_answer({"action": "click", "target": "Submit", "bid": "57"}, thought),
                     example_answer({"action": "fill", "target": "City", "bid": "802", "text": "Paris"}, thought),
                     example_answer({"action": "click", "target": "Search", "bid": "41"}, thought))


def build_messages(goal: str, obs: Observation, space: ActionSpace, history: list[str], last_error: str | None,
                   element_chars: int = 6000, text_chars: int = 1000) -> Messages:
    """Chat messages for one step, with at most `element_chars` of elements and `text_chars` of page text."""
    parts = [f"GOAL: {goal}"]
    if history:
        parts.append("PREVIOUS ACTIONS:\n" + "\n".join(history[-4:]))
    if last_error:
        parts.append(f"LAST ERROR: {last_error}")
    parts.append(f"PAGE: {obs.title} ({obs.url})")
    parts.append("ELEMENTS:\n" + render_elements(obs.elements, element_chars))
    text = _extra_text(obs, text_chars)
    if text:
        parts.append("PAGE TEXT:\n" + text)
    tools = tool_lines(space.tools)
    if tools:
        parts.append("TOOLS (results show in PREVIOUS ACTIONS):\n" + "\n".join(tools))
    parts.append("ALLOWED NOW: " + ", ".join(space.actions))
    parts.append("ANSWER:")
    return [{"role": "system", "content": system_prompt(space.thought)}, {"role": "user", "content": "\n".join(parts)}]


def _extra_text(obs: Observation, limit: int) -> str:
    """Page text lines that the element list does not already show (often none)."""
    if limit <= 0:
        return ""
    shown = sorted({e["text"] for e in obs.elements if e.get("visible") and e.get("text")}, key=len, reverse=True)
    lines = []
    for line in obs.text.splitlines():
        rest = line
        for t in shown:
            rest = rest.replace(t, " ")
        if sum(ch.isalnum() for ch in rest) >= 3:
            lines.append(line.strip())
    return "\n".join(lines)[:limit]


def fit_messages(build: Callable[[int, int], Messages], count: Callable[[Messages], int | None] | None,
                 limit_tokens: int) -> tuple[Messages, int]:
    """Build the prompt and shrink the page part until it fits `limit_tokens` as the server counts them.

    `count` is the served model's tokenizer (None, or a None answer: estimate at CHARS_PER_TOKEN).
    Page text is cut first, then the element list, in proportion to the overshoot.
    """
    def measure(messages: Messages) -> int:
        n = count(messages) if count else None
        return n if n is not None else sum(len(x["content"]) for x in messages) // CHARS_PER_TOKEN + 8

    element_chars, text_chars = limit_tokens * CHARS_PER_TOKEN, 1000
    for _ in range(6):
        messages = build(element_chars, text_chars)
        tokens = measure(messages)
        if tokens <= limit_tokens:
            return messages, tokens
        if text_chars:
            text_chars = 0
            continue
        element_chars = int(element_chars * min(0.9, limit_tokens / tokens * 0.95))
    messages = build(0, 0)
    tokens = measure(messages)
    if tokens > limit_tokens:
        raise PromptTooLong(f"the prompt needs {tokens} tokens even without the page; the model allows {limit_tokens}")
    return messages, tokens


class PromptTooLong(ValueError):
    """Even the fixed part of the prompt does not fit the model's context."""


def describe_action(action: dict[str, Any], obs: Observation | None = None) -> str:
    """One past action for the history, e.g. `click [57] "Submit"`."""
    args = dict(action.get("args", {}))
    bid = args.pop("bid", None)
    target = ""
    if bid is not None:
        el = obs.element(str(bid)) if obs is not None else None
        target = f" [{bid}]" + (f' "{el["text"][:40]}"' if el and el.get("text") else "")
    rest = " ".join(f"{k}={v!r}" for k, v in args.items())
    return f"{action['name']}{target}{(' ' + rest) if rest else ''}"
