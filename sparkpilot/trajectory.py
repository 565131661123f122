"""Trajectory records: one per step, the format the trainer consumes (documented in README).

Each record holds the messages exactly as sent to the model, the parsed action as the target,
the model's raw text, and the outcome of the step and of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from sparkpilot.db.models import TERMINAL_STATUSES, Run, RunStatus, Step

SCHEMA_VERSION = 2  # 2: reward, model, env on every record


class StepOutcome(BaseModel):
    """What happened at the step and how the run ended."""

    error: str | None
    run_status: str
    run_reason: str | None
    run_result: str | None
    reward: float | None = None


class TrajectoryStep(BaseModel):
    """One training record: messages → target action."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    task: str
    policy: str
    model: str | None = None  # the model or adapter version that answered at this step
    env: dict[str, Any] = {}
    reward: float | None = None  # the environment's verdict on the run (None: no environment)
    actor: str = "agent"  # "human": a person's step (taken control), a demonstration for the trainer
    step: int
    messages: list[dict[str, Any]]
    target: dict[str, Any]
    raw_output: str | None
    observation: dict[str, Any]
    timings_ms: dict[str, Any]
    outcome: StepOutcome


def run_records(session: Session, run: Run) -> list[TrajectoryStep]:
    """The run's steps as trajectory records."""
    steps = session.scalars(select(Step).where(Step.run_id == run.id).order_by(Step.index))
    outcome = dict(run_status=run.status.value, run_reason=run.reason, run_result=run.result, reward=run.reward)
    return [
        TrajectoryStep(run_id=run.id, task=run.task, policy=str(run.policy.get("type", "model")),
                       model=s.model or run.model, env=run.env or {}, reward=run.reward, step=s.index,
                       actor=s.action.get("actor", "agent"),
                       messages=s.prompt.get("messages", []), target=s.action, raw_output=s.raw_output,
                       observation=s.observation, timings_ms=s.timings_ms,
                       outcome=StepOutcome(error=s.error, **outcome))
        for s in steps
    ]


@dataclass
class TrajectoryFilter:
    """Which runs become training data. Scripted (replay) runs are left out unless `policy` asks for them."""

    status: RunStatus | None = RunStatus.succeeded
    policy: str | None = "model"  # None: every policy
    min_reward: float | None = None
    task: str | None = None  # a MiniWoB task name, or a piece of the run's task text
    model: str | None = None  # the run's model: base name, NAME@vN, or NAME (any version)
    since: datetime | None = None
    until: datetime | None = None
    user_ids: list[int] | None = None  # whose runs (None: everyone's; a training job always names them)
    tasks: list[str] | None = None  # MiniWoB task names (any of them)
    include_eval: bool = False  # evaluation episodes of training jobs are held out from training data

    def matches(self, run: Run) -> bool:
        """The checks that are simpler in Python than portable SQL (JSON fields, name prefixes)."""
        if self.policy is not None and run.policy.get("type", "model") != self.policy:
            return False
        if not self.include_eval and run.policy.get("purpose") == "eval":
            return False
        if self.tasks is not None and (run.env or {}).get("task") not in self.tasks:
            return False
        if self.task is not None and (run.env or {}).get("task") != self.task and self.task.lower() not in run.task.lower():
            return False
        if self.model is not None and run.model != self.model and not (run.model or "").startswith(self.model + "@"):
            return False
        return True


def matching_runs(session: Session, flt: TrajectoryFilter) -> list[Run]:
    """The runs the filter keeps, oldest first."""
    query = select(Run).order_by(Run.created_at)
    if flt.status is not None:
        query = query.where(Run.status == flt.status)
    if flt.user_ids is not None:
        query = query.where(Run.user_id.in_(flt.user_ids))
    if flt.min_reward is not None:
        query = query.where(Run.reward >= flt.min_reward)
    if flt.since is not None:
        query = query.where(Run.created_at >= flt.since)
    if flt.until is not None:
        query = query.where(Run.created_at < flt.until)
    return [run for run in session.scalars(query).all() if flt.matches(run)]


def iter_records(session: Session, flt: TrajectoryFilter | None = None) -> Iterator[TrajectoryStep]:
    """Records of every run the filter keeps, oldest run first."""
    for run in matching_runs(session, flt or TrajectoryFilter()):
        yield from run_records(session, run)


def run_file(directory: Path, run: Run) -> Path:
    """Where a finished run's records live: DIR/YYYY-MM-DD/RUN_ID.jsonl (the day it finished, UTC)."""
    day = (run.finished_at or run.created_at).strftime("%Y-%m-%d")
    return Path(directory) / day / f"{run.id}.jsonl"


def write_run_file(session: Session, run_id: str, directory: Path) -> Path | None:
    """Write a finished run's records as JSONL (atomically: readers never see half a file); None if not finished."""
    run = session.get(Run, run_id)
    if run is None or run.status not in TERMINAL_STATUSES:
        return None
    path = run_file(directory, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(r.model_dump_json() + "\n" for r in run_records(session, run)))
    tmp.replace(path)
    return path


def read_jsonl(path: Path) -> Iterator[TrajectoryStep]:
    """The records of one JSONL file."""
    for line in Path(path).read_text().splitlines():
        if line.strip():
            yield TrajectoryStep.model_validate_json(line)


def read_dir(directory: Path) -> Iterator[TrajectoryStep]:
    """Every record in a trajectories folder, oldest day first (what the trainer reads)."""
    for path in sorted(Path(directory).glob("*/*.jsonl")):
        yield from read_jsonl(path)


def parse_upload(raw: bytes) -> list[TrajectoryStep]:
    """Validate an uploaded JSONL line by line; ValueError naming the first bad line (nothing is kept then)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"the file is not UTF-8: {exc}") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(TrajectoryStep.model_validate_json(line))
        except ValueError as exc:
            first = str(exc).splitlines()
            raise ValueError(f"line {number}: {' '.join(first[:3])[:300]}") from None
    if not records:
        raise ValueError("the file holds no records")
    return records
