"""Training-job lifecycle functions and their events, and evaluation reuse, on real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from services.trainer.phases import reusable_episodes
from sparkpilot import runs, training
from sparkpilot.auth import ensure_admin_token
from sparkpilot.db.models import JobStatus, RunStatus, utcnow
from sparkpilot.events import job_channel, list_job_events
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import EvalSpec, MiniwobEnv, RunCreate, TrainingJobCreate

EVAL = {"tasks": ["click-button"], "seeds": [0, 1], "max_steps": 3}


@pytest.fixture
def admin(db, settings_override):  # noqa: ANN001, ANN201
    user = ensure_admin_token(db, "sp_admin_training_core")
    db.commit()
    return user


def _job(db, admin):  # noqa: ANN001, ANN202
    job = training.create_job(db, admin, TrainingJobCreate(name="core", eval=EVAL))
    db.commit()
    return job


def test_the_lifecycle_is_on_the_job_event_stream_and_published_on_commit(db, admin) -> None:  # noqa: ANN001
    pubsub = get_redis().pubsub()
    job = _job(db, admin)
    pubsub.subscribe(job_channel(job.id))
    assert training.claim_job(db, job.id, "host:1", 3) is not None
    training.start_phase(db, job.id, "train")
    for step in (1, 1, 2):  # the same figures twice are one event
        training.set_progress(db, job.id, phase="train", step=step, total=2, loss=1.0 / step, loss_curve=[[1, 1.0]])
    training.phase_done(db, job.id, "train", {"minutes": 0.1})
    assert training.finish_job(db, job.id, JobStatus.succeeded, "promoted: x")
    assert not training.finish_job(db, job.id, JobStatus.failed, "late")  # a second end is refused, no event
    db.commit()
    events = list_job_events(db, job.id)
    assert [e.type for e in events] == ["job.queued", "job.started", "job.phase", "job.progress", "job.progress",
                                        "job.phase_done", "job.succeeded"]
    assert [e.id for e in events] == list(range(1, 8))
    assert [e.payload["step"] for e in events if e.type == "job.progress"] == [1, 2]
    assert all("loss_curve" not in e.payload for e in events)
    assert events[-1].payload == {"reason": "promoted: x"}
    published = []
    deadline = time.time() + 5
    while len(published) < 6 and time.time() < deadline:
        msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if msg:
            published.append(json.loads(msg["data"])["id"])
    pubsub.close()
    assert published == [2, 3, 4, 5, 6, 7]  # subscribed after job.queued; each once, in order


def test_a_rolled_back_event_is_never_published(db, admin) -> None:  # noqa: ANN001
    job = _job(db, admin)
    pubsub = get_redis().pubsub()
    pubsub.subscribe(job_channel(job.id))
    training.start_phase(db, job.id, "prepare")
    db.rollback()
    training.set_progress(db, job.id, phase="prepare", examples=3)
    db.commit()
    got = []
    deadline = time.time() + 2
    while time.time() < deadline:
        msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if msg:
            got.append(json.loads(msg["data"]))
    pubsub.close()
    assert [(e["id"], e["type"]) for e in got] == [(2, "job.progress")]
    assert [e.type for e in list_job_events(db, job.id)] == ["job.queued", "job.progress"]


def test_cancelling_a_queued_job_ends_its_stream_and_a_running_one_is_only_asked(db, admin) -> None:  # noqa: ANN001
    job = _job(db, admin)
    training.request_cancel(db, job.id, admin)
    db.commit()
    assert [e.type for e in list_job_events(db, job.id)] == ["job.queued", "job.cancelled"]
    running = _job(db, admin)
    training.claim_job(db, running.id, "host:1", 3)
    job = training.request_cancel(db, running.id, admin)
    db.commit()
    assert job.status is JobStatus.running and job.cancel_requested  # the trainer ends it at its next check
    assert [e.type for e in list_job_events(db, running.id)] == ["job.queued", "job.started"]


def _eval_run(db, admin, seed: int, model: str, status: RunStatus, purpose: str | None = "eval",  # noqa: ANN001, ANN202
              max_steps: int = 3, task: str = "click-button"):
    body = RunCreate(task="e", start_url="http://x.test/", env=MiniwobEnv(task=task, seed=seed))
    run, _ = runs.create_run(db, admin, body, model, max_steps)
    run.policy = {"type": "model", **({"purpose": purpose} if purpose else {})}
    run.status, run.reward = status, 1.0
    db.commit()
    return run


def test_evaluation_reuses_only_finished_greedy_eval_episodes_of_the_same_version(db, admin) -> None:  # noqa: ANN001
    since = utcnow() - timedelta(seconds=1)
    spec = EvalSpec(**EVAL, reuse_since=since).model_dump(mode="json")
    old = _eval_run(db, admin, 0, "learner@v1", RunStatus.succeeded)
    new = _eval_run(db, admin, 0, "learner@v1", RunStatus.failed)
    _eval_run(db, admin, 1, "learner@v1", RunStatus.cancelled)  # not a verdict
    _eval_run(db, admin, 1, "learner@v1", RunStatus.succeeded, purpose=None)  # a user's run, maybe sampled
    _eval_run(db, admin, 1, "learner@v2", RunStatus.succeeded)  # another version
    _eval_run(db, admin, 1, "learner@v1", RunStatus.succeeded, max_steps=5)  # another step budget
    _eval_run(db, admin, 1, "learner@v1", RunStatus.succeeded, task="click-link")  # another task
    assert reusable_episodes(db, "learner@v1", spec) == {("click-button", 0): new.id}
    assert old.id != new.id
    assert reusable_episodes(db, "learner@v1", EvalSpec(**EVAL).model_dump(mode="json")) == {}  # off by default
    later = EvalSpec(**EVAL, reuse_since=utcnow() + timedelta(seconds=5)).model_dump(mode="json")
    assert reusable_episodes(db, "learner@v1", later) == {}


@pytest.mark.security
def test_a_job_learns_only_from_the_users_it_names(db, admin) -> None:  # noqa: ANN001
    """One user's runs never train into another's adapter unless an admin names that user in the job."""
    from sparkpilot.auth import get_or_create_user
    from sparkpilot.errors import InvalidInput
    from sparkpilot.trajectory import matching_runs

    alice, bob = get_or_create_user(db, "alice"), get_or_create_user(db, "bob")
    mine = _eval_run(db, admin, 0, "agent", RunStatus.succeeded, purpose=None)
    alices = _eval_run(db, alice, 1, "agent", RunStatus.succeeded, purpose=None)
    _eval_run(db, bob, 2, "agent", RunStatus.succeeded, purpose=None)
    ids = lambda flt: {r.id for r in matching_runs(db, flt)}  # noqa: E731
    assert ids(training.runs_filter(db, {"policy": "model"}, admin.id)) == {mine.id}  # by default: the owner's own
    assert ids(training.runs_filter(db, {"policy": "model", "users": ["admin", "alice"]}, admin.id)) == {mine.id, alices.id}
    with pytest.raises(InvalidInput, match="no user called 'carol'") as exc:
        training.runs_filter(db, {"users": ["alice", "carol"]}, admin.id)
    assert exc.value.code == "unknown_user"
