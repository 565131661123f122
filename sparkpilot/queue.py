"""Putting runs and training jobs on their Celery queues (gateway and trainer produce; worker and trainer consume)."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from sparkpilot.errors import Unavailable
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import ExecuteRunPayload, TrainJobPayload
from sparkpilot.settings import get_settings

EXECUTE_RUN_TASK = "sparkpilot.execute_run"
RUN_JOB_TASK = "sparkpilot.trainer.run_job"


@lru_cache
def producer() -> Celery:
    """A Celery app used only to send tasks."""
    s = get_settings()
    app = Celery("sparkpilot-producer", broker=s.redis_url)
    app.conf.update(
        task_default_queue=s.queue_name,
        broker_connection_retry_on_startup=False,
        broker_transport_options={"socket_connect_timeout": 1, "socket_timeout": 3},
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
    )
    return app


def enqueue_run(run_id: str) -> None:
    """Send the run to the worker queue, or raise Unavailable."""
    try:
        producer().send_task(EXECUTE_RUN_TASK, args=[ExecuteRunPayload(run_id=run_id).model_dump()], retry=True)
    except (KombuOperationalError, OSError) as exc:
        raise Unavailable(f"the queue (Redis) is unreachable: {exc}", code="redis_unavailable") from exc


def enqueue_job(job_id: str) -> None:
    """Send a training job to the trainer's queue, or raise Unavailable."""
    try:
        producer().send_task(RUN_JOB_TASK, args=[TrainJobPayload(job_id=job_id).model_dump()],
                             queue=get_settings().training_queue, retry=True)
    except (KombuOperationalError, OSError) as exc:
        raise Unavailable(f"the queue (Redis) is unreachable: {exc}", code="redis_unavailable") from exc


def queue_depth() -> int:
    """Messages waiting on the run queue (Celery's Redis transport keeps a list per queue)."""
    return int(get_redis().llen(get_settings().queue_name))
