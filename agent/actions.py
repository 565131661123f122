"""Browser actions: a registry of small functions with pydantic params, executed with Playwright.

Each action returns an ActionResult; failures come back as an error text the model reads
next step, never as an exception out of the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.chromium import proxy_failure
from sparkpilot.urls import navigation_refusal


MAX_WAIT_S = 10.0


class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore")


class BidParams(_Params):
    bid: str = Field(min_length=1)


class FillParams(BidParams):
    text: str


class SelectParams(BidParams):
    value: str


class PressParams(_Params):
    key: str = Field(min_length=1)
    bid: str | None = None


class ScrollParams(_Params):
    dx: int = 0
    dy: int = 0


class GotoParams(_Params):
    url: str = Field(min_length=1)


class TextParams(_Params):
    text: str


class FinishParams(_Params):
    answer: str = ""
    success: bool = True  # False: the agent gives up (Fara's terminate with status "failure")


class XYParams(_Params):
    x: float
    y: float


class FillXYParams(_Params):
    text: str
    x: float | None = None  # None: type into the focused element
    y: float | None = None
    clear: bool = False
    enter: bool = False


class WaitParams(_Params):
    seconds: float = Field(default=1.0, ge=0, le=MAX_WAIT_S)


class NoteParams(_Params):
    text: str = ""


class NoParams(_Params):
    pass


@dataclass
class ActionResult:
    """What acting did: an error for the model, a message for the user, or the final answer."""

    error: str | None = None
    message: str | None = None
    finished: bool = False
    answer: str | None = None
    success: bool = True  # with finished: False when the agent reports that it failed
    output: str | None = None  # a tool's result, for the model's next prompt


@dataclass
class ActionSpec:
    """One registered action."""

    name: str
    params: type[_Params]
    fn: Callable[[Page, Any, float], ActionResult]
    description: str


REGISTRY: dict[str, ActionSpec] = {}


def action(name: str, params: type[_Params], description: str):  # noqa: ANN201
    """Register `fn` as the action `name`."""
    def wrap(fn: Callable[[Page, Any, float], ActionResult]) -> Callable[[Page, Any, float], ActionResult]:
        REGISTRY[name] = ActionSpec(name, params, fn, description)
        return fn
    return wrap


# Resolve an element by its data-bid, scroll it into view and return its centre, in one call.
_LOCATE_JS = """(bid) => {
  const el = document.querySelector(`[data-bid="${CSS.escape(bid)}"]`);
  if (!el) return null;
  el.scrollIntoView({block: 'nearest', inline: 'nearest'});
  const r = el.getBoundingClientRect();
  return {x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height};
}"""


def _selector(bid: str) -> str:
    return f'[data-bid="{bid}"]'


@action("click", BidParams, "click(bid): click an element")
def _click(page: Page, p: BidParams, timeout_ms: float) -> ActionResult:
    box = page.evaluate(_LOCATE_JS, p.bid)
    if box is None:
        return ActionResult(error=f"no element with bid {p.bid!r} on the page")
    if box["w"] == 0 or box["h"] == 0:
        return ActionResult(error=f"element {p.bid!r} is not visible")
    # A real mouse click at the element's centre: real events, no actionability wait (~5 ms).
    page.mouse.click(box["x"], box["y"])
    return ActionResult()


@action("fill", FillParams, "fill(bid, text): replace the text of an input")
def _fill(page: Page, p: FillParams, timeout_ms: float) -> ActionResult:
    page.locator(_selector(p.bid)).fill(p.text, timeout=timeout_ms)
    return ActionResult()


@action("select_option", SelectParams, "select_option(bid, value): choose an option of a <select>")
def _select(page: Page, p: SelectParams, timeout_ms: float) -> ActionResult:
    loc = page.locator(_selector(p.bid))
    try:
        loc.select_option(label=p.value, timeout=timeout_ms)
    except PlaywrightError:
        loc.select_option(value=p.value, timeout=timeout_ms)
    return ActionResult()


@action("press", PressParams, "press(key, bid?): press a key (Enter, Tab, ArrowDown…) in an element or the page")
def _press(page: Page, p: PressParams, timeout_ms: float) -> ActionResult:
    if p.bid:
        page.locator(_selector(p.bid)).press(p.key, timeout=timeout_ms)
    else:
        page.keyboard.press(p.key)
    return ActionResult()


@action("scroll", ScrollParams, "scroll(dx, dy): scroll the page by pixels")
def _scroll(page: Page, p: ScrollParams, timeout_ms: float) -> ActionResult:
    page.mouse.wheel(p.dx, p.dy)
    return ActionResult()


@action("goto", GotoParams, "goto(url): open a URL")
def _goto(page: Page, p: GotoParams, timeout_ms: float) -> ActionResult:
    refused = navigation_refusal(p.url)
    if refused:
        return ActionResult(error=f"goto refused: {refused}")
    response = page.goto(p.url, timeout=timeout_ms)
    failure = proxy_failure(response.headers if response else None)
    return ActionResult(error=f"goto {p.url[:200]} failed: {failure}" if failure else None)


@action("go_back", NoParams, "go_back(): the browser's back button")
def _back(page: Page, p: NoParams, timeout_ms: float) -> ActionResult:
    if page.go_back(timeout=timeout_ms) is None:
        return ActionResult(error="there is no previous page")
    return ActionResult()


@action("send_msg_to_user", TextParams, "send_msg_to_user(text): tell the user something")
def _message(page: Page, p: TextParams, timeout_ms: float) -> ActionResult:
    return ActionResult(message=p.text)


@action("finish", FinishParams, "finish(answer): the task is done; answer is the result")
def _finish(page: Page, p: FinishParams, timeout_ms: float) -> ActionResult:
    return ActionResult(finished=True, answer=p.answer, success=p.success)


@action("click_xy", XYParams, "click_xy(x, y): click at viewport coordinates")
def _click_xy(page: Page, p: XYParams, timeout_ms: float) -> ActionResult:
    page.mouse.click(p.x, p.y)
    return ActionResult()


@action("hover_xy", XYParams, "hover_xy(x, y): move the mouse to viewport coordinates")
def _hover_xy(page: Page, p: XYParams, timeout_ms: float) -> ActionResult:
    page.mouse.move(p.x, p.y)
    return ActionResult()


@action("fill_xy", FillXYParams, "fill_xy(x?, y?, text, clear?, enter?): click at a point, then type")
def _fill_xy(page: Page, p: FillXYParams, timeout_ms: float) -> ActionResult:
    if p.x is not None and p.y is not None:
        page.mouse.click(p.x, p.y)
    if p.clear:
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.press("Backspace")
    page.keyboard.type(p.text)
    if p.enter:
        page.keyboard.press("Enter")
    return ActionResult()


@action("wait", WaitParams, f"wait(seconds): let the page change (at most {MAX_WAIT_S:g} s)")
def _wait(page: Page, p: WaitParams, timeout_ms: float) -> ActionResult:
    page.wait_for_timeout(p.seconds * 1000)
    return ActionResult()


@action("memorize", NoteParams, "memorize(text): keep a fact for later steps (no browser action)")
def _memorize(page: Page, p: NoteParams, timeout_ms: float) -> ActionResult:
    return ActionResult()


def execute(page: Page, name: str, args: dict[str, Any], timeout_ms: float = 5000) -> ActionResult:
    """Run a registered action; every failure becomes ActionResult.error."""
    spec = REGISTRY.get(name)
    if spec is None:
        return ActionResult(error=f"unknown action {name!r}; valid: {', '.join(REGISTRY)}")
    try:
        params = spec.params.model_validate(args)
    except ValidationError as exc:
        return ActionResult(error=f"bad arguments for {name}: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}")
    try:
        return spec.fn(page, params, timeout_ms)
    except PlaywrightError as exc:
        return ActionResult(error=f"{name} failed: {(exc.message or str(exc)).splitlines()[0]}")
