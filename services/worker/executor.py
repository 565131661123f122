"""Executing one run: lock, claim, heartbeat, the agent loop, and a terminal state with a reason."""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from typing import Any

import redis
from redis.exceptions import LockError

from agent.loop import run_agent
from agent.policies import ModelPolicy, Policy, ReplayPolicy
from agent.miniwob import MiniwobEpisode, base_of, episode_outcome, episode_reward
from services.worker.recorder import commit_events, emit
from services.worker.run_setup import RunSetup, SetupFailed, set_up_run
from services.worker.team import run_team
from sparkpilot import registry, runs, trajectory
from sparkpilot.errors import SparkpilotError
from sparkpilot.db.models import Run, RunStatus
from sparkpilot.db.session import session_scope
from sparkpilot.events import publish
from sparkpilot.metrics import MODEL_ERRORS, QUEUE_WAIT_SECONDS
from sparkpilot.redis_client import get_redis
from sparkpilot.settings import WorkerSettings, get_worker_settings

log = logging.getLogger(__name__)
# How a run's reason names a model failure (agent/loop.py), for sparkpilot_model_errors_total{kind}.
MODEL_ERROR_KINDS = (("model server unreachable", "unreachable"), ("model error", "error"),
                     ("prompt does not fit", "prompt_too_long"))


def worker_name() -> str:
    """host:pid of the process executing the run (a pool child, not the Celery main process)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat(threading.Thread):
    """Keeps the run's Redis lock and DB heartbeat fresh and watches for cancellation."""

    def __init__(self, run_id: str, lock: Any, settings: WorkerSettings) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.run_id, self.lock, self.settings = run_id, lock, settings
        self.cancel_requested = threading.Event()
        self._stop_evt = threading.Event()

    def beat(self) -> None:
        """One heartbeat: extend the lock, touch the run, read the cancel flag."""
        try:
            self.lock.extend(self.settings.lease_ttl_s, replace_ttl=True)
        except (LockError, redis.RedisError) as exc:
            log.warning("run %s: lock not extended (%s)", self.run_id, exc)
        try:
            with session_scope() as s:
                if runs.heartbeat(s, self.run_id):
                    self.cancel_requested.set()
        except Exception as exc:  # noqa: BLE001 - a DB hiccup must not kill the heartbeat
            log.warning("run %s: heartbeat failed (%s)", self.run_id, exc)

    def run(self) -> None:
        while not self._stop_evt.wait(self.settings.heartbeat_s):
            self.beat()

    def stop(self) -> None:
        """Stop beating."""
        self._stop_evt.set()


def execute_run(run_id: str, settings: WorkerSettings | None = None) -> str:
    """Execute a run end to end; returns what happened ('succeeded', 'skipped', ...)."""
    settings = settings or get_worker_settings()
    client = get_redis()
    lock = client.lock(
        settings.key("run", run_id, "lock"),
        timeout=settings.lease_ttl_s,
        blocking_timeout=settings.lease_ttl_s + 2,
        thread_local=False,  # the heartbeat thread extends it
    )
    if not lock.acquire():
        log.info("run %s is being executed elsewhere; dropping this delivery", run_id)
        return "locked"
    try:
        with session_scope() as s:
            claim = runs.claim_run(s, run_id, worker_name(), settings.max_attempts)
        publish(client, claim.events)
        if not claim.ok:
            return "skipped"
        assert claim.run is not None
        if not claim.resumed:
            wait = (claim.run.started_at - claim.run.created_at).total_seconds()
            QUEUE_WAIT_SECONDS.observe(client, wait)
        heart = Heartbeat(run_id, lock, settings)
        heart.start()
        try:
            if claim.run.mode == "team":
                ending = _run_team(claim.run, settings, heart)
                if ending is None:
                    return "awaiting approval"  # the plan waits for a person; the run is queued again on approval
                status, reason, result, reward = ending
            else:
                status, reason, result, reward = _run_steps(claim.run, settings, heart)
        except SparkpilotError as exc:  # e.g. the run's adapter cannot be loaded
            status, reason, result, reward = RunStatus.failed, f"model error: {exc.message}", None, None
        except Exception as exc:  # noqa: BLE001 - the run must end with a reason, whatever broke
            status, reason, result, reward = RunStatus.failed, _crash_reason(run_id, exc, settings), None, None
        finally:
            heart.stop()
        kind = next((k for prefix, k in MODEL_ERROR_KINDS if reason.startswith(prefix)), None)
        if kind:
            MODEL_ERRORS.inc(client, kind)
        ended = commit_events(lambda s: runs.finish_run(s, run_id, status, reason, result, reward=reward))
        _write_trajectory(run_id, settings)
        return ended[0].type if ended else "already ended"
    finally:
        try:
            lock.release()
        except (LockError, redis.RedisError):
            pass


def _crash_reason(run_id: str, exc: Exception, settings: WorkerSettings) -> str:
    """The reason a run that raised ends with: a full workspace said plainly, anything else as an internal error."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        log.error("run %s: the workspace is full: %s", run_id, exc)
        return f"workspace disk full ({settings.workspace_dir}): {exc.strerror}"
    log.exception("run %s crashed", run_id)
    return f"internal error: {type(exc).__name__}: {exc}"


def _write_trajectory(run_id: str, settings: WorkerSettings) -> None:
    """The finished run's records into the trajectories folder (the trainer's input); a failed write only logs."""
    try:
        with session_scope() as s:
            trajectory.write_run_file(s, run_id, settings.trajectories_dir)
    except OSError as exc:
        log.warning("run %s: trajectory file not written (%s)", run_id, exc)


def _run_steps(run: Run, settings: WorkerSettings, heart: Heartbeat) -> tuple[RunStatus, str, str | None, float | None]:
    """The agent run: open start_url, then the agent loop until a terminal (status, reason, result)."""
    if heart.cancel_requested.is_set():
        return RunStatus.cancelled, runs.CANCELLED_BY_USER, None, None
    try:
        with set_up_run(run, settings, heart) as setup:
            policy = make_policy(run, settings, setup.done_steps)
            try:
                return _loop(run, settings, setup, policy)
            finally:
                policy.close()
    except SetupFailed as exc:
        return RunStatus.failed, exc.reason, None, None


def _loop(run: Run, settings: WorkerSettings, setup: RunSetup, policy: Policy) -> tuple[RunStatus, str, str | None, float | None]:
    """The agent loop on the start page (a MiniWoB episode started first), after the steps already recorded."""
    hooks = setup.hooks
    page = hooks.page
    assert page is not None
    goal, root, episode = runs.goal_of(run), None, None
    if run.env.get("type") == "miniwob":
        page.set_viewport_size({"width": 500, "height": 320})  # MiniWoB's own size; small screenshots
        episode = MiniwobEpisode(page)
        goal = episode.start(run.env["task"], int(run.env["seed"]), base_of(run.start_url or ""))
        root = MiniwobEpisode.ROOT
        hooks.env_check = lambda: episode_outcome(episode)
        commit_events(emit, run.id, "run.message", {"text": f"MiniWoB {run.env['task']} seed {run.env['seed']}: {goal}"})
    elif setup.tools is not None:
        goal = setup.tools.goal_with_passages(goal, run.task, settings.document_prompt_chars)
    cfg = setup.loop_config(max(1, run.max_steps - setup.done_steps), policy, root=root)
    outcome = run_agent(page, policy, goal, hooks, cfg, start_index=setup.done_steps)
    if episode is not None and outcome.reward is None:
        outcome.reward = episode_reward(episode)
    return RunStatus(outcome.status), outcome.reason, outcome.result, outcome.reward


def _run_team(run: Run, settings: WorkerSettings, heart: Heartbeat):  # noqa: ANN202 - an Ending or None
    policy = make_policy(run, settings)
    try:
        return run_team(run, settings, heart, policy)
    finally:
        policy.close()


def make_policy(run: Run, settings: WorkerSettings, done_steps: int = 0) -> Policy:
    """The run's policy: the served model or adapter the run names (default), or a scripted replay
    (resumed after the `done_steps` actions an earlier attempt recorded)."""
    if run.policy.get("type") == "replay":
        return ReplayPolicy(run.policy.get("actions") or [], start=done_steps)
    model = run.model or settings.inference_model
    if model != settings.inference_model:
        registry.ensure_loaded(model, settings)
    return ModelPolicy(settings.inference_url, model, settings.inference_timeout_s, settings.inference_retries,
                       max_tokens=settings.agent_max_tokens, tokenizer_model=settings.inference_model,
                       temperature=float(run.policy.get("temperature") or 0.0),
                       restart_wait_s=settings.inference_restart_wait_s)
