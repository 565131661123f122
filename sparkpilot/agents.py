"""Saved agents: a user's named configurations (instructions, mode, model, domains, limits), versioned.

Every change that alters an agent makes a new version (kept in agent_versions even after the
agent is deleted); a run started from an agent records the agent's id and the version it used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sparkpilot import registry
from sparkpilot.db.models import TERMINAL_STATUSES, Agent, AgentVersion, Run, RunStatus, Step, User, utcnow
from sparkpilot.documents import check_collections
from sparkpilot.errors import Conflict, InvalidInput, NotFound
from sparkpilot.mcp_config import check_tools
from sparkpilot.schemas import RunCreate
from sparkpilot.team_schemas import (AgentConfig, AgentCreate, AgentPublic, AgentRunCreate, AgentRunPublic, AgentStats,
                                     AgentUpdate)


def agent_public(agent: Agent) -> AgentPublic:
    """Table row → API schema."""
    return AgentPublic(**agent.config, id=agent.id, name=agent.name, version=agent.version,
                       created_at=agent.created_at, updated_at=agent.updated_at)


def check_references(session: Session, user: User, config: AgentConfig, base_model: str, default_adapter: str,
                     mcp_servers: Path) -> None:
    """422 for a tool, document collection or model the agent names but nothing provides."""
    check_tools(mcp_servers, config.tools)
    check_collections(session, user, config.documents)
    if config.model:
        try:
            registry.resolve_model(session, config.model, base_model, default_adapter)
        except NotFound as exc:
            raise InvalidInput(f"unknown model: {exc.message}", code="unknown_model") from exc


def _name_taken(session: Session, user: User, name: str, except_id: str | None = None) -> None:
    row = session.scalar(select(Agent).where(Agent.user_id == user.id, Agent.name == name))
    if row is not None and row.id != except_id:
        raise Conflict(f"you already have an agent named {name!r}", code="agent_exists")


def create_agent(session: Session, user: User, body: AgentCreate, base_model: str, default_adapter: str,
                 mcp_servers: Path) -> Agent:
    """A new agent at version 1; 409 for a name the user already has, 422 for unknown references."""
    config = AgentConfig.model_validate(body.model_dump(exclude={"name"}))
    check_references(session, user, config, base_model, default_adapter, mcp_servers)
    _name_taken(session, user, body.name)
    agent = Agent(user_id=user.id, name=body.name, version=1, config=config.model_dump())
    session.add(agent)
    session.flush()
    session.add(AgentVersion(agent_id=agent.id, name=agent.name, version=1, config=agent.config))
    return agent


def get_agent(session: Session, agent_id: str, user: User) -> Agent:
    """An agent of this user; 404 for an unknown (or another user's, or deleted) id."""
    agent = session.get(Agent, agent_id)
    if agent is None or agent.user_id != user.id:
        raise NotFound(f"agent {agent_id!r} not found")
    return agent


def list_agents(session: Session, user: User, limit: int, offset: int) -> tuple[list[Agent], int]:
    """A page of the user's agents by name."""
    where = Agent.user_id == user.id
    total = session.scalar(select(func.count()).select_from(Agent).where(where)) or 0
    rows = session.scalars(select(Agent).where(where).order_by(Agent.name).limit(limit).offset(offset))
    return list(rows), total


def update_agent(session: Session, agent_id: str, user: User, body: AgentUpdate, base_model: str,
                 default_adapter: str, mcp_servers: Path) -> Agent:
    """Apply the given fields; a real change is a new version, an unchanged body keeps the version."""
    agent = get_agent(session, agent_id, user)
    changes = body.model_dump(exclude_unset=True)
    name = changes.pop("name", None) or agent.name
    try:
        config = AgentConfig.model_validate({**agent.config, **changes})
    except ValidationError as exc:
        raise InvalidInput(exc.errors()[0]["msg"], code="invalid_agent") from exc
    check_references(session, user, config, base_model, default_adapter, mcp_servers)
    if name != agent.name:
        _name_taken(session, user, name, agent.id)
    if name == agent.name and config.model_dump() == agent.config:
        return agent
    agent.name, agent.config, agent.version, agent.updated_at = name, config.model_dump(), agent.version + 1, utcnow()
    session.add(AgentVersion(agent_id=agent.id, name=name, version=agent.version, config=agent.config))
    session.flush()
    return agent


def delete_agent(session: Session, agent_id: str, user: User) -> None:
    """Remove the agent; its versions and its runs stay (runs keep their agent id and version)."""
    session.delete(get_agent(session, agent_id, user))


def run_body(agent: Agent, body: AgentRunCreate) -> RunCreate:
    """The run an agent starts: its settings, with what the body may override; 422 if they do not fit together."""
    config = AgentConfig.model_validate(agent.config)
    try:
        return RunCreate(task=body.task, start_url=body.start_url, max_steps=body.max_steps or config.max_steps,
                         allowed_domains=body.allowed_domains if body.allowed_domains is not None else config.allowed_domains,
                         model=config.model, mode=config.mode, auto_approve=body.auto_approve and config.mode == "team",
                         approval_policy=config.approval_policy, policy=body.policy, actions=body.actions)
    except ValidationError as exc:
        raise InvalidInput(f"this run does not fit agent {agent.name!r}: {exc.errors()[0]['msg']}",
                           code="invalid_run") from exc


def agent_runs(session: Session, agent: Agent, limit: int, offset: int) -> tuple[list[AgentRunPublic], int, AgentStats]:
    """A page of the agent's runs (newest first) with their step counts and durations, and stats over all of them."""
    steps = select(Step.run_id, func.count().label("n")).group_by(Step.run_id).subquery()
    rows = session.execute(
        select(Run, func.coalesce(steps.c.n, 0)).outerjoin(steps, steps.c.run_id == Run.id)
        .where(Run.agent_id == agent.id, Run.user_id == agent.user_id)
        .order_by(Run.created_at.desc(), Run.id)
    ).all()
    items = [_item(run, n) for run, n in rows]
    finished = [i for i in items if i.status in TERMINAL_STATUSES]
    succeeded = [i for i in finished if i.status is RunStatus.succeeded]
    durations = [i.duration_s for i in finished if i.duration_s is not None]
    stats = AgentStats(runs=len(items), finished=len(finished), succeeded=len(succeeded),
                       success_rate=round(len(succeeded) / len(finished), 4) if finished else None,
                       mean_steps=round(sum(i.steps for i in finished) / len(finished), 2) if finished else None,
                       mean_duration_s=round(sum(durations) / len(durations), 2) if durations else None)
    return items[offset:offset + limit], len(items), stats


def _item(run: Run, steps: Any) -> AgentRunPublic:
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at else None
    return AgentRunPublic(id=run.id, status=run.status, task=run.task, agent_version=run.agent_version,
                          reason=run.reason, result=run.result, steps=int(steps),
                          duration_s=round(duration, 3) if duration is not None else None, created_at=run.created_at)
