"""Programmatic checks before acting; each gives the model feedback or stops the run with a reason."""

from __future__ import annotations

from dataclasses import dataclass

from agent.observe import Observation

REPEAT_FEEDBACK_AT = 3
REPEAT_STOP_AT = 5


@dataclass
class Verdict:
    """None of the fields set: go ahead."""

    feedback: str | None = None
    stop: str | None = None


def _is_search_box(el: dict) -> bool:
    blob = " ".join(str(el.get(k, "")) for k in ("type", "name", "placeholder", "text", "role")).lower()
    return el.get("type") == "search" or el.get("name") == "q" or "search" in blob or "query" in blob


def check(name: str, args: dict, obs: Observation, history: list[dict], allowed: list[str]) -> Verdict:
    """Judge the parsed action against the observation and the recent actions."""
    bid = args.get("bid")
    if bid is not None and name in ("click", "fill", "select_option", "press"):
        el = obs.element(str(bid))
        if el is None:
            return Verdict(feedback=f"There is no element [{bid}] on the page. Use a bid from the element list.")
        if not el.get("visible"):
            return Verdict(feedback=f"Element [{bid}] is not visible; scroll or pick a visible element.")
    if name in ("click_xy", "hover_xy", "fill_xy") and args.get("x") is not None:
        x, y = float(args["x"]), float(args.get("y", -1))
        width, height = obs.viewport
        if not (0 <= x < width and 0 <= y < height):
            shown = args.get("screen") or [round(x), round(y)]
            size = args.get("screen_size") or [width, height]
            return Verdict(feedback=f"The point ({shown[0]}, {shown[1]}) is outside the screenshot ({size[0]}x{size[1]}); "
                                    "use coordinates inside it.")
    current = {"name": name, "args": args}
    repeats = 1
    for past in reversed(history):
        if past != current:
            break
        repeats += 1
    if repeats >= REPEAT_STOP_AT:
        return Verdict(stop=f"stuck: the same action {name} repeated {repeats} times")
    if repeats >= REPEAT_FEEDBACK_AT:
        return Verdict(feedback=f"You have done {name} {repeats - 1} times in a row without progress; try something else.")
    if name == "finish" and history:
        last = history[-1]
        if last["name"] == "fill":
            el = obs.element(str(last["args"].get("bid")))
            if el is not None and _is_search_box(el):
                return Verdict(feedback="You typed into a search box but did not submit it; press Enter or click the search button first.")
    return Verdict()  # leaving the allowed domains is the approval policy's call (agent/approval_policy.py)
