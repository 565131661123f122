"""Calling MCP servers from the (synchronous) worker with the official SDK's client.

Each operation opens a session (starting a stdio server, or connecting to a streamable HTTP one),
does one thing and closes it, in a helper thread with its own event loop, under the server's
timeout. Every failure (a command that does not exist, a server that exits or hangs, a tool error)
comes back as McpFailure with a readable message: it becomes the step's error, never a crash.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from sparkpilot.mcp_config import McpServer

T = TypeVar("T")
# What a stdio server inherits from the worker's environment (the rest is the server's own `env`).
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR")


class McpFailure(Exception):
    """An MCP server could not start, answer in time, or do what was asked."""


@contextlib.asynccontextmanager
async def _session(server: McpServer) -> AsyncIterator[ClientSession]:
    async with contextlib.AsyncExitStack() as stack:
        if server.command:
            env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ} | server.env
            params = StdioServerParameters(command=server.command[0], args=server.command[1:], env=env)
            streams = await stack.enter_async_context(stdio_client(params))
        else:
            http = await stack.enter_async_context(httpx.AsyncClient(headers=server.headers, timeout=server.timeout_s))
            streams = await stack.enter_async_context(streamable_http_client(server.url or "", http_client=http))
        session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
        await session.initialize()
        yield session


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside nested exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _run(name: str, server: McpServer, op: Callable[[ClientSession], Awaitable[T]]) -> T:
    async def main() -> T:
        with anyio.fail_after(server.timeout_s):
            async with _session(server) as session:
                return await op(session)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mcp-{name}") as pool:
        try:
            return pool.submit(anyio.run, main).result()
        except McpFailure:
            raise
        except Exception as exc:  # any transport, process or protocol failure is the server's, told to the model
            leaf = _leaf(exc)
            if isinstance(leaf, TimeoutError):
                raise McpFailure(f"MCP server {name!r} did not answer within {server.timeout_s:g} s") from exc
            raise McpFailure(f"MCP server {name!r} failed: {type(leaf).__name__}: {leaf}".strip()) from exc


def list_tools(name: str, server: McpServer) -> list[Any]:
    """The server's tools (mcp.types.Tool), as it describes them."""
    async def op(session: ClientSession) -> list[Any]:
        return list((await session.list_tools()).tools)
    return _run(name, server, op)


def call_tool(name: str, server: McpServer, tool: str, arguments: dict[str, Any]) -> str:
    """The tool's text result; McpFailure with the server's message if it reports an error."""
    async def op(session: ClientSession) -> tuple[bool, str]:
        result = await session.call_tool(tool, arguments)
        parts = [getattr(c, "text", None) or f"[{c.type} content]" for c in result.content]
        if not parts and result.structuredContent is not None:
            parts = [str(result.structuredContent)]
        return bool(result.isError), "\n".join(parts)

    failed, text = _run(name, server, op)
    if failed:
        raise McpFailure(f"the tool {name}.{tool} reported an error: {text or '(no message)'}")
    return text
