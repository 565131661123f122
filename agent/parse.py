"""Robust parsing of the model's action output into a validated action.

Stages, first success wins: the whole text is JSON ("json"); the first balanced `{...}` that
yields an action ("braces"); a line-anchored call like `click(12)` ("call"); "the task is
done" language ("done"). Otherwise ParseError, whose message is meant for the model to read.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

# action -> (required params, optional params)
ACTION_PARAMS: dict[str, tuple[list[str], list[str]]] = {
    "click": (["bid"], []),
    "fill": (["bid", "text"], []),
    "select_option": (["bid", "value"], []),
    "press": (["key"], ["bid"]),
    "scroll": (["dy"], ["dx"]),
    "goto": (["url"], []),
    "go_back": ([], []),
    "send_msg_to_user": (["text"], []),
    "finish": (["answer"], ["success"]),
    "click_xy": (["x", "y"], []),
    "hover_xy": (["x", "y"], []),
    "fill_xy": (["text"], ["x", "y", "clear", "enter"]),
    "wait": ([], ["seconds"]),
    "memorize": (["text"], []),
    "search_documents": (["query"], []),  # the tools (agent/tools.py), offered when the run has them
    "call_tool": (["tool"], ["arguments"]),
}
BOOL_PARAMS = {"success", "clear", "enter"}
# Positional order for call style, where it differs from required + optional.
POSITIONAL: dict[str, list[str]] = {"press": ["bid", "key"], "scroll": ["dx", "dy"]}
DEFAULTS: dict[str, dict[str, Any]] = {"scroll": {"dx": 0}}
PARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "bid": ("element", "element_id", "elementid", "elem", "id", "target", "index"),
    "text": ("value", "content", "message", "msg", "input", "string"),
    "value": ("option", "text", "label", "choice"),
    "key": ("keys", "key_comb", "key_name"),
    "url": ("link", "href", "address"),
    "answer": ("text", "value", "result", "message", "response", "final_answer", "output"),
    "dx": ("delta_x", "x"),
    "dy": ("delta_y", "y", "amount"),
}
NAME_ALIASES: dict[str, str] = {
    "type": "fill", "type_text": "fill", "input_text": "fill", "select": "select_option",
    "navigate": "goto", "go_to": "goto", "open_url": "goto", "back": "go_back", "goback": "go_back",
    "press_key": "press", "keypress": "press", "stop": "finish", "done": "finish",
    "send_msg": "send_msg_to_user", "send_message": "send_msg_to_user", "left_click": "click_xy",
}
ARG_KEYS = ("args", "arguments", "params", "parameters")
MAX_CHARS = 20_000
MAX_BRACE_STARTS = 64

_BID_RE = re.compile(r"^\[?[A-Za-z]?\d+\]?$")
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
_CALL_RE = re.compile(r"^[\s`\"'*>#\-]*(?:(?:next\s+)?action\s*[:=]\s*[`\"']*)?([A-Za-z_]\w*)\s*\(", re.IGNORECASE | re.MULTILINE)
_DONE_RE = re.compile(
    r"\b(?:task|goal|job|objective)\s+(?:is|has\s+been|was)\s+(?:now\s+|already\s+|successfully\s+)?"
    r"(?:done|complete|completed|finished|achieved|accomplished)\b"
    r"|\bI\s+(?:have|'ve)\s+(?:now\s+|successfully\s+)?(?:finished|completed|accomplished|done)\b"
    r"|^\s*(?:done|finished|complete)\s*[.!]?\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def signature(name: str) -> str:
    """Human-readable signature, optional params marked with '?'."""
    required, optional = ACTION_PARAMS[name]
    order = POSITIONAL.get(name, required + optional)
    return f"{name}(" + ", ".join(p if p in required else p + "?" for p in order) + ")"


FORMAT_SHORT = 'Reply with one JSON object: {"action":"click","target":"Submit","bid":"12"}.'
# The bid actions a text model is told about (the *_xy, wait and memorize actions serve vision dialects).
HINT_ACTIONS = ("click", "fill", "select_option", "press", "scroll", "goto", "go_back", "send_msg_to_user")
FORMAT_HINT = (FORMAT_SHORT + " Actions: " + ", ".join(signature(n) for n in HINT_ACTIONS)
               + ", finish(answer), click_xy(x, y).")


class ParseError(ValueError):
    """The output held no valid action; the message tells the model what to fix."""


@dataclass
class ParsedAction:
    """A validated action: canonical name, coerced args, and the stage that found it."""

    name: str
    args: dict[str, Any]
    method: str


def _lower_keys(d: dict) -> dict[str, Any]:
    """Keys lower-cased and stripped (non-string keys dropped)."""
    return {k.strip().lower(): v for k, v in d.items() if isinstance(k, str)}


def _coerce(name: str, param: str, value: Any) -> Any:
    """One param value in its canonical type, or ParseError."""
    bad = ParseError(f"Parameter '{param}' of {signature(name)} has an invalid value {value!r}. {FORMAT_HINT}")
    if param == "arguments":  # an MCP tool's arguments: checked against its input schema when called
        if isinstance(value, dict):
            return value
        raise bad
    if param in BOOL_PARAMS:
        if isinstance(value, bool) or str(value).lower() in ("true", "false"):
            return value if isinstance(value, bool) else str(value).lower() == "true"
        raise bad
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise bad
    if param == "bid":
        bid = str(int(value) if isinstance(value, float) and value.is_integer() else value).strip("[]\"' ")
        if not bid or isinstance(value, float) and not value.is_integer():
            raise bad
        return bid
    if param in ("dx", "dy", "x", "y"):
        try:
            number = float(value)
        except ValueError:
            raise bad from None
        if not abs(number) < float("inf"):  # also rejects NaN
            raise bad
        return round(number) if param in ("dx", "dy") else number
    return str(value)


def _build(name: Any, kwargs: dict[str, Any], positional: list[Any], method: str) -> ParsedAction:
    """Validate the action name, map positional and aliased params, coerce, check required."""
    if isinstance(name, str) and "(" in name:
        call_name, call_pos, call_kw = _parse_call(name.strip())
        return _build(call_name, {**kwargs, **call_kw}, call_pos or positional, method)
    if not isinstance(name, str) or not name.strip():
        raise ParseError(f"Your action has no name. {FORMAT_HINT}")
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    key = NAME_ALIASES.get(key, key)
    if key not in ACTION_PARAMS:
        raise ParseError(f"Unknown action '{name.strip()[:40]}'. Valid actions: "
                         + ", ".join(signature(n) for n in ACTION_PARAMS) + f". {FORMAT_SHORT}")
    required, optional = ACTION_PARAMS[key]
    allowed = required + optional
    args: dict[str, Any] = {}
    if positional:
        order = POSITIONAL.get(key, allowed)
        if len(positional) == len(required) < len(order):
            order = [p for p in order if p in required]
        if len(positional) > len(order):
            raise ParseError(f"Too many arguments for {signature(key)}: {len(positional)} given. {FORMAT_HINT}")
        args.update(zip(order, positional))
        if key == "press" and len(positional) == 2 and _BID_RE.match(str(args["key"])) \
                and not _BID_RE.match(str(args["bid"])):  # press("Enter", "12"): key first
            args["bid"], args["key"] = args["key"], args["bid"]
    kw = {k: v for k, v in _lower_keys(kwargs).items() if v is not None}
    for param in allowed:
        if param not in args and param in kw:
            args[param] = kw[param]
    for param in allowed:
        alias = next((a for a in PARAM_ALIASES.get(param, ()) if a in kw and a not in allowed), None)
        if param not in args and alias is not None:
            args[param] = kw[alias]
    coord = kw.get("coordinate")
    if key == "click_xy" and "x" not in args and isinstance(coord, list) and len(coord) == 2:
        args["x"], args["y"] = coord
    for param, default in DEFAULTS.get(key, {}).items():
        args.setdefault(param, default)
    for param in required:
        if param not in args:
            raise ParseError(f"Action '{key}' is missing required parameter '{param}'. "
                             f"Expected {signature(key)}. {FORMAT_SHORT}")
    return ParsedAction(key, {p: _coerce(key, p, v) for p, v in args.items()}, method)


def _from_obj(obj: Any, method: str) -> ParsedAction:
    """Normalize the many JSON shapes small models produce into one action."""
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]
    if not isinstance(obj, dict):
        raise ParseError(f"Your JSON has no \"action\" object. {FORMAT_HINT}")
    outer = _lower_keys(obj)
    act = outer.pop("action", None)
    outer.pop("thought", None)
    if act is None and "name" in outer:
        act, outer = outer, {}
    if act is None:
        names = [k for k in outer if k in ACTION_PARAMS]
        if len(names) != 1:
            raise ParseError(f"Your JSON has no \"action\" object. {FORMAT_HINT}")
        act = {names[0]: outer.pop(names[0])}
    if isinstance(act, str):
        name, kwargs = act, outer
    elif isinstance(act, dict):
        inner = _lower_keys(act)
        name_key = next((k for k in ("name", "type", "action") if isinstance(inner.get(k), str)), None)
        if name_key is not None:
            name = inner.pop(name_key)
        elif len(inner) == 1:
            name, value = next(iter(inner.items()))
            inner = value if isinstance(value, dict) else {"args": value if isinstance(value, list) else [value]}
        else:
            raise ParseError(f"Your \"action\" object has no \"name\". {FORMAT_HINT}")
        kwargs = {**outer, **inner}
    else:
        raise ParseError(f"\"action\" must be an object like {{\"name\": \"click\", \"bid\": \"12\"}}. {FORMAT_HINT}")
    if isinstance(name, str) and name.strip().lower() == "call_tool":  # "arguments" is the tool's, not ours
        return _build(name, kwargs, [], method)
    positional: list[Any] = []
    for k in ARG_KEYS:
        nested = kwargs.pop(k, None)
        if isinstance(nested, dict):
            kwargs = {**nested, **kwargs}
        elif isinstance(nested, list) and all(isinstance(v, (str, int, float)) for v in nested):
            positional = positional or list(nested)
    return _build(name, kwargs, positional, method)


def _scan_close(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index of the bracket closing the one at `start` (quote- and escape-aware), or -1."""
    depth, quote, i = 0, "", start - 1
    while i + 1 < len(text):
        i += 1
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1  # skip the escaped character
            elif ch == quote:
                quote = ""
        elif ch == '"' or (ch == "'" and open_ch == "("):
            quote = ch
        elif ch == open_ch:
            depth += 1
        elif ch == close_ch:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _parse_call(call: str) -> tuple[str, list[Any], dict[str, Any]]:
    """`name(args)` -> (name, positional, keywords), args read with ast.literal_eval."""
    m = re.match(r"\s*([A-Za-z_]\w*)\s*\(", call)
    end = _scan_close(call, m.end() - 1, "(", ")") if m else -1
    if not m or end < 0:
        raise ParseError(f"Could not read the call {call[:60]!r}. {FORMAT_HINT}")
    name, inner = m.group(1), call[m.end():end]
    try:
        with warnings.catch_warnings():  # "invalid escape sequence" noise from model text
            warnings.simplefilter("ignore")
            tree = ast.parse(f"_({inner})", mode="eval").body
        if not isinstance(tree, ast.Call) or any(k.arg is None for k in tree.keywords):
            raise ValueError("not a plain call")
        placeholders = {p for req, opt in ACTION_PARAMS.values() for p in req + opt}
        values = []
        for node in tree.args:
            if isinstance(node, ast.Name) and node.id not in placeholders:
                values.append(node.id)
            else:
                values.append(ast.literal_eval(node))
        keywords = {k.arg: ast.literal_eval(k.value) for k in tree.keywords}
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        raise ParseError(f"Could not read the arguments of {name}(...): use literal values, "
                         f'e.g. fill("12", "hello"). {FORMAT_HINT}') from None
    return name, values, keywords


def _load(candidate: str) -> Any:
    """JSON, else a Python literal (single quotes, True/None); None when neither."""
    try:
        return json.loads(candidate)
    except (ValueError, RecursionError):
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.literal_eval(candidate)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None


def parse_action(text: str) -> ParsedAction:
    """Parse model output into a validated action, or raise ParseError for the model to read."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError(f"Your output was empty. {FORMAT_HINT}")
    text = text[:MAX_CHARS]
    body = text.strip()
    fenced = _FENCE_RE.match(body)
    body = fenced.group(1).strip() if fenced else body
    first_error: ParseError | None = None
    try:
        whole = json.loads(body)
    except (ValueError, RecursionError):
        whole = None
    if isinstance(whole, (dict, list)):
        try:
            return _from_obj(whole, "json")
        except ParseError as exc:
            first_error = exc
    starts = [i for i, ch in enumerate(text) if ch == "{"][:MAX_BRACE_STARTS]
    for start in starts:
        end = _scan_close(text, start, "{", "}")
        obj = _load(text[start:end + 1]) if end > 0 else None
        if isinstance(obj, dict):
            try:
                return _from_obj(obj, "braces")
            except ParseError as exc:
                first_error = first_error or exc
    for m in _CALL_RE.finditer(text):
        if NAME_ALIASES.get(m.group(1).lower(), m.group(1).lower()) not in ACTION_PARAMS:
            continue
        try:
            name, positional, keywords = _parse_call(text[m.start(1):])
            return _build(name, keywords, positional, "call")
        except ParseError as exc:
            first_error = first_error or exc
    if _DONE_RE.search(text):
        return ParsedAction("finish", {"answer": text.strip()[:500]}, "done")
    raise first_error or ParseError(f"Could not find an action in your output. {FORMAT_HINT}")
