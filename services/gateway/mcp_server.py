"""Sparkpilot as an MCP server: run tasks, read and steer runs, list agents, from any MCP client.

The official SDK's FastMCP serves the tools on the gateway at /mcp (streamable HTTP, stateless,
behind the same bearer tokens as the REST API) and over stdio (`sparkpilot mcp serve`). Each tool
is a thin wrapper over the functions the REST routers call; errors come back as MCP tool errors
with the API's code and message.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.server import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError
from sqlalchemy import func, select
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.deps import authenticate, bearer_token
from services.gateway.errors import envelope
from services.gateway.routers.runs import submit_run
from services.gateway.routers.team import apply_plan_decision
from sparkpilot import agents, approvals, runs
from sparkpilot.db.models import TERMINAL_STATUSES, Agent, Run, RunStatus, Step, User
from sparkpilot.db.session import session_scope
from sparkpilot.errors import InvalidInput, NotFound, SparkpilotError
from sparkpilot.events import publish
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import RunCreate
from sparkpilot.settings import get_gateway_settings, get_settings
from sparkpilot.team_schemas import AgentRunCreate, PlanDecision

WAITING = {RunStatus.awaiting_approval, RunStatus.awaiting_input}
POLL_S = 0.5

TokenOf = Callable[[Context], str | None]


def http_token(ctx: Context) -> str | None:
    """The bearer token of the HTTP request that carried this tool call."""
    request = ctx.request_context.request
    return bearer_token(request.headers.get("authorization")) if request is not None else None


def run_summary(session: Any, run: Run) -> dict[str, Any]:
    """What a tool returns about a run."""
    steps = session.scalar(select(func.count()).select_from(Step).where(Step.run_id == run.id)) or 0
    return {"id": run.id, "status": run.status.value, "task": run.task, "mode": run.mode, "result": run.result,
            "reason": run.reason, "reward": run.reward, "steps": steps, "max_steps": run.max_steps, "wait": run.wait,
            "agent_id": run.agent_id, "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None}


def _call(token: str | None, fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn(session, user, *args) in one transaction, turning API errors into tool errors."""
    try:
        with session_scope() as session:
            return fn(session, authenticate(session, token), *args)
    except SparkpilotError as exc:
        raise ToolError(f"{exc.code}: {exc.message}") from exc
    except ValidationError as exc:
        raise ToolError(f"invalid_input: {exc.errors()[0]['msg']}") from exc


def _find_agent(session: Any, user: User, ref: str) -> Agent:
    agent = session.scalar(select(Agent).where(Agent.user_id == user.id, Agent.name == ref))
    return agent or agents.get_agent(session, ref, user)


def _submit(session: Any, user: User, task: str, start_url: str | None, agent: str | None, mode: str) -> dict:
    settings = get_gateway_settings()
    if agent:
        saved = _find_agent(session, user, agent)
        run = submit_run(session, user, agents.run_body(saved, AgentRunCreate(task=task, start_url=start_url)),
                         settings, saved)
    else:
        run = submit_run(session, user, RunCreate(task=task, start_url=start_url, mode=mode), settings)
    return run_summary(session, run)


def _get(session: Any, user: User, run_id: str) -> dict:
    return run_summary(session, runs.get_run(session, run_id, user))


def _list(session: Any, user: User, status: str | None, limit: int) -> list[dict]:
    try:
        wanted = RunStatus(status) if status else None
    except ValueError as exc:
        raise InvalidInput(f"unknown status {status!r}; one of {[s.value for s in RunStatus]}") from exc
    items, _ = runs.list_runs(session, user, wanted, limit, 0)
    return [run_summary(session, r) for r in items]


def _cancel(session: Any, user: User, run_id: str) -> dict:
    run, events = runs.request_cancel(session, run_id, user)
    session.commit()
    publish(get_redis(), events)
    return run_summary(session, run)


def _answer(session: Any, user: User, run_id: str, approve: bool | None, text: str | None, reason: str | None) -> dict:
    run = runs.get_run(session, run_id, user)
    kind = (run.wait or {}).get("kind") if run.status in WAITING else None
    if kind is None:
        raise InvalidInput(f"run {run_id} is {run.status.value}: it is not waiting for an answer", code="not_waiting")
    if kind == "input":
        if not text:
            raise InvalidInput("this run asks a question: answer it with `text`", code="text_required")
        _, events = approvals.answer_input(session, run_id, user, text)
    elif approve is None:
        raise InvalidInput(f"this run waits for a {kind} approval: give `approve` (true or false)",
                           code="approve_required")
    elif kind == "plan":
        decision = PlanDecision(action="approve") if approve else \
            PlanDecision(action="reject", feedback=reason or "rejected from an MCP client")
        apply_plan_decision(session, run_id, user, decision, get_gateway_settings().plan_max_rejections)
        events = []
    else:
        _, events = approvals.decide_approval(session, run_id, user, run.wait["approval_id"], approve, reason or "")
    session.commit()
    publish(get_redis(), events)
    session.refresh(run)
    return run_summary(session, run)


def _list_agents(session: Any, user: User, limit: int) -> list[dict]:
    items, _ = agents.list_agents(session, user, limit, 0)
    return [agents.agent_public(a).model_dump(mode="json") for a in items]


def build_mcp(token_of: TokenOf) -> FastMCP:
    """The MCP server with Sparkpilot's tools; `token_of` names the caller of each tool call."""
    # Bearer tokens guard every request, so the SDK's Host-header check would only refuse compose's hostnames.
    server = FastMCP("sparkpilot", stateless_http=True, streamable_http_path="/",
                     transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
                     instructions="Run browser tasks on Sparkpilot, follow them, and answer their questions.")

    async def call(ctx: Context, fn: Callable[..., Any], *args: Any) -> Any:
        token = token_of(ctx)
        return await anyio.to_thread.run_sync(lambda: _call(token, fn, *args))

    @server.tool()
    async def run_task(task: str, ctx: Context, start_url: str | None = None, agent: str | None = None,
                       mode: Literal["direct", "team"] = "direct", wait: bool = True,
                       timeout_s: float = 300.0) -> dict[str, Any]:
        """Start a browser task (optionally as a saved agent, by name or id); with wait, return when it ends or needs an answer."""
        run = await call(ctx, _submit, task, start_url, agent, mode)
        if not wait:
            return run
        deadline, last = time.monotonic() + max(0.0, timeout_s), None
        while True:
            progress = (run["status"], run["steps"])
            if progress != last:
                last = progress
                await ctx.report_progress(run["steps"], run["max_steps"], f"{run['status']}: {run['steps']} steps")
            if RunStatus(run["status"]) in TERMINAL_STATUSES or RunStatus(run["status"]) in WAITING:
                return run
            if time.monotonic() >= deadline:
                return {**run, "note": "still going after timeout_s; follow it with get_run"}
            await asyncio.sleep(POLL_S)
            run = await call(ctx, _get, run["id"])

    @server.tool()
    async def get_run(run_id: str, ctx: Context) -> dict[str, Any]:
        """One run: status, result, reason, steps, and what it waits for."""
        return await call(ctx, _get, run_id)

    @server.tool()
    async def list_runs(ctx: Context, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Your runs, newest first, optionally with one status."""
        return await call(ctx, _list, status, max(1, min(limit, 200)))

    @server.tool()
    async def cancel_run(run_id: str, ctx: Context) -> dict[str, Any]:
        """Cancel a run (at once if no worker holds it, else between steps)."""
        return await call(ctx, _cancel, run_id)

    @server.tool()
    async def answer(run_id: str, ctx: Context, approve: bool | None = None, text: str | None = None,
                     reason: str | None = None) -> dict[str, Any]:
        """Answer a waiting run: approve or reject its plan or action (reason = feedback), or answer its question (text)."""
        return await call(ctx, _answer, run_id, approve, text, reason)

    @server.tool()
    async def list_agents(ctx: Context, limit: int = 50) -> list[dict[str, Any]]:
        """Your saved agents and their settings."""
        return await call(ctx, _list_agents, max(1, min(limit, 200)))

    return server


class BearerGuard:
    """ASGI wrapper: 401 in the API's error envelope unless the request carries a known bearer token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            token = bearer_token(dict(scope["headers"]).get(b"authorization", b"").decode("latin-1"))
            if not await anyio.to_thread.run_sync(_known, token):
                resp = envelope(401, "a valid bearer token is required (Authorization: Bearer <token>)", "unauthorized")
                return await resp(scope, receive, send)
        await self.app(scope, receive, send)


def _known(token: str | None) -> bool:
    try:
        with session_scope() as session:
            authenticate(session, token)
        return True
    except SparkpilotError:
        return False


def http_app(server: FastMCP) -> ASGIApp:
    """The /mcp endpoint: the SDK's streamable HTTP app behind the bearer guard (run server.session_manager)."""
    server.streamable_http_app()  # creates the session manager
    return BearerGuard(StreamableHTTPASGIApp(server.session_manager))


def serve_stdio(token: str) -> None:
    """Serve the tools over stdio as the owner of `token` (for desktop MCP clients)."""
    if not _known(token):
        raise NotFound("unknown token: create one with `sparkpilot token create --user NAME`", code="unauthorized")
    build_mcp(lambda _ctx: token).run("stdio")


def main() -> int:
    """`sparkpilot mcp serve`: stdio as the owner of SPARKPILOT_TOKEN; 2 with a message for an unknown token."""
    try:
        serve_stdio(get_settings().token)
    except SparkpilotError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
