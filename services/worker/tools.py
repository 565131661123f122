"""The worker's ToolBox (agent/tools.py): a run's document collections and MCP tools.

A run started from a saved agent gets the agent's `documents` and `tools`; a team run without a
list gets every tool config/mcp_servers.json offers. Tools are described by their servers at the
start of the run; a server that cannot be reached then is still offered (with the declared name),
and calling it fails that action with the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import jsonschema

from agent.actions import ActionResult
from agent.tools import ToolSpec
from services.worker.mcp_client import McpFailure, call_tool, list_tools
from sparkpilot import documents
from sparkpilot.db.models import Run
from sparkpilot.db.session import session_scope
from sparkpilot.mcp_config import McpConfig, McpServer, load_mcp_config
from sparkpilot.settings import WorkerSettings

log = logging.getLogger(__name__)
SEARCH_HITS = 5
DESCRIBE_TTL_S = 60.0  # how long a server's tool list (or its failure to give one) is reused by the next runs
_DESCRIBED: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}


def _described(name: str, server: McpServer) -> dict[str, Any]:
    """The server's tools by name, cached per process: a run start does not relaunch every server (or wait
    out a stuck one's timeout) when another run just asked; {} when it cannot be reached."""
    key = (name, server.model_dump_json())
    cached = _DESCRIBED.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    try:
        described = {t.name: t for t in list_tools(name, server)}
    except McpFailure as exc:
        log.warning("%s; its tools are offered as declared", exc)
        described = {}
    _DESCRIBED[key] = (time.monotonic() + DESCRIBE_TTL_S, described)
    return described


class WorkerTools:
    """search_documents over the run's collections and call_tool for its MCP tools."""

    def __init__(self, collections: list[str], config: McpConfig, names: list[str]) -> None:
        self.collections, self.config = collections, config
        self.documents = bool(collections)
        self.specs: dict[str, ToolSpec] = {}
        by_server: dict[str, list[str]] = {}
        for qualified in names:
            server, _, tool = qualified.partition(".")
            by_server.setdefault(server, []).append(tool)
        for server, tools in by_server.items():
            described = _described(server, config.servers[server])
            for tool in tools:
                found = described.get(tool)
                self.specs[f"{server}.{tool}"] = ToolSpec(
                    f"{server}.{tool}", (found.description or "") if found else "",
                    dict(found.inputSchema) if found and found.inputSchema else {"type": "object"},
                    safe=tool in config.servers[server].safe)

    def call(self, name: str, args: dict[str, Any]) -> ActionResult:
        """Search the documents or call an MCP tool; every failure is the step's error."""
        if name == "search_documents":
            return self._search(str(args.get("query", "")))
        qualified, arguments = str(args.get("tool", "")), args.get("arguments") or {}
        spec = self.specs.get(qualified)
        if spec is None:
            return ActionResult(error=f"unknown tool {qualified!r}; this run's tools: {', '.join(self.specs) or 'none'}")
        try:
            jsonschema.validate(arguments, spec.input_schema)
        except jsonschema.ValidationError as exc:
            return ActionResult(error=f"arguments of {qualified} do not match its input schema: {exc.message}")
        except jsonschema.SchemaError as exc:
            return ActionResult(error=f"{qualified} has an invalid input schema: {exc.message}")
        server, _, tool = qualified.partition(".")
        try:
            return ActionResult(output=call_tool(server, self.config.servers[server], tool, arguments))
        except McpFailure as exc:
            return ActionResult(error=str(exc))

    def _search(self, query: str) -> ActionResult:
        if not self.documents:
            return ActionResult(error="this run has no documents to search")
        if not query.strip():
            return ActionResult(error="search_documents needs a query")
        with session_scope() as s:
            hits = documents.search(s, self.collections, query, SEARCH_HITS)
        return ActionResult(output=documents.passages_for_prompt(hits, 1200) or "no passage matches")

    def goal_with_passages(self, goal: str, task: str, max_chars: int) -> str:
        """The goal followed by the passages that best match the task (within `max_chars`)."""
        if not self.documents or max_chars <= 0:
            return goal
        with session_scope() as s:
            text = documents.passages_for_prompt(documents.search(s, self.collections, task, SEARCH_HITS), max_chars)
        return f"{goal}\n\nFROM YOUR DOCUMENTS (search_documents finds more):\n{text}" if text else goal


def run_tools(run: Run, settings: WorkerSettings) -> WorkerTools | None:
    """The run's ToolBox, or None when it has no documents and no MCP tools; ValueError for an unreadable config."""
    config = load_mcp_config(settings.mcp_servers)
    names = run.policy.get("tools") or (config.qualified() if run.mode == "team" else [])
    offered = set(config.qualified())
    names = [n for n in names if n in offered]  # a tool or server removed from config/ since: not offered
    collections = run.policy.get("documents") or []
    if not names and not collections:
        return None
    return WorkerTools(collections, config, names)
