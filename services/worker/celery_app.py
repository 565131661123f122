"""The Celery application of the run worker (and the trainer's queue)."""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import setup_logging, worker_init

from sparkpilot.heartbeat import announce
from sparkpilot.run_files import private_umask
from sparkpilot.settings import get_worker_settings, run_slots

log = logging.getLogger(__name__)
settings = get_worker_settings()


@worker_init.connect
def _private_files(**_kwargs) -> None:  # noqa: ANN003 - in the main process, before the pool's children fork
    private_umask()


@setup_logging.connect
def _logging(**_kwargs) -> None:  # noqa: ANN003 - connected: Celery leaves logging to us (SPARKPILOT_LOG_LEVEL)
    settings.configure_logging()

app = Celery("sparkpilot", broker=settings.redis_url, include=["services.worker.tasks"])
app.conf.update(
    task_default_queue=settings.queue_name,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 900, "socket_connect_timeout": 2, "socket_timeout": 5},
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
    worker_hijack_root_logger=False,
    worker_concurrency=run_slots(settings),
)

announce("worker")
