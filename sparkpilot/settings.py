"""Typed settings for every Sparkpilot process; the only module that reads the environment."""

from __future__ import annotations

import ipaddress
import os
import socket
from functools import lru_cache
from urllib.parse import urlsplit
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_ADMIN_TOKEN = "change-me"
MIN_ADMIN_TOKEN_CHARS = 20
TEMPLATE_PASSWORDS = ("sparkpilot", "change-me")  # .env.template's database and Grafana passwords
# Names the gateway always answers to: loopback, and its compose service name (Prometheus, the worker's browser).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "gateway")
# Tests point this at an empty file so a developer's .env cannot leak into them.
ENV_FILE = os.environ.get("SPARKPILOT_ENV_FILE") or ROOT / ".env"


class CommonSettings(BaseSettings):
    """What every service shares: where the database, Redis and artifacts are."""

    model_config = SettingsConfigDict(
        env_prefix="SPARKPILOT_", env_file=ENV_FILE, extra="ignore", populate_by_name=True
    )

    # Which deployment this is: outside "dev" the template's admin token is refused.
    deployment: Literal["dev", "test", "prod"] = "dev"
    # The old name of `deployment`: refused with a pointer, so an old .env's "prod" never silently becomes "dev".
    renamed_env: str | None = Field(default=None, validation_alias="SPARKPILOT_ENV", exclude=True)
    database_url: str = Field(
        default=f"sqlite:///{ROOT / 'workspace' / 'sparkpilot.db'}",
        validation_alias="DATABASE_URL",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    workspace_dir: Path = ROOT / "workspace"
    adapters_dir: Path = ROOT / "workspace" / "adapters"
    trajectories_dir: Path = ROOT / "workspace" / "trajectories"
    queue_name: str = "runs"
    key_prefix: str = "sparkpilot"
    inference_url: str = "http://127.0.0.1:8001/v1"
    inference_model: str = "smollm2-135m-instruct"
    inference_timeout_s: float = 120.0
    inference_retries: int = 3
    # A model server that refuses connections is restarting: a step waits this long for it before the run fails.
    inference_restart_wait_s: float = 120.0
    # Times a run is tried (its first attempt included) before a lost worker fails it for good.
    max_attempts: int = 3
    # Largest run file: an upload (gateway) or a download the browser keeps (worker).
    run_file_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    # What the served model reads and answers (text/bids/JSON, or screenshot/coordinates/Fara), by model name.
    model_profiles: Path = ROOT / "config" / "models.json"
    max_loras: int = 2
    max_lora_rank: int = 8
    agent_adapter: str = "agent"
    # Celery queue of training jobs (the trainer consumes it).
    training_queue: str = "training"
    # MiniWoB++ pages as the worker reaches them (the gateway serves them at /benchmarks).
    miniwob_url: str = "http://127.0.0.1:8000/benchmarks"
    # Non-public hosts the browser may reach anyway: host names (any port), host:port, or CIDR networks,
    # comma-separated (SPARKPILOT_MINIWOB_URL's host:port, the gateway, is always allowed). Everything else private,
    # loopback, link-local or metadata is refused by the egress proxy (after its one DNS lookup) and the worker's route.
    browser_allow_private: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # MCP servers whose tools agents may call (the gateway checks agents' tool names; the worker calls them).
    mcp_servers: Path = ROOT / "config" / "mcp_servers.json"
    # An API token the command line acts with (`sparkpilot mcp serve`, `bench --through-stack`, `learn`).
    token: str = ""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # JSON lines (ts, level, logger, process, message, run_id/job_id) or the classic text line.
    log_format: Literal["json", "text"] = "json"
    # Also log to this file, rotated at log_file_max_bytes with log_file_backups old files (unset: stderr only).
    log_file: Path | None = None
    log_file_max_bytes: int = Field(default=10_000_000, ge=1000)
    log_file_backups: int = Field(default=5, ge=0)

    def configure_logging(self) -> None:
        """Set up this process's logging from these settings."""
        from sparkpilot.logs import configure_logging

        configure_logging(self.log_level, self.log_format, self.log_file, self.log_file_max_bytes, self.log_file_backups)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_renamed_env(self) -> "CommonSettings":
        if self.renamed_env is not None:
            raise ValueError("SPARKPILOT_ENV is now SPARKPILOT_DEPLOYMENT (dev, test or prod); rename it in .env")
        return self

    @property
    def artifacts_dir(self) -> Path:
        """Folder for screenshots and other per-run files."""
        return self.workspace_dir / "artifacts"

    def key(self, *parts: object) -> str:
        """A namespaced Redis key, e.g. key('run', id, 'events')."""
        return ":".join([self.key_prefix, *map(str, parts)])

    @field_validator("browser_allow_private", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        for entry in value or []:
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError as exc:
                    raise ValueError(f"{entry!r} is not a network in CIDR notation (e.g. 10.0.0.0/8)") from exc
        return value


class GatewaySettings(CommonSettings):
    """The gateway: API, auth, limits, the lost-run reaper."""

    admin_token: str = TEMPLATE_ADMIN_TOKEN
    # A bearer token that opens GET /metrics and nothing else (Prometheus scrapes with it); empty: none.
    metrics_token: str = ""
    # Host headers the gateway answers (comma-separated; "*.example.com" for subdomains, "*" for any), besides
    # LOCAL_HOSTS and this machine's name, which are always added; any other is a 400 `untrusted_host`.
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, validate_default=True)
    # Largest document a person may upload to a collection (POST /api/v1/collections/{id}/documents).
    document_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_000_000
    default_max_steps: int = 30
    max_steps_limit: int = 200
    # Runs one user may have unfinished (queued, planning, waiting or running) at once; more is a 429 `run_quota`.
    max_active_runs_per_user: int = Field(default=100, ge=1)
    reaper_interval_s: float = 5.0
    run_stale_after_s: float = 20.0
    # Rejections of a team run's plan (each re-plans with the feedback) before the run fails.
    plan_max_rejections: int = Field(default=3, ge=0)
    sse_ping_s: float = 15.0
    # Requests per token and per client IP on /api and /mcp (e.g. "600/minute", "10/second"; empty: no limit).
    rate_limit_per_token: str = "600/minute"
    rate_limit_per_ip: str = "1200/minute"
    # Saved benchmark results (miniwob-*.json, learning-*.json from scripts/benchmark.sh) the dashboard lists.
    benchmark_dir: Path = ROOT / "benchmark-results"

    @field_validator("rate_limit_per_token", "rate_limit_per_ip")
    @classmethod
    def _rate(cls, value: str) -> str:
        if value.strip():
            from limits import parse

            try:
                parse(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a rate such as '600/minute'") from exc
        return value.strip()

    @field_validator("trusted_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("trusted_hosts")
    @classmethod
    def _trusted_hosts(cls, value: list[str]) -> list[str]:
        hosts = []
        for entry in value:
            host = entry.lower()
            if host != "*" and "*" in host.removeprefix("*."):
                raise ValueError(f"SPARKPILOT_TRUSTED_HOSTS: {entry!r} is not a host; a wildcard is '*' or '*.example.com'")
            if ":" in host and not host.startswith("["):
                try:
                    host = f"[{ipaddress.IPv6Address(host)}]"  # as a Host header writes an IPv6 address
                except ValueError:
                    raise ValueError(f"SPARKPILOT_TRUSTED_HOSTS: {entry!r} names a port; list host names only") from None
            hosts.append(host)
        return list(dict.fromkeys([*LOCAL_HOSTS, socket.gethostname().lower(), *hosts]))

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> "GatewaySettings":
        if self.deployment != "dev" and self.admin_token in ("", TEMPLATE_ADMIN_TOKEN):
            raise ValueError(
                "SPARKPILOT_ADMIN_TOKEN is still the template value; set a secret outside dev"
            )
        password = urlsplit(self.database_url).password
        if self.deployment != "dev" and password in TEMPLATE_PASSWORDS:
            raise ValueError("the database password is still the template's (POSTGRES_PASSWORD / DATABASE_URL); "
                             "set a secret outside dev (`make up` writes a random one into a new .env)")
        if self.deployment != "dev" and len(self.admin_token) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(f"SPARKPILOT_ADMIN_TOKEN has {len(self.admin_token)} characters; outside dev it needs at "
                             f"least {MIN_ADMIN_TOKEN_CHARS} (`make up` writes a random one of 41)")
        if self.metrics_token and self.metrics_token == self.admin_token:
            raise ValueError("SPARKPILOT_METRICS_TOKEN equals SPARKPILOT_ADMIN_TOKEN; it must be a secret of its own")
        if self.deployment != "dev" and self.metrics_token and len(self.metrics_token) < MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(f"SPARKPILOT_METRICS_TOKEN has {len(self.metrics_token)} characters; outside dev it needs "
                             f"at least {MIN_ADMIN_TOKEN_CHARS} (`make up` writes a random one into a new .env)")
        return self


class WorkerSettings(CommonSettings):
    """The worker: browser launch and run leases."""

    chromium_path: str = "/usr/bin/chromium"
    # The account Chromium runs as when the worker is root (natively): Chromium's own sandbox refuses root.
    # `make up` creates it; a worker that is not root runs Chromium as itself, sandboxed too.
    browser_user: str = "sparkpilot-browser"
    # Every request of the browser goes through the egress proxy (services/egress, Squid); no proxy, no browsing.
    browser_proxy: str = "http://127.0.0.1:8003"
    headless: bool = True
    viewport_width: int = 1280
    viewport_height: int = 800
    navigation_timeout_s: float = 30.0
    lease_ttl_s: float = 10.0
    heartbeat_s: float = 2.0
    # Runs one worker process executes at once; 0 = one per two CPU cores, at least one (see run_slots).
    concurrency: int = Field(default=0, ge=0)
    agent_max_failures: int = 3
    agent_screenshot: bool = True
    agent_max_tokens: int = 64
    agent_thought: Literal["none", "after"] = "none"
    # Which actions need a person's approval (allow | ask | deny per category).
    approval_policy: Path = ROOT / "config" / "approvals.json"
    # Passages of an agent's documents put in its prompt (the best matches for the task), at most this many characters.
    document_prompt_chars: int = Field(default=1500, ge=0)
    # An action waiting for approval longer than this is denied.
    approval_timeout_s: float = Field(default=300.0, gt=0)
    # A team plan waiting for approval longer than this fails the run ("plan approval timed out").
    plan_timeout_s: float = Field(default=3600.0, gt=0)
    # A question to the person (UserProxy) unanswered this long: the run goes on with "no answer", or fails.
    input_timeout_s: float = Field(default=600.0, gt=0)
    input_timeout_action: Literal["continue", "fail"] = "continue"
    # A person who took control of a run's browser and does nothing for this long hands it back to the agent.
    human_control_timeout_s: float = Field(default=600.0, gt=0)
    # How often a waiting worker looks for the person's answer.
    wait_poll_s: float = Field(default=0.5, gt=0)
    # POSTed JSON when a run starts waiting for a person (plan, action approval, question); empty = none.
    webhook_url: str = ""
    # The orchestrator: extra tries of a step the validator refused, and re-plans after a step kept failing.
    team_step_retries: int = Field(default=1, ge=0, le=5)
    team_max_replans: int = Field(default=1, ge=0, le=5)
    # The Coder's sandbox, per program.
    sandbox_cpu_s: int = Field(default=10, ge=1)
    sandbox_memory_mb: int = Field(default=512, ge=64)
    sandbox_wall_s: float = Field(default=30.0, gt=0)



def run_slots(settings: WorkerSettings) -> int:
    """The worker's concurrency: SPARKPILOT_CONCURRENCY, or with 0 one run per two CPU cores (at least one).

    Each run drives its own Chromium, which takes about a core while the page works; more runs than
    that only queue behind each other for CPU (on 2 cores, 2 slots were slower and had 10x the event latency tail).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    return settings.concurrency or max(1, cores // 2)


class EgressSettings(CommonSettings):
    """The browser's egress proxy (`python -m services.egress`, Squid): where it listens."""

    egress_host: str = "127.0.0.1"
    egress_port: int = 8003
    squid_path: str = "/usr/sbin/squid"


class InferenceSettings(CommonSettings):
    """The vLLM server (`services/inference/serve.py`), natively (`make up`) and in compose's `vllm` service."""

    inference_host: str = "127.0.0.1"
    inference_port: int = 8001
    # A missing venv means "this Python has vLLM" (the compose image).
    inference_venv: Path = ROOT / ".venv-inference"
    # Weights folder; empty = download SPARKPILOT_INFERENCE_MODEL from the Hugging Face hub (compose).
    model_dir: str = str(ROOT / "workspace" / "models" / "smollm2-135m-instruct")
    # Runtime LoRA (hot-swapping adapters) costs about half the decode speed on CPU; false serves
    # model_dir alone, e.g. a promoted adapter merged into the base (`sparkpilot models merge`).
    inference_lora: bool = True
    dtype: str = "float32"
    max_model_len: int = 2048
    # Fraction of GPU memory vLLM may claim (CUDA only); None = vLLM's default.
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    kvcache_gb: int = 2
    cpu_threads: int = 2
    vllm_extra_args: str = ""

    @field_validator("gpu_memory_utilization", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object) -> object:
        return None if value == "" else value


class TrainerSettings(CommonSettings):
    """The trainer: where jobs work, which Python trains, and the eval gate."""

    # Virtual environment with torch + transformers + peft; a missing one means "this Python has them" (compose).
    trainer_venv: Path = ROOT / ".venv-trainer"
    # A candidate is promoted only if its success rate is at least the current version's plus this.
    gate_margin: float = Field(default=0.0, ge=-1, le=1)
    # Seconds an evaluation waits for its episodes before the job fails.
    eval_timeout_s: float = 1800.0

    @property
    def training_dir(self) -> Path:
        """Per-job folders: datasets, checkpoints, logs."""
        return self.workspace_dir / "training"


@lru_cache
def get_settings() -> CommonSettings:
    """Shared settings, read once."""
    return CommonSettings()


@lru_cache
def get_gateway_settings() -> GatewaySettings:
    """Gateway settings, read once."""
    return GatewaySettings()


@lru_cache
def get_worker_settings() -> WorkerSettings:
    """Worker settings, read once."""
    return WorkerSettings()


@lru_cache
def get_trainer_settings() -> TrainerSettings:
    """Trainer settings, read once."""
    return TrainerSettings()


@lru_cache
def get_egress_settings() -> EgressSettings:
    """Egress proxy settings, read once."""
    return EgressSettings()


@lru_cache
def get_inference_settings() -> InferenceSettings:
    """Inference server settings, read once."""
    return InferenceSettings()


def clear_settings_cache() -> None:
    """Forget cached settings (tests change the environment)."""
    for fn in (get_settings, get_gateway_settings, get_worker_settings, get_inference_settings, get_trainer_settings,
               get_egress_settings):
        fn.cache_clear()
