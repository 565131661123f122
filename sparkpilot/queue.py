"""Putting runs and training jobs on their Celery queues (gateway and trainer produce; worker and trainer consume)."""

from __future__ import annotations

import base64
import json
import time
from functools import lru_cache

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from sparkpilot.errors import Unavailable
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import ExecuteRunPayload, TrainJobPayload
from sparkpilot.settings import get_settings

EXECUTE_RUN_TASK = "sparkpilot.execute_run"
# kombu's Redis transport: messages of priority p go to the list "<queue><sep><step>" (step 0: "<queue>").
PRIORITY_STEPS, PRIORITY_SEP = (0, 3, 6, 9), "\x06\x16"
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


def enqueue_run(run_id: str, priority: int = 0) -> None:
    """Send the run to the worker queue (priority 0 first, 9 last: runs.queue_priority), or raise Unavailable."""
    try:
        producer().send_task(EXECUTE_RUN_TASK, args=[ExecuteRunPayload(run_id=run_id).model_dump()], retry=True,
                             priority=priority)
    except (KombuOperationalError, OSError) as exc:
        raise Unavailable(f"the queue (Redis) is unreachable: {exc}", code="redis_unavailable") from exc


def enqueue_job(job_id: str) -> None:
    """Send a training job to the trainer's queue, or raise Unavailable."""
    try:
        producer().send_task(RUN_JOB_TASK, args=[TrainJobPayload(job_id=job_id).model_dump()],
                             queue=get_settings().training_queue, retry=True)
    except (KombuOperationalError, OSError) as exc:
        raise Unavailable(f"the queue (Redis) is unreachable: {exc}", code="redis_unavailable") from exc


def queue_depth(name: str | None = None) -> int:
    """Messages waiting on a queue, the run queue by default (Celery's Redis transport keeps a list per queue
    and priority step)."""
    name = name or get_settings().queue_name
    pipe = get_redis().pipeline()
    for key in (name, *(f"{name}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS[1:])):
        pipe.llen(key)
    return int(sum(pipe.execute()))


# Celery's Redis transport (kombu) keeps each message a worker took but has not acked in a hash, with the time
# it was taken in a sorted set; it restores one to its queue only after the visibility timeout (900 s).
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"


def stranded_runs(client, queue_name: str, older_than_s: float) -> dict[str, str]:  # noqa: ANN001 - a redis.Redis
    """{delivery tag: run id} of the messages of `queue_name` that a worker took over `older_than_s` ago and never
    acked. A worker acks a run's message only when the run ends, so the caller keeps those whose run is still
    queued: a worker killed between taking the message and claiming the run left them there."""
    found = {}
    for tag in client.zrangebyscore(UNACKED_INDEX, "-inf", time.time() - older_than_s):
        raw = client.hget(UNACKED, tag)
        if raw is None:
            continue
        try:
            message, _exchange, routing_key = json.loads(raw)
            if routing_key != queue_name:
                continue
            args = json.loads(base64.b64decode(message["body"]))[0]
            found[tag.decode() if isinstance(tag, bytes) else tag] = str(args[0]["run_id"])
        except (ValueError, KeyError, IndexError, TypeError):
            continue  # not a run message of ours
    return found


def forget_delivery(client, tag: str) -> None:  # noqa: ANN001 - a redis.Redis
    """Drop a stranded message's unacked entry once its run was sent again (no second restore in 900 s)."""
    pipe = client.pipeline()
    pipe.hdel(UNACKED, tag)
    pipe.zrem(UNACKED_INDEX, tag)
    pipe.execute()
