"""API and cross-service payloads (pydantic). Tables live in sparkpilot.db.models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sparkpilot.db.models import JobStatus, RunStatus
from sparkpilot.team_schemas import ApprovalCategory, ApprovalRule

EventType = Literal[
    "run.queued",
    "run.started",
    "step.started",
    "step.completed",
    "run.message",
    "run.status",  # a team run's other transitions: planning, awaiting_approval, running, awaiting_input, queued
    "run.control",  # a person took the browser ({"by": "human"}) or handed it back ({"by": "agent"})
    "plan.proposed",
    "plan.decided",
    "plan.revised",
    "team.step",
    "approval.requested",
    "approval.decided",
    "input.requested",
    "input.answered",
    "run.succeeded",
    "run.failed",
    "run.cancelled",
]
TERMINAL_EVENT_TYPES = frozenset({"run.succeeded", "run.failed", "run.cancelled"})


class MiniwobEnv(BaseModel):
    """Run the start page as a MiniWoB++ episode: the task's instruction becomes the goal, its reward the outcome."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["miniwob"] = "miniwob"
    task: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9-]+$")
    seed: int = Field(ge=0, le=2**31)


class RunCreate(BaseModel):
    """Body of POST /api/v1/runs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    task: str = Field(min_length=1, max_length=10_000)
    start_url: str | None = Field(default=None, max_length=4096)
    # None = SPARKPILOT_DEFAULT_MAX_STEPS; above SPARKPILOT_MAX_STEPS_LIMIT is refused.
    max_steps: int | None = Field(default=None, ge=1)
    policy: Literal["model", "replay"] = "model"
    actions: list[dict[str, Any] | str] | None = Field(default=None, max_length=500)
    allowed_domains: list[str] | None = Field(default=None, max_length=50)
    env: MiniwobEnv | None = None
    # The base model's name, an adapter NAME (its promoted version) or NAME@vN; None = the default adapter or base.
    model: str | None = Field(default=None, max_length=200)
    # Sampling temperature of the model's answers: 0 = greedy (the default and what evaluations use);
    # above 0 the agent explores, as collection runs for the learning loop do.
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    # "eval": a measurement (greedy, a MiniWoB env): never training data, reusable by a job's evaluation.
    purpose: Literal["task", "eval"] = "task"
    # "team": an orchestrator plans (shown for approval), then delegates steps to web, coder, file and user agents.
    mode: Literal["direct", "team"] = "direct"
    # A team run's plan is approved as written, without waiting for a person.
    auto_approve: bool = False
    # Per-run rules over config/approvals.json, e.g. {"run_code": "allow"}.
    approval_policy: dict[ApprovalCategory, ApprovalRule] | None = None

    @field_validator("start_url", "model")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _replay_needs_actions(self) -> "RunCreate":
        if self.policy == "replay" and not self.actions:
            raise ValueError("policy 'replay' needs a non-empty actions list")
        if self.policy == "model" and self.actions:
            raise ValueError("actions are only for policy 'replay'")
        if self.policy == "replay" and self.temperature:
            raise ValueError("temperature is only for policy 'model'")
        if self.purpose == "eval" and (self.policy != "model" or self.temperature or self.env is None):
            raise ValueError("an eval run is a greedy model run on an env (policy 'model', temperature 0, env)")
        if self.env is not None and not self.start_url:
            raise ValueError("a miniwob env needs the task page as start_url")
        if self.mode == "team" and (self.policy != "model" or self.env is not None):
            raise ValueError("a team run is planned by the model: policy 'model' and no env")
        if self.auto_approve and self.mode != "team":
            raise ValueError("auto_approve is for team runs (mode 'team')")
        return self


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
    policy: dict[str, Any]
    allowed_domains: list[str]
    env: dict[str, Any]
    model: str | None
    reward: float | None
    mode: str
    auto_approve: bool
    agent_id: str | None
    agent_version: int | None
    wait: dict[str, Any] | None
    wait_deadline_at: datetime | None
    cancel_requested: bool
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunFilePublic(BaseModel):
    """A file in a run's files folder."""

    name: str
    size: int
    modified_at: datetime


class StepPublic(BaseModel):
    """A recorded step as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    index: int
    action: dict[str, Any]
    observation: dict[str, Any]
    timings_ms: dict[str, Any]
    error: str | None  # the guard's, the browser's or the approval's feedback, as the model read it
    has_screenshot: bool
    created_at: datetime
    actor: Literal["agent", "human"] = "agent"  # human: a person's act while they had control
    raw_output: str | None = None  # the model's answer as it wrote it (its thought included); None for a person
    model: str | None = None


JobEventType = Literal["job.queued", "job.started", "job.phase", "job.progress", "job.phase_done", "job.succeeded",
                       "job.failed", "job.cancelled"]
JOB_TERMINAL_EVENT_TYPES = frozenset({"job.succeeded", "job.failed", "job.cancelled"})


class JobEventPublic(BaseModel):
    """A training job's event, streamed like a run's (same SSE/WebSocket framing, resumable by id)."""

    id: int
    job_id: str
    type: JobEventType
    ts: datetime
    payload: dict[str, Any] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """True for the job's last event."""
        return self.type in JOB_TERMINAL_EVENT_TYPES


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


class Paginated(BaseModel, Generic[T]):
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


class AdapterCreate(BaseModel):
    """Body of POST /api/v1/models/adapters."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # The PEFT folder, relative to the adapters folder (SPARKPILOT_ADAPTERS_DIR) or absolute; once resolved
    # (symlinks followed) it must lie inside that folder.
    path: str = Field(min_length=1, max_length=4096)
    source: str = Field(default="api", max_length=200)
    # Point the name's alias (what plain NAME and runs use) at the new version; False registers it unpromoted.
    promote: bool = True


class ModelPublic(BaseModel):
    """The base model or one adapter version, as GET /api/v1/models lists them."""

    name: str
    kind: Literal["base", "adapter"]
    version: int | None = None
    base: str | None = None
    status: str
    current: bool = False
    rank: int | None = None
    source: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    error: str | None = None
    path: str | None = None  # a registered, not served base: its folder (serve it with SPARKPILOT_MODEL_DIR)
    # The model's profile (config/models.json; adapters share their base's): what it reads and how it answers.
    input: Literal["text", "text+image"] | None = None
    actions: Literal["bids", "coordinates"] | None = None
    answer: Literal["json", "fara"] | None = None


class CachePublic(BaseModel):
    """GET /api/v1/models/cache."""

    max_loras: int
    loaded: list[str]
    hits: int
    misses: int
    evictions: int


class InferenceRequest(BaseModel):
    """Body of POST /api/v1/inference (direct mode)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, min_length=1, max_length=100_000)
    messages: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    adapter: str | None = Field(default=None, max_length=120)
    max_tokens: int = Field(default=256, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)

    @field_validator("messages")
    @classmethod
    def _plain_messages(cls, messages: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        # Text and inline (data:) images only: a URL in a message would have the model server fetch it.
        for n, msg in enumerate(messages or []):
            if set(msg) - {"role", "content"} or msg.get("role") not in ("system", "user", "assistant"):
                raise ValueError(f"messages[{n}]: a message is {{role: system|user|assistant, content}}")
            content = msg.get("content")
            if isinstance(content, str):
                continue
            if not isinstance(content, list):
                raise ValueError(f"messages[{n}].content: text, or a list of text and image_url parts")
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str) and set(part) == {"type", "text"}:
                    continue
                image = part.get("image_url") if kind == "image_url" else None
                url = image.get("url", "") if isinstance(image, dict) else ""
                if isinstance(url, str) and url.startswith("data:image/") and set(part) == {"type", "image_url"}:
                    continue
                raise ValueError(f"messages[{n}].content: only text parts and data:image/ image_url parts are accepted")
        return messages

    @model_validator(mode="after")
    def _one_input(self) -> "InferenceRequest":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        if self.model and self.adapter:
            raise ValueError("give model or adapter, not both")
        return self


class InferenceResult(BaseModel):
    """Answer of POST /api/v1/inference."""

    text: str
    model: str
    adapter: str | None
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None


# ---------------------------------------------------------------- training jobs

_TASK_NAME = r"^[a-z0-9-]+$"


class RunsFilter(BaseModel):
    """Which recorded runs become training data (sparkpilot.trajectory.TrajectoryFilter)."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] | None = Field(default=None, max_length=200)  # MiniWoB task names (None: any)
    policy: Literal["model", "replay", "all"] = "model"
    min_reward: float = Field(default=1e-9, ge=-1, le=1)  # rewarded episodes only, by default
    model: str | None = Field(default=None, max_length=200)
    since: datetime | None = None
    until: datetime | None = None
    # Whose runs the job learns from, by user name; None: only the runs of the user who starts the job.
    # One user's data trains into an adapter others use only when an admin names that user here.
    users: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(default=None, min_length=1,
                                                                                     max_length=100)

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, value: list[str] | None) -> list[str] | None:
        import re

        for task in value or []:
            if not re.match(_TASK_NAME, task):
                raise ValueError(f"bad task name {task!r}")
        return value


class DatasetSpec(BaseModel):
    """Where a job's examples come from: recorded runs (a filter) or an uploaded dataset."""

    model_config = ConfigDict(extra="forbid")

    runs: RunsFilter | None = None
    dataset_id: str | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetSpec":
        if self.runs is not None and self.dataset_id is not None:
            raise ValueError("give either runs (a filter) or dataset_id, not both")
        if self.runs is None and self.dataset_id is None:
            self.runs = RunsFilter()
        return self


class Hyperparameters(BaseModel):
    """The LoRA recipe (defaults measured on 2 CPU cores with the 135M model)."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=8, ge=1, le=256)
    alpha: int = Field(default=16, ge=1, le=512)
    learning_rate: float = Field(default=2e-4, gt=0, le=1)
    steps: int = Field(default=60, ge=1, le=100_000)
    batch_size: int = Field(default=4, ge=1, le=256)
    max_length: int = Field(default=1024, ge=32, le=32_768)
    save_every: int = Field(default=10, ge=1)  # steps between checkpoints inside `train`
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    # Rarer actions and element positions are repeated up to this many times in the train split (1: no balancing).
    balance_repeat: int = Field(default=3, ge=1, le=20)
    seed: int = 0
    # sdft only: the teacher's EMA rate toward the student, and the length of the student's sampled answers.
    ema_alpha: float = Field(default=0.05, gt=0, le=1)
    rollout_tokens: int = Field(default=48, ge=1, le=1024)


class EvalSpec(BaseModel):
    """The held-out MiniWoB episodes the candidate and the current version are compared on."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(min_length=1, max_length=50)
    seeds: list[int] = Field(min_length=1, max_length=200)
    max_steps: int = Field(default=6, ge=1, le=50)
    # The gate's margin for this job (None: SPARKPILOT_GATE_MARGIN): promote only if candidate ≥ current + margin.
    gate_margin: float | None = Field(default=None, ge=-1, le=1)
    # Reuse evaluation episodes finished since then (same model, task, seed and max_steps, greedy) instead
    # of replaying them: `sparkpilot learn` sets it so a round does not re-score the version the last one measured.
    reuse_since: datetime | None = None

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, value: list[str]) -> list[str]:
        return RunsFilter._task_names(value) or []


class TrainingJobCreate(BaseModel):
    """Body of POST /api/v1/training/jobs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    method: Literal["sft", "sdft"] = "sft"
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    base: str | None = Field(default=None, max_length=200)  # an adapter (NAME or NAME@vN) to continue from
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    eval: EvalSpec
    promote: Literal["auto", "manual"] = "auto"



class TrainingJobPublic(BaseModel):
    """A training job as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    method: str
    status: JobStatus
    phase: str | None
    done_phases: list[str]
    dataset: dict[str, Any]
    base: str | None
    hyperparameters: dict[str, Any]
    eval: dict[str, Any]
    promote: str
    progress: dict[str, Any]
    adapter: str | None
    reason: str | None
    cancel_requested: bool
    attempts: int
    worker: str | None  # host:pid of the trainer process executing it
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingMetrics(BaseModel):
    """GET /api/v1/training/jobs/{id}/metrics: the loss curve, the data and the eval table."""

    job_id: str
    loss: list[list[float]] = []  # [step, loss]
    val_loss: float | None = None
    train: dict[str, Any] = {}  # method, steps, seconds; sdft: kl_step0 and kl_step0_weak (the KL before any update)
    prepare: dict[str, Any] = {}
    eval: dict[str, Any] = {}
    gate: dict[str, Any] = {}
    minutes: dict[str, float] = {}


class DatasetPublic(BaseModel):
    """An uploaded dataset."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    records: int
    created_at: datetime


class TrainJobPayload(BaseModel):
    """The Celery payload of sparkpilot.trainer.run_job."""

    job_id: str = Field(min_length=1, max_length=32)


# ---------------------------------------------------------------- dashboard: saved benchmarks and system status


class BenchTaskRow(BaseModel):
    """One task's figures in a saved benchmark result."""

    task: str
    episodes: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]  # Wilson 95% interval of the success rate
    mean_steps: float | None = None


class BenchHistogram(BaseModel):
    """Counts in bins: counts[i] falls in [edges[i], edges[i+1])."""

    edges: list[float]
    counts: list[int]


class BenchRound(BaseModel):
    """One round of a saved `sparkpilot learn` result (round 0: the baseline)."""

    round: int
    model: str | None
    promoted: bool | None = None
    gate: str | None = None
    episodes: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]


class BenchmarkResult(BaseModel):
    """A saved result file in the benchmark folder; `error` instead of figures when it cannot be read."""

    name: str  # the file name, e.g. miniwob-20250101T120000Z.json
    suite: str | None = None  # miniwob | learning
    created_at: datetime | None = None  # when the result was made (the file's time when it does not say)
    model: str | None = None  # the model or adapter version (name@vN) it measured; learning: the last one served
    policy: str | None = None  # miniwob: model | replay (replay measures the harness only, not a score)
    episodes: int | None = None
    successes: int | None = None
    success_rate: float | None = None
    success_ci95: tuple[float, float] | None = None
    tasks: list[BenchTaskRow] = []
    harness_p50_ms: float | None = None
    harness_p95_ms: float | None = None
    harness_histogram_ms: BenchHistogram | None = None  # absent in results saved before it was recorded
    rounds: list[BenchRound] = []  # learning results only
    error: str | None = None


class BenchmarkList(BaseModel):
    """GET /api/v1/benchmarks: the saved results, newest first."""

    directory: str
    results: list[BenchmarkResult]


class ServiceHealth(BaseModel):
    """One service as GET /api/v1/system sees it."""

    name: str
    status: Literal["ok", "down", "not configured", "unknown"]
    detail: str  # the health check's own words ('ok', 'down: no worker heartbeat', …)
    instances: int | None = None  # live processes with a heartbeat (workers, trainers)


class QueueDepths(BaseModel):
    """Work waiting and in progress."""

    runs_waiting: int | None  # messages on the run queue (None: Redis is down)
    training_waiting: int | None  # messages on the training queue
    runs_queued: int | None  # runs in status queued (database)
    runs_active: int | None  # runs a worker holds (planning, running, awaiting approval or input)
    training_queued: int | None
    training_running: int | None


class ModelServerStats(BaseModel):
    """Throughput of the model server, read from its /metrics (vLLM)."""

    reachable: bool
    detail: str | None = None
    generation_tokens_total: float | None = None
    prompt_tokens_total: float | None = None
    generation_tokens_per_s: float | None = None  # rate since the gateway's previous reading (None on the first)
    window_s: float | None = None  # the span that rate covers
    decode_tokens_per_s: float | None = None  # per request while decoding: 1 / mean time per output token
    requests_running: float | None = None
    requests_waiting: float | None = None
    kv_cache_usage: float | None = None  # 0..1


class MemoryStats(BaseModel):
    """Host memory (/proc/meminfo) and the gateway process's resident set."""

    host_total_bytes: int | None
    host_available_bytes: int | None
    gateway_rss_bytes: int | None


class RecentError(BaseModel):
    """A failed run or training job."""

    kind: Literal["run", "training"]
    id: str
    title: str  # the run's task or the job's adapter name
    reason: str | None
    at: datetime | None


class SystemStatus(BaseModel):
    """GET /api/v1/system: everything the dashboard's System page shows."""

    status: Literal["ok", "degraded"]
    services: list[ServiceHealth]
    queues: QueueDepths
    model_server: ModelServerStats
    memory: MemoryStats
    recent_errors: list[RecentError]
    checked_at: datetime
