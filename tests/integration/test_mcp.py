"""Sparkpilot as an MCP server (driven by the official SDK's own client over streamable HTTP and stdio)
and as an MCP client (its agents calling tools of real MCP servers started by the test).

A private gateway + worker + Chromium stack whose model answers are scripted (the tests are about
MCP, not the model). Server side: tools are listed, a task runs to its result with progress
notifications, a run that asks for approval is answered through `answer`, agents are listed and run
by name, runs are cancelled; no token (or a wrong one) is refused. Client side: a small SDK server
over stdio and over HTTP, one whose command does not exist and one that never answers.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import BIN, ROOT, Stack, free_port, scripted_env, wait_for, wait_terminal
from tests.scripted_model import ScriptedModel

MODEL = "scripted-mcp"
TOOLS = {"run_task", "get_run", "list_runs", "cancel_run", "answer", "list_agents"}


def act(name: str, **args: object) -> str:
    return json.dumps({"action": {"name": name, **args}})


def servers_config(folder: Path, http_port: int) -> dict:
    """config/mcp_servers.json for the tests: the calc server over stdio and HTTP, a missing and a stuck one."""
    calc = [sys.executable, str(ROOT / "tests" / "mcp_calc_server.py")]
    return {"servers": {
        "calc": {"command": calc, "env": {"CALC_NOTES": str(folder / "notes.txt")},
                 "tools": ["add", "save_note", "fail"], "safe": ["add", "fail"]},
        "calchttp": {"url": f"http://127.0.0.1:{http_port}/mcp", "tools": ["add"], "safe": ["add"]},
        "missing": {"command": ["/nonexistent/mcp-server"], "tools": ["anything"], "safe": ["anything"]},
        "stuck": {"command": [sys.executable, "-c", "import time; time.sleep(300)"], "tools": ["wait"],
                  "safe": ["wait"], "timeout_s": 3},
        # The reference fetch server from PyPI (scripts/setup.sh --test installs it in its own venv).
        "fetch": {"command": [str(ROOT / ".venv-mcp-fetch" / "bin" / "mcp-server-fetch"), "--allow-private-ips"],
                  "tools": ["fetch"], "safe": ["fetch"], "timeout_s": 60},
    }}


@pytest.fixture(scope="module")
def mcp_stack(base_env: dict[str, str]) -> Iterator[tuple[Stack, ScriptedModel]]:
    """A private stack on a scripted model, with the test MCP servers declared (the HTTP one running)."""
    folder = Path(tempfile.mkdtemp(prefix="sparkpilot-mcp-"))
    port = free_port()
    http_server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "mcp_calc_server.py"), "--http", str(port)],
                                   stdout=subprocess.DEVNULL, stderr=(folder / "calchttp.log").open("wb"))
    (folder / "mcp_servers.json").write_text(json.dumps(servers_config(folder, port)))
    with ScriptedModel(MODEL, []) as model:
        stack = Stack(env=scripted_env(base_env, folder, model.url, MODEL,
                                       SPARKPILOT_MCP_SERVERS=str(folder / "mcp_servers.json")), logdir=folder)
        try:
            wait_for(lambda: _listening(port), 30, "the HTTP MCP server")
            stack.start_gateway()
            stack.start_worker(concurrency=2)
            yield stack, model
        finally:
            stack.stop()
            http_server.terminate()
            http_server.wait(10)
            for log in sorted(folder.glob("*.log")):
                print(f"\n--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-3000:]}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def result_of(call) -> object:  # noqa: ANN001
    """A tool result's structured value (FastMCP wraps non-object results in {"result": …})."""
    assert not call.isError, call.content
    data = call.structuredContent
    return data["result"] if set(data) == {"result"} else data


async def _session_calls(url: str, token: str, fn) -> object:  # noqa: ANN001
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=90) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, _):
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
    assert "title reader" in [a["name"] for a in out["agents"]]
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


def test_agents_call_mcp_tools_with_schemas_approvals_and_clear_failures(mcp_stack) -> None:  # noqa: ANN001
    stack, _ = mcp_stack
    api = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30)
    tools = ["calc.add", "calc.save_note", "calc.fail", "calchttp.add", "missing.anything", "stuck.wait"]
    bad = api.post("/api/v1/agents", json={"name": "bad tools", "tools": ["calc.add", "calc.nope"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_tool" and "calc.nope" in bad.text
    agent = api.post("/api/v1/agents", json={"name": "tool user", "tools": tools}).json()

    def call(tool: str, **arguments: object) -> dict:
        return {"name": "call_tool", "tool": tool, "arguments": arguments}

    script = [call("calc.add", a=2, b=3), call("calc.add", a="two", b=3), call("calchttp.add", a=20, b=22),
              call("calc.save_note", text="hello from a run"), call("calc.fail", reason="boom"), call("calc.add", a=1, b=1),
              call("missing.anything"), call("calc.add", a=4, b=4), call("stuck.wait"),
              {"name": "finish", "answer": "tools used"}]
    resp = api.post(f"/api/v1/agents/{agent['id']}/runs", json={"task": "use the tools", "policy": "replay",
                                                                "actions": script, "max_steps": 12})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    waiting = wait_for(lambda: (lambda r: r if r["status"] == "awaiting_approval" else None)(
        api.get(f"/api/v1/runs/{run_id}").json()), 90, "the save_note approval")
    [pending] = api.get(f"/api/v1/runs/{run_id}/approvals").json()
    assert waiting["wait"]["kind"] == "action" and pending["category"] == "mcp_tool"
    assert "calc.save_note" in pending["reason"] and pending["action"]["args"]["arguments"] == {"text": "hello from a run"}
    assert api.post(f"/api/v1/runs/{run_id}/approvals/{pending['id']}", json={"approve": True}).status_code == 200
    run = wait_terminal(api, run_id, timeout=120)
    assert (run["status"], run["result"]) == ("succeeded", "tools used"), run
    steps = api.get(f"/api/v1/runs/{run_id}/steps").json()
    results = [(s["action"].get("result"), s["error"]) for s in steps]
    assert results[0] == ("5", None) and results[2] == ("42", None)
    assert "do not match its input schema" in results[1][1] and "two" in results[1][1]
    assert results[3] == ("saved note 1", None)
    assert (Path(stack.logdir) / "notes.txt").read_text() == "hello from a run\n"  # the call really happened
    assert "calc.fail reported an error" in results[4][1] and "boom" in results[4][1]
    assert "MCP server 'missing' failed" in results[6][1]
    assert "MCP server 'stuck' did not answer within 3 s" in results[8][1]
    assert [r for r, _ in results[5:8:2]] == ["2", "8"]
    [record] = [r for r in api.get(f"/api/v1/runs/{run_id}/trajectory").json()[:1]]
    prompt = " ".join(str(m["content"]) for m in record["messages"])
    assert "calc.add" in prompt and "Add two integers." in prompt  # described by the server itself
    # The worker survived all of it: the next run on it finishes.
    again = api.post(f"/api/v1/agents/{agent['id']}/runs", json={"task": "again", "policy": "replay",
                                                                 "actions": [call("calc.add", a=0, b=0),
                                                                             {"name": "finish", "answer": "ok"}]})
    assert wait_terminal(api, again.json()["id"], timeout=60)["status"] == "succeeded"
    assert stack.health()["checks"]["worker"] == "ok"
    api.close()


def test_an_agent_uses_the_reference_fetch_server(mcp_stack, pages) -> None:  # noqa: ANN001
    """mcp-server-fetch (the MCP project's reference server, from PyPI) reads a local page for the agent."""
    stack, _ = mcp_stack
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=30) as api:
        agent = api.post("/api/v1/agents", json={"name": "fetcher", "tools": ["fetch.fetch"]}).json()
        script = [{"name": "call_tool", "tool": "fetch.fetch", "arguments": {"url": pages.url + "/prices.html", "raw": True}},
                  {"name": "finish", "answer": "read"}]
        run = api.post(f"/api/v1/agents/{agent['id']}/runs", json={"task": "read the prices", "policy": "replay",
                                                                   "actions": script}).json()
        assert wait_terminal(api, run["id"], timeout=120)["status"] == "succeeded"
        [fetched, _] = api.get(f"/api/v1/runs/{run['id']}/steps").json()
        assert fetched["error"] is None and "Cheese" in fetched["action"]["result"] and "23" in fetched["action"]["result"]
