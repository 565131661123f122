"""The Celery application of the trainer, consuming the `training` queue.

Only `sparkpilot.trainer.ping` lives here for now (a liveness probe that also reports the
training stack's versions); the training tasks themselves (datasets, LoRA SFT,
self-distillation, evaluation gate, publish/rollback) come in a later issue.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

from celery import Celery
from celery.signals import setup_logging

from sparkpilot.logs import configure_logging
from sparkpilot.settings import get_settings

QUEUE = "training"
TRAINING_PACKAGES = ("torch", "transformers", "peft")

settings = get_settings()


@setup_logging.connect
def _logging(**_kwargs) -> None:  # noqa: ANN003 - connected: Celery leaves logging to us (SPARKPILOT_LOG_LEVEL)
    configure_logging(settings.log_level)

app = Celery("sparkpilot-trainer", broker=settings.redis_url, backend=settings.redis_url)
app.conf.update(
    task_default_queue=QUEUE,
    task_routes={"sparkpilot.trainer.*": {"queue": QUEUE}},
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


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
