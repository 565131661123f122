"""REST endpoints for saved agents: create, read, change (a new version), delete, run, and their runs with stats."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.gateway.deps import CurrentUser, DB, Offset, Settings
from services.gateway.routers.runs import submit_run
from sparkpilot import agents
from sparkpilot.db.models import Run
from sparkpilot.schemas import Paginated, RunPublic
from sparkpilot.team_schemas import AgentCreate, AgentPublic, AgentRunCreate, AgentRuns, AgentUpdate

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


@router.post("", status_code=201, response_model=AgentPublic)
def create_agent(body: AgentCreate, db: DB, user: CurrentUser, settings: Settings) -> AgentPublic:
    """Save an agent (version 1); 409 `agent_exists` for a name you already use, 422 for unknown tools or models."""
    agent = agents.create_agent(db, user, body, settings.inference_model, settings.agent_adapter,
                                 settings.mcp_servers)
    db.commit()
    return agents.agent_public(agent)


@router.get("", response_model=Paginated[AgentPublic])
def list_agents(db: DB, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                offset: Offset = 0) -> dict:
    """Your agents, by name."""
    items, total = agents.list_agents(db, user, limit, offset)
    return {"items": [agents.agent_public(a) for a in items], "total": total, "limit": limit, "offset": offset}


@router.get("/{agent_id}", response_model=AgentPublic)
def get_agent(agent_id: str, db: DB, user: CurrentUser) -> AgentPublic:
    """One agent at its current version."""
    return agents.agent_public(agents.get_agent(db, agent_id, user))


@router.patch("/{agent_id}", response_model=AgentPublic)
def update_agent(agent_id: str, body: AgentUpdate, db: DB, user: CurrentUser, settings: Settings) -> AgentPublic:
    """Change fields; a real change is a new version."""
    agent = agents.update_agent(db, agent_id, user, body, settings.inference_model, settings.agent_adapter,
                                 settings.mcp_servers)
    db.commit()
    return agents.agent_public(agent)


@router.delete("/{agent_id}", status_code=204)
def delete_agent(agent_id: str, db: DB, user: CurrentUser) -> Response:
    """Delete the agent; its past runs stay readable."""
    agents.delete_agent(db, agent_id, user)
    db.commit()
    return Response(status_code=204)


@router.post("/{agent_id}/runs", status_code=201, response_model=RunPublic)
def run_agent(agent_id: str, body: AgentRunCreate, db: DB, user: CurrentUser, settings: Settings) -> Run:
    """Start a run with the agent's settings (the body's fields override where allowed)."""
    agent = agents.get_agent(db, agent_id, user)
    return submit_run(db, user, agents.run_body(agent, body), settings, agent)


@router.get("/{agent_id}/runs", response_model=AgentRuns)
def agent_runs(agent_id: str, db: DB, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=200)] = 50,
               offset: Offset = 0) -> AgentRuns:
    """The agent's runs, newest first, with status, steps and duration, and its stats over all of them."""
    items, total, stats = agents.agent_runs(db, agents.get_agent(db, agent_id, user), limit, offset)
    return AgentRuns(items=items, total=total, limit=limit, offset=offset, stats=stats)
