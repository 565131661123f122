"""Celery tasks of the trainer: thin wrappers that validate the payload and call plain functions."""

from __future__ import annotations

import redis
from sqlalchemy.exc import OperationalError

from services.trainer.celery_app import app
from services.trainer.pipeline import execute_job
from sparkpilot.logs import bind
from sparkpilot.schemas import TrainJobPayload


@app.task(
    name="sparkpilot.trainer.run_job",
    acks_late=True,  # safe: a job resumes from its done phases and its training checkpoint
    reject_on_worker_lost=True,
    autoretry_for=(redis.ConnectionError, redis.TimeoutError, OperationalError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def run_job(payload: dict) -> str:
    """Execute (or resume) one training job; the payload is a TrainJobPayload as JSON."""
    job_id = TrainJobPayload.model_validate(payload).job_id
    with bind(job_id=job_id):  # every line the job logs carries its id
        return execute_job(job_id)
