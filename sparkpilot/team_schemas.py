"""API schemas of the agent team (plans, approvals, questions, the plan library), saved agents and document collections."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sparkpilot.db.models import RunStatus

TeamAgentName = Literal["web", "coder", "file", "user"]
ApprovalRule = Literal["allow", "ask", "deny"]
# What the approval policy judges (config/approvals.json names a rule for each).
ApprovalCategory = Literal["submit_sensitive", "download", "leave_allowed_domains", "run_code", "overwrite_file",
                           "delete_file", "mcp_tool"]


class PlanStep(BaseModel):
    """One step of a team plan: which agent does what, and what should come out."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    agent: TeamAgentName
    instruction: str = Field(min_length=1, max_length=2000)
    expected: str = Field(default="", max_length=1000)


class Plan(BaseModel):
    """The orchestrator's plan: the steps in order (also the JSON schema the model answers in)."""

    model_config = ConfigDict(extra="forbid")

    steps: list[PlanStep] = Field(min_length=1, max_length=12)


class PlanPublic(BaseModel):
    """A team run's plan as the API shows it (GET /api/v1/runs/{id}/plan)."""

    steps: list[PlanStep]
    status: Literal["proposed", "approved"]
    revision: int
    rejections: int
    feedback: list[str]
    ledger: list[dict[str, Any]]
    deadline_at: datetime | None


class PlanDecision(BaseModel):
    """Body of POST /api/v1/runs/{id}/plan: approve it, edit it (then it is approved), or reject it with feedback."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: Literal["approve", "edit", "reject"]
    steps: list[PlanStep] | None = Field(default=None, min_length=1, max_length=12)
    feedback: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _fields_match_action(self) -> "PlanDecision":
        if self.action == "edit" and not self.steps:
            raise ValueError("action 'edit' needs the edited steps")
        if self.action != "edit" and self.steps is not None:
            raise ValueError("steps are only for action 'edit'")
        if self.action == "reject" and not self.feedback:
            raise ValueError("action 'reject' needs feedback for the next plan")
        if self.action != "reject" and self.feedback is not None:
            raise ValueError("feedback is only for action 'reject'")
        return self


class ApprovalPublic(BaseModel):
    """An action a run paused on, waiting for (or given) a person's answer."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    run_id: str
    category: str
    action: dict[str, Any]
    reason: str
    has_screenshot: bool
    status: str
    decided_reason: str | None
    created_at: datetime
    deadline_at: datetime
    decided_at: datetime | None


class ApprovalDecision(BaseModel):
    """Body of POST /api/v1/runs/{id}/approvals/{aid}."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    approve: bool
    reason: str | None = Field(default=None, max_length=2000)


class InputAnswer(BaseModel):
    """Body of POST /api/v1/runs/{id}/input: the person's answer to the run's question."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=10_000)


class SavedPlanPublic(BaseModel):
    """A plan in the plan library."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    task: str
    steps: list[PlanStep]
    source_run_id: str | None
    uses: int
    created_at: datetime


AGENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$"


class AgentConfig(BaseModel):
    """What a saved agent fixes for its runs (each change is a new version)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    description: str = Field(default="", max_length=2000)
    # Put before every task of the agent's runs (the web agent's goal, the orchestrator's task).
    instructions: str = Field(default="", max_length=10_000)
    mode: Literal["direct", "team"] = "direct"
    # The base model, an adapter NAME (its promoted version at each run) or NAME@vN; None = the server's default.
    model: str | None = Field(default=None, max_length=200)
    allowed_domains: list[str] | None = Field(default=None, max_length=50)
    max_steps: int | None = Field(default=None, ge=1)
    tools: list[str] = Field(default_factory=list, max_length=50)  # MCP tool names
    documents: list[str] = Field(default_factory=list, max_length=50)  # document collection ids
    approval_policy: dict[ApprovalCategory, ApprovalRule] | None = None


class AgentCreate(AgentConfig):
    """Body of POST /api/v1/agents."""

    name: str = Field(min_length=1, max_length=100, pattern=AGENT_NAME)


class AgentUpdate(BaseModel):
    """Body of PATCH /api/v1/agents/{id}: the fields to change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=AGENT_NAME)
    description: str | None = Field(default=None, max_length=2000)
    instructions: str | None = Field(default=None, max_length=10_000)
    mode: Literal["direct", "team"] | None = None
    model: str | None = Field(default=None, max_length=200)
    allowed_domains: list[str] | None = Field(default=None, max_length=50)
    max_steps: int | None = Field(default=None, ge=1)
    tools: list[str] | None = Field(default=None, max_length=50)
    documents: list[str] | None = Field(default=None, max_length=50)
    approval_policy: dict[ApprovalCategory, ApprovalRule] | None = None


class AgentPublic(AgentConfig):
    """A saved agent as the API shows it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    version: int
    created_at: datetime
    updated_at: datetime


class AgentRunCreate(BaseModel):
    """Body of POST /api/v1/agents/{id}/runs: the task, and what a run may change of the agent's settings."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    task: str = Field(min_length=1, max_length=10_000)
    start_url: str | None = Field(default=None, max_length=4096)
    max_steps: int | None = Field(default=None, ge=1)
    allowed_domains: list[str] | None = Field(default=None, max_length=50)
    auto_approve: bool = False
    # A scripted policy, as on POST /api/v1/runs (tests and overhead measurements).
    policy: Literal["model", "replay"] = "model"
    actions: list[dict[str, Any] | str] | None = Field(default=None, max_length=500)


class AgentRunPublic(BaseModel):
    """One execution of an agent, in its run list."""

    id: str
    status: RunStatus
    task: str
    agent_version: int | None
    reason: str | None
    result: str | None
    steps: int
    duration_s: float | None
    created_at: datetime


class AgentStats(BaseModel):
    """An agent's record over all its runs."""

    runs: int
    finished: int
    succeeded: int
    success_rate: float | None  # succeeded / finished
    mean_steps: float | None
    mean_duration_s: float | None


class AgentRuns(BaseModel):
    """GET /api/v1/agents/{id}/runs: a page of runs and the agent's stats."""

    items: list[AgentRunPublic]
    total: int
    limit: int
    offset: int
    stats: AgentStats


class CollectionCreate(BaseModel):
    """Body of POST /api/v1/collections."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, pattern=AGENT_NAME)
    description: str = Field(default="", max_length=2000)


class DocumentPublic(BaseModel):
    """An uploaded document: ready (with its passage count) or failed (with the reason)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    collection_id: str
    filename: str
    size_bytes: int
    status: Literal["ready", "failed"]
    reason: str | None
    chunks: int
    created_at: datetime


class CollectionPublic(BaseModel):
    """A document collection and its documents."""

    id: str
    name: str
    description: str
    documents: list[DocumentPublic]
    created_at: datetime


class SearchHit(BaseModel):
    """One passage found by GET /api/v1/collections/{id}/search, with its source and position."""

    model_config = ConfigDict(from_attributes=True)

    chunk_id: int
    document_id: str
    filename: str
    position: int  # the passage's index in its document, from 0
    text: str
    score: float  # fused rank score: higher is better
