"""SQLAlchemy tables. These never double as API schemas (see sparkpilot.schemas)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, DateTime, Enum, Float, ForeignKey, Integer, LargeBinary, String, Text, TypeDecorator,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A random run id."""
    return uuid.uuid4().hex


class RunStatus(str, enum.Enum):
    """Where a run is in its lifecycle."""

    queued = "queued"
    planning = "planning"  # a team run's orchestrator is writing its plan
    awaiting_approval = "awaiting_approval"  # a person must approve the plan (no worker holds it) or an action
    running = "running"
    awaiting_input = "awaiting_input"  # a team run asked the person a question
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the run can no longer change."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled})
LIVE_STATUSES = frozenset(set(RunStatus) - TERMINAL_STATUSES)
# Statuses in which a worker holds the run (its lock, browser and heartbeat), except a plan wait (heartbeat_at NULL).
HELD_STATUSES = frozenset({RunStatus.planning, RunStatus.running, RunStatus.awaiting_approval, RunStatus.awaiting_input})


class UTCDateTime(TypeDecorator):
    """DateTime that always comes back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001, ANN201 - SQLAlchemy hook
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):  # noqa: ANN001, ANN201 - SQLAlchemy hook
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    """Declarative base for all tables."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class User(Base):
    """Someone who owns runs."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)  # a revoked token authenticates nobody

    user: Mapped[User] = relationship(back_populates="tokens")


class Run(Base):
    """One task submitted by a user, executed by a worker."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    task: Mapped[str] = mapped_column(Text)
    start_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    max_steps: Mapped[int] = mapped_column(Integer, default=30)
    status: Mapped[RunStatus] = mapped_column(
        Enum(RunStatus, native_enum=False, length=20), default=RunStatus.queued, index=True
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    allowed_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The model that decides: the base model's name or an adapter version `name@vN`, fixed at creation.
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The environment's verdict (MiniWoB raw reward in [-1, 1]); None for runs without an environment.
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    mode: Mapped[str] = mapped_column(String(10), default="direct")  # direct | team
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)
    # A team run's plan: {steps, status: proposed|approved, revision, rejections, feedback, ledger}.
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # What the run waits for, while it waits: {kind: plan|action|input, ...}; its deadline is wait_deadline_at.
    wait: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    wait_deadline_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    # The saved agent (and which version of it) the run was started from; plain columns, so deleting the
    # agent leaves its runs readable.
    agent_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    agent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)

    steps: Mapped[list["Step"]] = relationship(
        back_populates="run", order_by="Step.index", cascade="all, delete-orphan"
    )


class Step(Base):
    """One observe/act step of a run."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("run_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    action: Mapped[dict[str, Any]] = mapped_column(default=dict)
    observation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timings_ms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    screenshot_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[dict[str, Any]] = mapped_column(default=dict)
    raw_output: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The model or adapter version that answered at this step (as the server named it).
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[Run] = relationship(back_populates="steps")


class Event(Base):
    """A run event, stored before it is published so reconnecting clients lose nothing."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdapterStatus(str, enum.Enum):
    """Where a registered LoRA adapter stands on the model server."""

    registered = "registered"
    loaded = "loaded"
    failed = "failed"


class Adapter(Base):
    """One version of a LoRA adapter; served to vLLM as `name@vN`."""

    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    base_model: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[AdapterStatus] = mapped_column(
        Enum(AdapterStatus, native_enum=False, length=20), default=AdapterStatus.registered
    )
    source: Mapped[str] = mapped_column(String(200), default="api")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)

    @property
    def served_name(self) -> str:
        """The LoRA name vLLM knows it by."""
        return f"{self.name}@v{self.version}"


class AdapterAlias(Base):
    """Which version of an adapter name takes traffic; rollback moves it back."""

    __tablename__ = "adapter_aliases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobStatus(str, enum.Enum):
    """Where a training job is: queued → running → succeeded | failed | cancelled."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change."""
        return self in JOB_TERMINAL


JOB_TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
PHASES = ("prepare", "train", "evaluate", "publish")


class TrainingJob(Base):
    """A training job: prepare → train → evaluate → publish, with the phases done so far as its checkpoint."""

    __tablename__ = "training_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # the adapter name the result is registered under
    method: Mapped[str] = mapped_column(String(20), default="sft")
    status: Mapped[JobStatus] = mapped_column(Enum(JobStatus, native_enum=False, length=20), default=JobStatus.queued,
                                              index=True)
    phase: Mapped[str | None] = mapped_column(String(20), nullable=True)
    done_phases: Mapped[list[str]] = mapped_column(JSON, default=list)
    dataset: Mapped[dict[str, Any]] = mapped_column(default=dict)
    base: Mapped[str | None] = mapped_column(String(200), nullable=True)  # adapter to start from; None: the base
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    eval: Mapped[dict[str, Any]] = mapped_column(default=dict)
    promote: Mapped[str] = mapped_column(String(10), default="auto")
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    adapter: Mapped[str | None] = mapped_column(String(200), nullable=True)  # name@vN it produced
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)


class BaseModelRow(Base):
    """A model folder vLLM can serve as its base (e.g. an adapter merged into its base): registered, not served."""

    __tablename__ = "base_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobEvent(Base):
    """A training job's event (queued, phase, progress, finished), stored before it is published like a run's."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingDataset(Base):
    """An uploaded JSONL of trajectory records (validated), usable as a job's data."""

    __tablename__ = "training_datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(Text)
    records: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApprovalStatus(str, enum.Enum):
    """A person's answer to an action that needs approval."""

    pending = "pending"
    approved = "approved"
    denied = "denied"
    timed_out = "timed_out"  # unanswered past its deadline: a deny


class Approval(Base):
    """One risky action a run paused on, and what the person (or the clock) decided."""

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(40))  # the policy rule: submit_sensitive, run_code, ...
    action: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str] = mapped_column(Text)
    screenshot_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[ApprovalStatus] = mapped_column(Enum(ApprovalStatus, native_enum=False, length=20),
                                                   default=ApprovalStatus.pending)
    decided_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SavedPlan(Base):
    """An approved plan that led to a successful team run, offered again for similar tasks."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    task: Mapped[str] = mapped_column(Text)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    source_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    """A saved agent configuration of a user ("the invoice agent"); every change is a new version."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer, default=1)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the current version's AgentConfig
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentVersion(Base):
    """One version of an agent, kept after the agent is deleted (its runs name it)."""

    __tablename__ = "agent_versions"
    __table_args__ = (UniqueConstraint("agent_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Collection(Base):
    """A user's named set of documents that agents retrieve from."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Document(Base):
    """One uploaded file of a collection: ready (chunked and embedded) or failed with the reason."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # ready | failed
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Chunk(Base):
    """A passage of a document with its position and embedding (float32 bytes)."""

    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[str] = mapped_column(String(32), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class AuditEntry(Base):
    """Who did what, when: append-only (the database refuses updates and deletes, see migration 0011)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(100))  # the user's name ("cli" for the command line without one)
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. run.created, token.revoked
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
