"""The action space of one step, built from the observation: which actions make sense on this page,
and for each, which element ids it may name. It becomes the JSON schema that constrains the model
(vLLM structured output), so a small model can only answer with an id that is on the page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.observe import Observation, role_of
from agent.tools import TOOL_ACTIONS, ToolBox, offered_tools, tool_schemas

ThoughtMode = Literal["none", "after"]
TEXT_INPUT_TYPES = frozenset({"text", "password", "email", "search", "number", "tel", "url", "date", "time",
                              "datetime-local", "month", "week", "textarea"})
KEYS = ["Enter", "Tab", "Escape", "Backspace", "ArrowDown", "ArrowUp"]
MAX_TEXT = 120  # longest fill/answer text the model may write; keeps answers short and stops runaway output
MAX_THOUGHT = 80
MAX_NAME = 30
MAX_URL = 128  # xgrammar 0.2 fails to compile a pattern repeated more than 128 times
# A URL the model may write: printable ASCII without quote or backslash, so one byte per character.
URL_FIELD = {"type": "string", "pattern": f'^[!#-\\[\\]-~]{{0,{MAX_URL}}}$'}


def is_fillable(e: dict[str, Any]) -> bool:
    """A text field or an editable element."""
    return e["tag"] == "textarea" or bool(e.get("editable")) or e["tag"] == "input" and e.get("type") in TEXT_INPUT_TYPES


def _usable(e: dict[str, Any]) -> bool:
    return bool(e.get("visible")) and not e.get("disabled")


def target_name(e: dict[str, Any]) -> str:
    """The short name the model writes before an element's id: its text, placeholder, or role."""
    name = " ".join(str(e.get("text") or e.get("placeholder") or e.get("name") or role_of(e)).split())
    return name[:MAX_NAME]


@dataclass
class ActionSpace:
    """Offered actions; `bids[name]` lists the ids an action may target (absent: it takes no element).

    An element action is answered as {"action", "target", "bid", ...}: the model first writes the
    element's name (which it can copy from the goal), and the schema then allows only the ids of
    elements with that name. The id alone, a few random digits, carries no meaning to choose by.
    """

    actions: list[str]
    bids: dict[str, list[str]] = field(default_factory=dict)
    thought: ThoughtMode = "none"
    elements: dict[str, dict[str, Any]] = field(default_factory=dict)
    tools: ToolBox | None = None

    def _params(self, name: str, bid: str | None) -> dict[str, Any]:
        if name == "fill":
            return {"text": {"type": "string", "maxLength": MAX_TEXT}}
        if name == "select_option":
            options = (self.elements.get(bid or "") or {}).get("options")
            return {"value": {"type": "string", "enum": options} if options else {"type": "string", "maxLength": MAX_TEXT}}
        if name == "press":
            return {"key": {"type": "string", "enum": KEYS}}
        if name == "scroll":
            return {"dy": {"type": "integer", "enum": [-300, 300]}}
        if name == "goto":
            return {"url": URL_FIELD}
        if name in ("finish", "send_msg_to_user"):
            return {"answer" if name == "finish" else "text": {"type": "string", "maxLength": MAX_TEXT}}
        return {}

    def variants(self, name: str) -> list[dict[str, Any]]:
        """JSON schemas of one offered action: per target name for element actions, per MCP tool, else one."""
        if name in TOOL_ACTIONS:
            return tool_schemas(self.tools, name)
        groups: dict[tuple[str, str | None], list[str]] = {}
        for bid in self.bids.get(name, [None]):  # type: ignore[list-item]
            el = self.elements.get(bid) if bid else None
            # Elements of a select need their own variant (their options); others group by name.
            key = (target_name(el) if el else "", bid if name == "select_option" else None)
            groups.setdefault(key, []).append(bid)
        out = []
        for (target, _), bids in groups.items():
            props: dict[str, Any] = {"action": {"type": "string", "enum": [name]}}
            if bids != [None]:
                props["target"] = {"type": "string", "enum": [target]}
                props["bid"] = {"type": "string", "enum": bids}
            props.update(self._params(name, bids[0]))
            if self.thought == "after":
                props["thought"] = {"type": "string", "maxLength": MAX_THOUGHT}
            out.append({"type": "object", "properties": props, "required": list(props), "additionalProperties": False})
        return out

    def schema(self) -> dict[str, Any]:
        """The answer's JSON schema: exactly one offered action."""
        variants = [v for n in self.actions for v in self.variants(n)]
        return variants[0] if len(variants) == 1 else {"anyOf": variants}

    def allows(self, name: str, args: dict[str, Any]) -> bool:
        """True if the action (and its element id) is in this space."""
        if name not in self.actions:
            return False
        return name not in self.bids or str(args.get("bid")) in self.bids[name]


def build_action_space(obs: Observation, *, env_judges_end: bool = False, thought: ThoughtMode = "none",
                       coordinates: bool = False, tools: ToolBox | None = None) -> ActionSpace:
    """The actions that make sense on this page and the host's tools (an environment that judges the end gets no finish/goto)."""
    usable = [e for e in obs.elements if _usable(e)]
    bids = {
        "click": [e["bid"] for e in usable if e["tag"] != "option"],
        "fill": [e["bid"] for e in usable if is_fillable(e)],
        "select_option": [e["bid"] for e in usable if e["tag"] == "select"],
    }
    bids["press"] = bids["fill"]
    offered = [name for name in ("click", "fill", "select_option", "press") if bids[name]]
    if obs.scrollable:
        offered.append("scroll")
    if coordinates:
        offered.append("click_xy")
    if not env_judges_end:
        offered += ["goto", *(["go_back"] if obs.history_length > 1 else []), "send_msg_to_user", "finish"]
    offered += offered_tools(tools)
    if not offered:  # an empty page inside an environment: scrolling is the only harmless move
        offered = ["scroll"]
    return ActionSpace(offered, {k: v for k, v in bids.items() if k in offered}, thought,
                       {e["bid"]: e for e in usable}, tools)


def answer_tokens(schema: dict[str, Any]) -> int | None:
    """Most tokens an answer in `schema` can take (None: unbounded), as the served grammar writes it.

    A token is at least one byte, so the longest answer's UTF-8 bytes bound its tokens. xgrammar writes a
    string with maxLength as raw characters (no escapes: at most 4 bytes each), a pattern as written
    (URL_FIELD: ASCII), an enum's value JSON-encoded; separators are counted with a space (", ", ": ").
    """
    if "anyOf" in schema:
        bounds = [answer_tokens(v) for v in schema["anyOf"]]
        return None if None in bounds else max(bounds)  # type: ignore[type-var]
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return max(max(len(json.dumps(v).encode()), len(json.dumps(v, ensure_ascii=False).encode())) for v in values)
    kind = schema.get("type")
    if kind == "string":
        if schema.get("pattern") == URL_FIELD["pattern"]:
            return 2 + MAX_URL
        return 2 + 4 * schema["maxLength"] if "maxLength" in schema and "pattern" not in schema else None
    if kind == "boolean":
        return 5
    if kind == "null":
        return 4
    if kind == "array" and "maxItems" in schema:
        item = answer_tokens(schema.get("items", {}))
        return None if item is None else 2 + schema["maxItems"] * (item + 2)
    if kind == "object" and schema.get("additionalProperties") is False:
        props = [(k, answer_tokens(v)) for k, v in schema.get("properties", {}).items()]
        if any(b is None for _, b in props):
            return None
        return 2 + sum(len(json.dumps(k).encode()) + 2 + b + 2 for k, b in props)  # type: ignore[operator]
    return None


def example_answer(action: dict[str, Any], thought: ThoughtMode) -> str:
    """A worked example's answer in the exact (compact) format the schema enforces."""
    answer = dict(action)
    if thought == "after":
        answer["thought"] = "it matches the goal"
    return json.dumps(answer, separators=(",", ":"))
