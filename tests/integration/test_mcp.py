"""Sparkpilot as an MCP server, driven by the official SDK's own client over streamable HTTP and stdio.

A private gateway + worker + Chromium stack whose model answers are scripted (the test is about the
MCP surface, not the model): tools are listed, a task runs to its result with progress
notifications, a run that asks for approval is answered through `answer`, agents are listed and
run by name, runs are cancelled; no token (or a wrong one) is refused.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

from tests.helpers import BIN, Stack, scripted_env, wait_terminal
from tests.scripted_model import ScriptedModel

MODEL = "scripted-mcp"
TOOLS = {"run_task", "get_run", "list_runs", "cancel_run", "answer", "list_agents"}


def act(name: str, **args: object) -> str:
    return json.dumps({"action": {"name": name, **args}})


@pytest.fixture(scope="module")
def mcp_stack(base_env: dict[str, str]) -> Iterator[tuple[Stack, ScriptedModel]]:
    """A private stack on a scripted model."""
    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-mcp-"))
    with ScriptedModel(MODEL, []) as model:
        stack = Stack(env=scripted_env(base_env, folder, model.url, MODEL), logdir=folder)
        try:
            stack.start_gateway()
            stack.start_worker(concurrency=2)
            yield stack, model
        finally:
            stack.stop()
            for log in sorted(folder.glob("*.log")):
                print(f"\n--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-3000:]}")


def result_of(call) -> object:  # noqa: ANN001
    """A tool result's structured value (FastMCP wraps non-object results in {"result": …})."""
    assert not call.isError, call.content
    data = call.structuredContent
    return data["result"] if set(data) == {"result"} else data


async def _session_calls(url: str, token: str, fn) -> object:  # noqa: ANN001
    async with streamablehttp_client(url, headers={"Authorization": f"Bearer {token}"}) as (read, write, _):
        async with ClientSession(read, write, read_timeout_seconds=timedelta(seconds=90)) as session:
            await session.initialize()
            return await fn(session)


def test_mcp_over_http_runs_a_task_answers_it_and_refuses_strangers(mcp_stack, pages) -> None:  # noqa: ANN001
    stack, model = mcp_stack
    url = stack.base_url + "/mcp"
    model.routes["MCP-ONE"] = [act("finish", answer="The title is Test page.")]
    api = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)
    agent = api.post("/api/v1/agents", json={"name": "title reader", "instructions": "MCP-AGENT read titles."}).json()
    model.routes["MCP-AGENT"] = [act("finish", answer="read by the agent")]
    progress: list[tuple[float, float | None, str | None]] = []

    async def journey(session: ClientSession) -> dict:
        out: dict = {"tools": {t.name for t in (await session.list_tools()).tools}}

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        out["run"] = result_of(await session.call_tool(
            "run_task", {"task": "MCP-ONE: what is the title?", "start_url": pages.url + "/index.html"},
            progress_callback=on_progress))
        # A password form: the run pauses for approval, run_task returns it waiting, `answer` lets it go on.
        waiting = result_of(await session.call_tool("run_task", {
            "task": "MCP-TWO: sign in", "start_url": pages.url + "/login.html"}))
        out["waiting"] = waiting
        refused = await session.call_tool("answer", {"run_id": waiting["id"]})
        out["refused"] = refused.content[0].text if refused.isError else None
        out["answered"] = result_of(await session.call_tool("answer", {"run_id": waiting["id"], "approve": True}))
        out["by_agent"] = result_of(await session.call_tool("run_task", {"task": "which title?",
                                                                         "agent": "title reader"}))
        queued = result_of(await session.call_tool("run_task", {"task": "MCP-THREE: wait", "wait": False,
                                                                "start_url": pages.url + "/index.html"}))
        out["cancelled"] = result_of(await session.call_tool("cancel_run", {"run_id": queued["id"]}))
        out["runs"] = result_of(await session.call_tool("list_runs", {"limit": 10}))
        out["agents"] = result_of(await session.call_tool("list_agents", {}))
        missing = await session.call_tool("get_run", {"run_id": "no-such-run"})
        out["missing"] = missing.content[0].text if missing.isError else None
        return out

    model.routes["MCP-TWO"] = [act("press", key="Enter"), act("finish", answer="signed in")]
    model.routes["MCP-THREE"] = [act("wait", seconds=2)] * 6
    out = anyio.run(_session_calls, url, stack.token, journey)

    assert TOOLS <= out["tools"]
    run = out["run"]
    assert (run["status"], run["result"], run["steps"]) == ("succeeded", "The title is Test page.", 1)
    assert progress and progress[-1][0] == 1 and progress[-1][1] == run["max_steps"]  # the client saw progress
    assert out["waiting"]["status"] == "awaiting_approval" and out["waiting"]["wait"]["kind"] == "action"
    assert out["refused"] and "approve_required" in out["refused"]
    assert out["answered"]["status"] in ("running", "succeeded")
    done = wait_terminal(api, out["waiting"]["id"])
    steps = api.get(f"/api/v1/runs/{done['id']}/steps").json()
    assert done["status"] == "succeeded" and steps[1]["observation"]["title"] == "signed in as ada"
    assert out["by_agent"]["agent_id"] == agent["id"] and out["by_agent"]["result"] == "read by the agent"
    assert out["cancelled"]["id"] and wait_terminal(api, out["cancelled"]["id"])["status"] == "cancelled"
    assert {run["id"], out["waiting"]["id"], out["by_agent"]["id"]} <= {r["id"] for r in out["runs"]}
    assert [a["name"] for a in out["agents"]] == ["title reader"]
    assert out["missing"] and "not_found" in out["missing"]

    # Nobody without a token: the endpoint answers 401 in the API's envelope, and the SDK client fails.
    for headers in ({}, {"Authorization": "Bearer sp_wrong"}):
        resp = httpx.post(url, headers={**headers, "Accept": "application/json, text/event-stream"},
                          json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces the 401 as its own error type
        anyio.run(_session_calls, url, "sp_wrong", lambda s: s.list_tools())
    api.close()


def test_mcp_over_stdio_for_desktop_clients(mcp_stack, pages) -> None:  # noqa: ANN001
    stack, model = mcp_stack
    env = {**stack.env, "SPARKPILOT_TOKEN": stack.token}
    model.routes["MCP-STDIO"] = [act("finish", answer="ok")]
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}) as api:
        made = api.post("/api/v1/runs", json={"task": "MCP-STDIO", "start_url": pages.url + "/index.html"}).json()

    async def listing() -> tuple[set[str], list]:
        params = StdioServerParameters(command=str(BIN / "sparkpilot"), args=["mcp", "serve"], env=env)
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name for t in (await session.list_tools()).tools}
                return tools, result_of(await session.call_tool("list_runs", {"limit": 5}))

    tools, runs = anyio.run(listing)
    assert TOOLS <= tools and made["id"] in [r["id"] for r in runs]
    bad = subprocess.run([str(BIN / "sparkpilot"), "mcp", "serve"], env={**env, "SPARKPILOT_TOKEN": "sp_wrong"},
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "unknown token" in bad.stderr
