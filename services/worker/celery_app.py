"""The Celery application of the run worker (and the trainer's queue)."""

from __future__ import annotations

import logging
import socket
import threading

import redis
from celery import Celery
from celery.signals import setup_logging, worker_ready, worker_shutdown

from sparkpilot.redis_client import get_redis
from sparkpilot.logs import configure_logging
from sparkpilot.settings import get_worker_settings

log = logging.getLogger(__name__)
settings = get_worker_settings()


@setup_logging.connect
def _logging(**_kwargs) -> None:  # noqa: ANN003 - connected: Celery leaves logging to us (SPARKPILOT_LOG_LEVEL)
    configure_logging(settings.log_level)

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
    worker_concurrency=settings.concurrency,
)

WORKER_ALIVE_TTL_S = 15
_stop = threading.Event()


def worker_alive_key(hostname: str) -> str:
    """Redis key a live worker refreshes; /health looks for any of them."""
    return settings.key("worker", hostname)


def _announce(hostname: str) -> None:
    while not _stop.is_set():
        try:
            get_redis().set(worker_alive_key(hostname), "1", ex=WORKER_ALIVE_TTL_S)
        except redis.RedisError as exc:
            log.warning("worker heartbeat failed: %s", exc)
        _stop.wait(5)


@worker_ready.connect
def _start_announcing(sender=None, **_kwargs) -> None:  # noqa: ANN001
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    threading.Thread(target=_announce, args=(hostname,), daemon=True, name="worker-alive").start()


@worker_shutdown.connect
def _stop_announcing(sender=None, **_kwargs) -> None:  # noqa: ANN001
    _stop.set()
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    try:
        get_redis().delete(worker_alive_key(hostname))
    except redis.RedisError:
        pass
