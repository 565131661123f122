"""The Celery application of the trainer, consuming the training queue (SPARKPILOT_TRAINING_QUEUE).

`sparkpilot.trainer.run_job` (services/trainer/tasks.py) executes training jobs;
`sparkpilot.trainer.ping` is a liveness probe that also reports the training stack's versions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

from celery import Celery
from celery.signals import setup_logging, worker_init

from sparkpilot.heartbeat import announce
from sparkpilot.run_files import private_umask
from sparkpilot.settings import get_trainer_settings

TRAINING_PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "unsloth")

settings = get_trainer_settings()


@worker_init.connect
def _private_files(**_kwargs) -> None:  # noqa: ANN003 - in the main process, before the pool's children fork
    private_umask()


@setup_logging.connect
def _logging(**_kwargs) -> None:  # noqa: ANN003 - connected: Celery leaves logging to us (SPARKPILOT_LOG_LEVEL)
    settings.configure_logging()

app = Celery("sparkpilot-trainer", broker=settings.redis_url, backend=settings.redis_url,
             include=["services.trainer.tasks"])
app.conf.update(
    task_default_queue=settings.training_queue,
    task_routes={"sparkpilot.trainer.*": {"queue": settings.training_queue}},
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # One job at a time, and a killed job's message comes back (it resumes from its checkpoints).
    worker_concurrency=1,
    broker_transport_options={"visibility_timeout": 3600},
)
announce("trainer")


def package_version(name: str) -> str | None:
    """The installed version of `name` if it is importable, else None (nothing is imported)."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@app.task(name="sparkpilot.trainer.ping")
def ping() -> dict[str, object]:
    """'pong' plus the versions of the training libraries (null where missing)."""
    return {"reply": "pong", "versions": {name: package_version(name) for name in TRAINING_PACKAGES}}
