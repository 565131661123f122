"""Tool actions (search_documents, call_tool), the MCP servers file, and chunking, without services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.action_space import build_action_space
from agent.actions import ActionResult
from agent.approval_policy import ApprovalPolicy
from agent.observe import Observation
from agent.parse import ParseError, parse_action
from agent.prompt import build_messages
from agent.tools import ToolSpec, judge_tool
from sparkpilot.documents import chunk_text, passages_for_prompt, Hit
from sparkpilot.errors import InvalidInput
from sparkpilot.mcp_config import check_tools, load_mcp_config

ADD_SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}


class Box:
    documents = True

    def __init__(self) -> None:
        self.specs = {"calc.add": ToolSpec("calc.add", "Add two integers.", ADD_SCHEMA, safe=True),
                      "notes.save": ToolSpec("notes.save", "Save a note.", {"type": "object"}, safe=False)}

    def call(self, name: str, args: dict[str, Any]) -> ActionResult:
        return ActionResult(output="ok")


def _obs() -> Observation:
    return Observation(url="http://x/", title="t", elements=[], text="", scrollable=False, history_length=1)


def test_tool_answers_parse_in_the_shapes_models_write() -> None:
    for text in ('{"action":"call_tool","tool":"calc.add","arguments":{"a":2,"b":3}}',
                 '{"action":{"name":"call_tool","tool":"calc.add","arguments":{"a":2,"b":3}}}'):
        parsed = parse_action(text)
        assert (parsed.name, parsed.args) == ("call_tool", {"tool": "calc.add", "arguments": {"a": 2, "b": 3}})
    assert parse_action('{"action":"search_documents","query":"refunds"}').args == {"query": "refunds"}
    with pytest.raises(ParseError, match="arguments"):
        parse_action('{"action":"call_tool","tool":"calc.add","arguments":"2 and 3"}')
    with pytest.raises(ParseError, match="tool"):
        parse_action('{"action":"call_tool","arguments":{}}')


def test_tools_are_offered_with_their_schemas_and_described_in_the_prompt() -> None:
    space = build_action_space(_obs(), tools=Box())
    assert space.actions[-2:] == ["search_documents", "call_tool"]
    calls = [v for v in space.schema()["anyOf"] if v["properties"]["action"]["enum"] == ["call_tool"]]
    assert [c["properties"]["tool"]["enum"] for c in calls] == [["calc.add"], ["notes.save"]]
    assert calls[0]["properties"]["arguments"] == ADD_SCHEMA  # the model is held to the tool's input schema
    prompt = build_messages("goal", _obs(), space, [], None)[1]["content"]
    assert '"tool":"calc.add","arguments":{a: integer, b: integer}} Add two integers.' in prompt
    assert '{"action":"search_documents","query":TEXT}' in prompt
    assert "call_tool" not in build_action_space(_obs()).actions  # no toolbox, no tool actions


def test_only_tools_not_marked_safe_fall_under_the_mcp_tool_rule() -> None:
    policy = ApprovalPolicy.load(Path("config/approvals.json"))
    assert judge_tool(Box(), "call_tool", {"tool": "calc.add"}, policy) is None
    judgement = judge_tool(Box(), "call_tool", {"tool": "notes.save"}, policy)
    assert (judgement.category, judgement.rule) == ("mcp_tool", "ask") and "notes.save" in judgement.reason
    assert judge_tool(Box(), "search_documents", {"query": "x"}, policy) is None
    assert ApprovalPolicy.load(None).judge("mcp_tool", "x").rule == "allow"  # no policy file: benchmarks, tests


def test_the_mcp_servers_file_is_checked(tmp_path: Path) -> None:
    assert load_mcp_config(Path("config/mcp_servers.json")).servers == {}  # shipped empty
    assert load_mcp_config(tmp_path / "none.json").servers == {}
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"servers": {"calc": {"command": ["calc"], "tools": ["add", "sub"], "safe": ["add"]}}}))
    check_tools(path, ["calc.add", "calc.sub"])
    for name in ("calc.mul", "other.add", "add"):
        with pytest.raises(InvalidInput, match="unknown tool"):
            check_tools(path, [name])
    for bad in ({"calc": {"tools": ["add"]}},  # neither command nor url
                {"calc": {"command": ["c"], "url": "http://x", "tools": ["add"]}},
                {"calc": {"command": ["c"], "tools": ["add"], "safe": ["sub"]}},
                {"calc": {"command": ["c"], "tools": []}},
                {"bad name": {"command": ["c"], "tools": ["add"]}}):
        path.write_text(json.dumps({"servers": bad}))
        with pytest.raises(ValueError, match="servers.json"):
            load_mcp_config(path)


def test_chunks_keep_paragraphs_overlap_and_stay_under_the_size() -> None:
    text = "Title\n\n" + " ".join(f"Sentence number {i} is here." for i in range(200)) + "\n\nLast paragraph."
    chunks = chunk_text(text, size=300, overlap=60)
    assert all(len(c) <= 300 for c in chunks) and chunks[0].startswith("Title")
    assert chunks[-1].endswith("Last paragraph.")
    assert chunks[1].split()[0] in chunks[0]  # the next passage starts inside the previous one's tail
    words = " ".join(chunks)
    assert all(f"Sentence number {i} is here." in words for i in range(200))  # nothing lost
    assert chunk_text("   \n\n  ") == []
    assert chunk_text("x" * 1000, size=300, overlap=0) == ["x" * 300] * 3 + ["x" * 100]


def test_passages_fit_the_budget() -> None:
    hits = [Hit(1, "d", "a.md", 0, "alpha " * 50, 1.0), Hit(2, "d", "b.md", 3, "beta " * 50, 0.5)]
    text = passages_for_prompt(hits, 200)
    assert text.startswith("[1] a.md (passage 1): alpha") and len(text) <= 200
    assert "[2] b.md (passage 4)" in passages_for_prompt(hits, 10_000)
