"""Celery tasks: thin wrappers that validate the payload and call plain functions."""

from __future__ import annotations

import redis
from sqlalchemy.exc import OperationalError

from services.worker.celery_app import app
from services.worker.executor import execute_run as execute_run_now
from sparkpilot.schemas import ExecuteRunPayload


@app.task(
    name="sparkpilot.execute_run",
    acks_late=True,  # safe: execute_run is idempotent (per-run lock + conditional claim)
    reject_on_worker_lost=True,
    autoretry_for=(redis.ConnectionError, redis.TimeoutError, OperationalError),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=8,
)
def execute_run(payload: dict) -> str:
    """Execute one run; the payload is an ExecuteRunPayload as JSON."""
    return execute_run_now(ExecuteRunPayload.model_validate(payload).run_id)
