"""API and cross-service payloads (pydantic). Tables live in sparkpilot.db.models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sparkpilot.db.models import RunStatus

EventType = Literal[
    "run.queued",
    "run.started",
    "step.started",
    "step.completed",
    "run.message",
    "run.succeeded",
    "run.failed",
    "run.cancelled",
]
TERMINAL_EVENT_TYPES = frozenset({"run.succeeded", "run.failed", "run.cancelled"})


class RunCreate(BaseModel):
    """Body of POST /api/v1/runs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    task: str = Field(min_length=1, max_length=10_000)
    start_url: str | None = Field(default=None, max_length=4096)
    max_steps: int = Field(default=30, ge=1, le=200)

    @field_validator("start_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class RunPublic(BaseModel):
    """A run as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: RunStatus
    task: str
    start_url: str | None
    max_steps: int
    reason: str | None
    result: str | None
    cancel_requested: bool
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class StepPublic(BaseModel):
    """A recorded step as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    index: int
    action: dict[str, Any]
    observation: dict[str, Any]
    timings_ms: dict[str, Any]
    error: str | None
    has_screenshot: bool
    created_at: datetime


class EventPublic(BaseModel):
    """A run event as streamed over SSE/WebSocket and published on Redis."""

    id: int
    run_id: str
    type: EventType
    ts: datetime
    payload: dict[str, Any] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """True for the run's last event."""
        return self.type in TERMINAL_EVENT_TYPES


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list endpoint."""

    items: list[T]
    total: int
    limit: int
    offset: int


class HealthPublic(BaseModel):
    """Body of GET /health."""

    status: Literal["ok", "degraded"]
    checks: dict[str, str]


class ExecuteRunPayload(BaseModel):
    """What the gateway puts on the Celery queue for a run."""

    run_id: str
