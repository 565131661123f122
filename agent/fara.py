"""Fara-7B's dialect: its own system prompt and screenshots in, `<tool_call>` actions in image pixels out.

Follows microsoft/fara (src/fara/fara_agent.py): the system prompt states the resized screen size;
the first user turn is [screenshot, task], later ones [screenshot, "Current URL: …"]; the model's
past answers are replayed as assistant turns; only the last `max_images` screenshots are sent.
One addition: a failed action's error is written into the next user turn, so the model can
correct it. Answers map onto the registered actions (click_xy, fill_xy, press, scroll, goto…).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from agent.action_space import ActionSpace
from agent.dialects import Prompt, Turn, image_ref
from agent.observe import Observation
from agent.parse import ParsedAction, ParseError
from agent.prompt import CHARS_PER_TOKEN, PromptTooLong
from agent.vision import Screen, encode_screen
from sparkpilot.profiles import ModelProfile

SYSTEM_TEMPLATE = Path(__file__).with_name("fara_system.txt").read_text()
USER_MESSAGE = "Here is the next screenshot. Think about what to do next."
MAX_URL_CHARS = 100
SCROLL_PX = 400  # Fara scrolls one fixed wheel step; only the sign of `pixels` counts
SEARCH_URL = "https://www.bing.com/search?q={}&FORM=QBLH"
FORMAT_HINT = ('Answer with your thoughts, then <tool_call>\n{"name": "computer_use", "arguments": '
               '{"action": "left_click", "coordinate": [x, y]}}\n</tool_call>')
# Fara's key names → Playwright's (CUA_KEY_TO_PLAYWRIGHT_KEY in microsoft/fara, the common ones).
KEY_NAMES = {"ctrl": "Control", "control": "Control", "esc": "Escape", "escape": "Escape", "enter": "Enter",
             "return": "Enter", "cmd": "Meta", "win": "Meta", "super": "Meta", "meta": "Meta", "option": "Alt",
             "alt": "Alt", "shift": "Shift", "space": " ", "tab": "Tab", "backspace": "Backspace",
             "delete": "Delete", "pagedown": "PageDown", "pageup": "PageUp", "home": "Home", "end": "End",
             "arrowdown": "ArrowDown", "arrowup": "ArrowUp", "arrowleft": "ArrowLeft", "arrowright": "ArrowRight",
             "down": "ArrowDown", "up": "ArrowUp", "left": "ArrowLeft", "right": "ArrowRight"}
ACTION_ALIASES = {"click": "left_click", "hover": "mouse_move", "keypress": "key", "sleep": "wait",
                  "input_text": "type", "stop": "terminate"}
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def system_prompt(width: int, height: int) -> str:
    """Fara's system prompt for a screenshot of this (resized) size."""
    return SYSTEM_TEMPLATE.replace("{width}x{height}", f"{width}x{height}")


def trim_url(url: str) -> str:
    """The URL without its query, cut at 100 characters (as Fara sees it)."""
    url = url.split("?", 1)[0]
    return url[:MAX_URL_CHARS] + " ..." if len(url) > MAX_URL_CHARS else url


def _user_text(url: str, error: str | None) -> str:
    failed = f"Your last action failed: {error}\n" if error else ""
    return f"Current URL: {trim_url(url)}\n{failed}{USER_MESSAGE}"


class FaraDialect:
    """Prompt and parser for Fara-7B; keeps this run's resized screenshots for the history."""

    name = "fara"

    def __init__(self, profile: ModelProfile) -> None:
        self.profile = profile
        self.screens: dict[int, Screen] = {}
        self.screen: Screen | None = None  # the current step's: the scale its answer is mapped with

    def prompt(self, index: int, goal: str, obs: Observation, space: ActionSpace, turns: list[Turn],
               last_error: str | None, policy: Any) -> Prompt:
        """System prompt, then [screenshot, task], (answer, [screenshot, URL])…, within the context limit."""
        if obs.screenshot is None:
            raise PromptTooLong("this model reads screenshots: set SPARKPILOT_AGENT_SCREENSHOT=true")
        self.screen = self.screens[index] = encode_screen(obs.screenshot, obs.viewport, self.profile)
        steps = [t.index for t in turns] + [index]
        urls = [t.url for t in turns] + [obs.url]
        errors = [None] + [t.error for t in turns]
        # users[k] belongs to steps[k]; answers[k] is the model's answer at steps[k] (k < len(turns)).
        answers = [t.raw_output or "" for t in turns]
        for old in [i for i in self.screens if i not in steps[-self.profile.max_images:]]:
            del self.screens[old]
        images = self.profile.max_images
        dropped = 0  # oldest answers left out to fit
        while True:
            keep = set(steps[-images:])
            sent, record, n_images = [], [], 0
            for k, step in enumerate(steps):
                screen = self.screens.get(step) if step in keep else None
                text = goal if k == 0 else _user_text(urls[k], errors[k])
                if screen is not None or k == 0:
                    parts = [{"type": "text", "text": text}]
                    n_images += screen is not None
                    sent.append({"role": "user", "content": (
                        [{"type": "image_url", "image_url": {"url": screen.data_url}}] if screen else []) + parts})
                    record.append({"role": "user", "content": (
                        [image_ref(step, screen.width, screen.height)] if screen else []) + parts})
                if k < len(answers) and k >= dropped:
                    sent.append({"role": "assistant", "content": answers[k]})
                    record.append(sent[-1])
            system = {"role": "system", "content": system_prompt(self.screen.width, self.screen.height)}
            sent, record = [system, *sent], [system, *record]
            limit = policy.prompt_limit(None)  # Fara answers in its own format: no schema, max_tokens of room
            tokens = self._count(sent, policy, limit) + n_images * self.screen.tokens
            if tokens <= limit:
                return Prompt(sent, tokens, record, structured=False)
            if dropped < len(answers):
                dropped += 1
            elif images > 1:
                images -= 1
            else:
                raise PromptTooLong(f"one screenshot and the task need {tokens} tokens; the model allows "
                                    f"{limit}")

    @staticmethod
    def _count(messages: list[dict[str, Any]], policy: Any, limit: int) -> int:
        """Text tokens by the policy's tokenizer (images left out), or an estimate without one."""
        flat = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
                 "\n".join(p["text"] for p in m["content"] if p.get("type") == "text")} for m in messages]
        n = policy.count_tokens(flat, limit)
        return n if n is not None else sum(len(m["content"]) for m in flat) // CHARS_PER_TOKEN + 8 * len(flat)

    def parse(self, text: str, obs: Observation) -> ParsedAction:
        """Fara's answer as a registered action, coordinates mapped to the viewport."""
        return parse_fara(text, self.screen)


def _tool_call(text: str) -> tuple[str, dict[str, Any]]:
    """(thoughts, arguments) of the answer's tool call."""
    match = _TOOL_CALL.search(text)
    thoughts = text[: match.start()].strip() if match else ""
    body = match.group(1).strip() if match else text.strip()
    obj: Any = None
    for load in (json.loads, ast.literal_eval):
        try:
            obj = load(body)
            break
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            continue
    if obj is None and "{" in body:  # stray text around the object
        start, end = body.find("{"), body.rfind("}")
        try:
            obj = json.loads(body[start:end + 1])
        except ValueError:
            obj = None
    if not isinstance(obj, dict):
        raise ParseError(f"No <tool_call> with a JSON object found. {FORMAT_HINT}")
    args = obj.get("arguments", obj)
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            raise ParseError(f"The tool call's arguments are not a JSON object. {FORMAT_HINT}") from None
    if not isinstance(args, dict) or not isinstance(args.get("action"), str):
        raise ParseError(f'The tool call has no "action". {FORMAT_HINT}')
    return thoughts, args


def _point(args: dict[str, Any], screen: Screen | None, action: str, required: bool = True) -> dict[str, Any]:
    """x, y in the viewport (and the model's own coordinates, for feedback), from `coordinate`."""
    coord = args.get("coordinate")
    if coord is None and not required:
        return {}
    if (not isinstance(coord, (list, tuple)) or len(coord) != 2
            or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in coord)):
        raise ParseError(f"{action} needs \"coordinate\": [x, y] with two numbers. {FORMAT_HINT}")
    if screen is None:
        raise ParseError("there is no screenshot to take coordinates from")
    x, y = screen.to_viewport(float(coord[0]), float(coord[1]))
    return {"x": x, "y": y, "screen": [coord[0], coord[1]], "screen_size": [screen.width, screen.height]}


def _visit(url: str) -> str:
    """Fara's visit_url rules: full URLs as given, text with spaces is a search, else https://."""
    url = url.strip()
    if url.startswith(("https://", "http://", "file://", "about:")):
        return url
    return SEARCH_URL.format(quote_plus(url)) if " " in url else "https://" + url


def parse_fara(text: str, screen: Screen | None) -> ParsedAction:
    """Parse a Fara answer (thoughts + <tool_call>) into a registered action, or raise ParseError."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError(f"Your answer was empty. {FORMAT_HINT}")
    thoughts, args = _tool_call(text[:20_000])
    action = ACTION_ALIASES.get(args["action"].strip().lower(), args["action"].strip().lower())
    if action == "left_click":
        return ParsedAction("click_xy", _point(args, screen, action), "fara")
    if action == "mouse_move":
        return ParsedAction("hover_xy", _point(args, screen, action), "fara")
    if action == "type":
        value = args.get("text", args.get("text_value"))
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ParseError(f'type needs "text". {FORMAT_HINT}')
        return ParsedAction("fill_xy", {**_point(args, screen, action, required=False), "text": str(value),
                                        "enter": bool(args.get("press_enter", True)),
                                        "clear": bool(args.get("delete_existing_text", False))}, "fara")
    if action == "key":
        keys = args.get("keys", args.get("key"))
        keys = [keys] if isinstance(keys, str) else keys
        if not keys or not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise ParseError(f'key needs "keys": a list of key names, e.g. ["Enter"]. {FORMAT_HINT}')
        return ParsedAction("press", {"key": "+".join(KEY_NAMES.get(k.lower(), k) for k in keys)}, "fara")
    if action == "scroll":
        pixels = args.get("pixels")
        if not isinstance(pixels, (int, float)) or isinstance(pixels, bool) or pixels == 0:
            raise ParseError(f'scroll needs "pixels": positive scrolls up, negative down. {FORMAT_HINT}')
        return ParsedAction("scroll", {"dx": 0, "dy": -SCROLL_PX if pixels > 0 else SCROLL_PX}, "fara")
    if action in ("visit_url", "web_search"):
        value = args.get("url" if action == "visit_url" else "query")
        if not isinstance(value, str) or not value.strip():
            raise ParseError(f'{action} needs "{"url" if action == "visit_url" else "query"}". {FORMAT_HINT}')
        url = _visit(value) if action == "visit_url" else SEARCH_URL.format(quote_plus(value.strip()))
        return ParsedAction("goto", {"url": url}, "fara")
    if action == "history_back":
        return ParsedAction("go_back", {}, "fara")
    if action == "wait":
        seconds = args.get("time", args.get("duration", 3.0))
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ParseError(f'wait needs "time" in seconds. {FORMAT_HINT}')
        return ParsedAction("wait", {"seconds": min(float(seconds), 10.0)}, "fara")
    if action == "pause_and_memorize_fact":
        return ParsedAction("memorize", {"text": str(args.get("fact", ""))}, "fara")
    if action == "terminate":
        status = str(args.get("status", "success")).lower()
        return ParsedAction("finish", {"answer": thoughts, "success": status != "failure"}, "fara")
    raise ParseError(f"Unknown action {args['action']!r}. {FORMAT_HINT}")
