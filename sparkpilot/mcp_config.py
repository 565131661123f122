"""The MCP servers agents may use (config/mcp_servers.json): how to reach each, and which of its tools.

A server is started as a command (stdio) or reached at a URL (streamable HTTP). Only the tools a
server lists in `tools` are offered, under the qualified name `server.tool`; those in `safe` run
without asking (the others fall in the approval policy's `mcp_tool` category, `ask` by default).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sparkpilot.errors import InvalidInput

SERVER_NAME = r"^[A-Za-z0-9_-]{1,40}$"


class McpServer(BaseModel):
    """One declared MCP server."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = Field(default=None, min_length=1)  # stdio: argv of the server
    url: str | None = None  # streamable HTTP
    env: dict[str, str] = Field(default_factory=dict)  # stdio: environment added for the server
    headers: dict[str, str] = Field(default_factory=dict)  # HTTP: e.g. Authorization
    tools: list[str] = Field(min_length=1)  # the tools agents may call
    safe: list[str] = Field(default_factory=list)  # of those, the ones that need no approval
    timeout_s: float = Field(default=30.0, gt=0)  # to start, list tools, or answer one call

    @model_validator(mode="after")
    def _one_transport(self) -> "McpServer":
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (stdio) or url (streamable HTTP)")
        unknown = set(self.safe) - set(self.tools)
        if unknown:
            raise ValueError(f"safe tools {sorted(unknown)} are not in tools")
        return self


class McpConfig(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="ignore")

    servers: dict[str, McpServer] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> "McpConfig":
        import re

        bad = [n for n in self.servers if not re.match(SERVER_NAME, n)]
        if bad:
            raise ValueError(f"server names must be letters, digits, _ or -: {bad}")
        return self

    def qualified(self) -> list[str]:
        """Every offered tool as server.tool."""
        return [f"{name}.{tool}" for name, server in self.servers.items() for tool in server.tools]


def load_mcp_config(path: Path) -> McpConfig:
    """The declared servers (none when the file does not exist); ValueError naming the problem if it is invalid."""
    if not Path(path).is_file():
        return McpConfig()
    try:
        return McpConfig.model_validate(json.loads(Path(path).read_text()))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def check_tools(path: Path, names: list[str]) -> None:
    """422 `unknown_tool` for a tool name no declared server offers."""
    known = set(load_mcp_config(path).qualified()) if names else set()
    for name in names:
        if name not in known:
            raise InvalidInput(f"unknown tool {name!r}: tools are named server.tool from the MCP servers in "
                               f"{Path(path).name} (known: {', '.join(sorted(known)) or 'none'})", code="unknown_tool")
