"""Tools beside the browser: `search_documents(query)` over the agent's collections and `call_tool(tool,
arguments)` for MCP tools. The host (the worker) provides them through a ToolBox; the loop offers
them in the action space, judges them with the approval policy and records their result as the step's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.actions import ActionResult
from agent.approval_policy import ApprovalPolicy, Judgement

TOOL_ACTIONS = ("search_documents", "call_tool")
MAX_RESULT_CHARS = 1500  # of a tool's result kept for the model's next prompt


@dataclass
class ToolSpec:
    """One MCP tool as the model sees it: qualified name (server.tool), what it does, its input schema."""

    name: str
    description: str
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    safe: bool = False  # marked safe in config/: no approval asked


class ToolBox(Protocol):
    """What a host offers besides the browser."""

    documents: bool  # search_documents is offered
    specs: dict[str, ToolSpec]  # MCP tools by qualified name

    def call(self, name: str, args: dict[str, Any]) -> ActionResult:
        """Run search_documents or call_tool; errors come back in the result, never raised."""
        ...


def judge_tool(tools: ToolBox | None, name: str, args: dict[str, Any], policy: ApprovalPolicy) -> Judgement | None:
    """The approval policy's judgement of a tool action (MCP tools not marked safe fall in `mcp_tool`)."""
    if name != "call_tool" or tools is None:
        return None
    spec = tools.specs.get(str(args.get("tool")))
    if spec is None or spec.safe:
        return None
    return policy.judge("mcp_tool", f"the MCP tool {spec.name} is not marked safe")


def tool_lines(tools: ToolBox | None) -> list[str]:
    """The TOOLS part of the prompt: one line per tool with its parameters."""
    if tools is None:
        return []
    lines = ['{"action":"search_documents","query":TEXT} search your documents'] if tools.documents else []
    for spec in tools.specs.values():
        params = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in spec.input_schema.get("properties", {}).items())
        lines.append(f'{{"action":"call_tool","tool":"{spec.name}","arguments":{{{params}}}}} '
                     f"{spec.description.splitlines()[0][:150] if spec.description else ''}")
    return lines


def tool_schemas(tools: ToolBox | None, name: str) -> list[dict[str, Any]]:
    """JSON schemas of a tool action's answers (per MCP tool: its name and its input schema)."""
    if tools is None:
        return []
    if name == "search_documents" and tools.documents:
        return [{"type": "object", "properties": {"action": {"type": "string", "enum": [name]},
                                                  "query": {"type": "string", "maxLength": 120}},
                 "required": ["action", "query"], "additionalProperties": False}]
    if name == "call_tool":
        return [{"type": "object", "properties": {"action": {"type": "string", "enum": [name]},
                                                  "tool": {"type": "string", "enum": [spec.name]},
                                                  "arguments": spec.input_schema or {"type": "object"}},
                 "required": ["action", "tool", "arguments"], "additionalProperties": False}
                for spec in tools.specs.values()]
    return []


def offered_tools(tools: ToolBox | None) -> list[str]:
    """The tool actions a host offers."""
    if tools is None:
        return []
    return [n for n, on in (("search_documents", tools.documents), ("call_tool", bool(tools.specs))) if on]
