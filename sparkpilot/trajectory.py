"""Trajectory records: one per step, the format the trainer consumes (documented in README).

Each record holds the messages exactly as sent to the model, the parsed action as the target,
the model's raw text, and the outcome of the step and of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from sparkpilot.db.models import Run, RunStatus, Step

SCHEMA_VERSION = 1


class StepOutcome(BaseModel):
    """What happened at the step and how the run ended."""

    error: str | None
    run_status: str
    run_reason: str | None
    run_result: str | None


class TrajectoryStep(BaseModel):
    """One training record: messages → target action."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    task: str
    policy: str
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
    outcome = dict(run_status=run.status.value, run_reason=run.reason, run_result=run.result)
    return [
        TrajectoryStep(run_id=run.id, task=run.task, policy=str(run.policy.get("type", "model")), step=s.index,
                       messages=s.prompt.get("messages", []), target=s.action, raw_output=s.raw_output,
                       observation=s.observation, timings_ms=s.timings_ms,
                       outcome=StepOutcome(error=s.error, **outcome))
        for s in steps
    ]


def iter_records(session: Session, status: RunStatus | None, user_id: int | None = None) -> Iterator[TrajectoryStep]:
    """Records of every matching run, oldest run first."""
    query = select(Run).order_by(Run.created_at)
    if status is not None:
        query = query.where(Run.status == status)
    if user_id is not None:
        query = query.where(Run.user_id == user_id)
    for run in session.scalars(query).all():
        yield from run_records(session, run)
