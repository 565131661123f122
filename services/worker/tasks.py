"""Celery tasks: thin wrappers that validate the payload and call plain functions."""

from __future__ import annotations

import logging

import redis
from sqlalchemy.exc import OperationalError

from services.worker.celery_app import app
from services.worker.executor import execute_run as execute_run_now
from sparkpilot.logs import bind
from sparkpilot.schemas import ExecuteRunPayload

log = logging.getLogger(__name__)


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
    run_id = ExecuteRunPayload.model_validate(payload).run_id
    with bind(run_id=run_id):  # every line the run logs carries its id
        log.info("executing run %s", run_id)
        outcome = execute_run_now(run_id)
        log.info("run %s: %s", run_id, outcome)
        return outcome
