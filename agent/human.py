"""A person's turn at the browser: their clicks, typing and scrolls, recorded as `human` steps.

Each step stores what the agent would have been shown at that moment (the observation and the
prompt) and, as its action, the person's act in the agent's own action space (a click on a point
becomes `click(bid)` of the element under it; typing becomes `fill(bid, value)` of the focused field),
so the trainer can use a person's steps as demonstrations.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

# The element under a point (or the focused one), as its data-bid, and a field's value after typing.
_AT_POINT_JS = """([x, y]) => {
  const el = document.elementFromPoint(x, y);
  const hit = el && el.closest('[data-bid]');
  return hit ? hit.dataset.bid : null;
}"""
_FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || !el.dataset || !el.dataset.bid) return null;
  return {bid: el.dataset.bid, value: 'value' in el ? String(el.value) : null};
}"""


def perform(page: Page, act: Any) -> tuple[dict[str, Any], str | None, tuple[float, float] | None]:
    """Do the person's action: (the action as recorded, an error, the point acted on)."""
    try:
        if act.type == "click":
            bid = page.evaluate(_AT_POINT_JS, [act.x, act.y])
            page.mouse.click(act.x, act.y)
            point = (act.x, act.y)
            if bid is not None:
                return {"name": "click", "args": {"bid": bid}, "actor": "human", "point": [act.x, act.y]}, None, point
            return {"name": "click_xy", "args": {"x": act.x, "y": act.y}, "actor": "human"}, None, point
        if act.type == "type":
            page.keyboard.type(act.text)
            focused = page.evaluate(_FOCUSED_JS)
            if focused and focused["value"] is not None:
                return {"name": "fill", "args": {"bid": focused["bid"], "text": focused["value"]},
                        "actor": "human", "typed": act.text}, None, None
            return {"name": "fill_xy", "args": {"text": act.text}, "actor": "human"}, None, None
        if act.type == "press":
            page.keyboard.press(act.key)
            return {"name": "press", "args": {"key": act.key}, "actor": "human"}, None, None
        page.mouse.wheel(act.dx, act.dy)
        return {"name": "scroll", "args": {"dx": act.dx, "dy": act.dy}, "actor": "human"}, None, None
    except PlaywrightError as exc:
        error = (exc.message or str(exc)).splitlines()[0]
        return {"name": act.type, "args": act.model_dump(exclude={"type"}), "actor": "human"}, error, None


def settle(page: Page, ms: float = 150) -> None:
    """Give the page a moment to react to the person's act before the next observation."""
    try:
        page.wait_for_load_state("domcontentloaded", timeout=2000)
        page.wait_for_timeout(ms)
    except PlaywrightError:
        time.sleep(ms / 1000)
