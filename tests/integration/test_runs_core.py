"""The run lifecycle functions against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from sparkpilot import runs
from sparkpilot.auth import create_token, ensure_admin_token, user_for_token
from sparkpilot.db.models import Event, Run, RunStatus, utcnow
from sparkpilot.db.session import get_sessionmaker
from sparkpilot.errors import Conflict, NotFound
from sparkpilot.events import add_event, list_events
from sparkpilot.schemas import RunCreate


@pytest.fixture
def admin(db):
    user = ensure_admin_token(db, "sp_admin_core")
    db.commit()
    return user


def _new_run(db, user, **kw):
    run, events = runs.create_run(db, user, RunCreate(task="t", start_url="http://x.test/", **kw))
    db.commit()
    return run, events


def test_create_writes_run_and_queued_event(db, admin) -> None:
    run, events = _new_run(db, admin)
    assert run.status is RunStatus.queued
    assert [e.type for e in events] == ["run.queued"] and events[0].id == 1
    assert [e.type for e in list_events(db, run.id)] == ["run.queued"]


def test_claim_then_finish_then_finish_again_is_noop(db, admin) -> None:
    run, _ = _new_run(db, admin)
    claim = runs.claim_run(db, run.id, "w1", max_attempts=3)
    db.commit()
    assert claim.ok and not claim.resumed and claim.run.status is RunStatus.running
    assert runs.finish_run(db, run.id, RunStatus.succeeded, "done", "answer")[0].type == "run.succeeded"
    assert runs.finish_run(db, run.id, RunStatus.failed, "late") == []
    db.commit()
    db.refresh(run)
    assert (run.status, run.reason, run.result) == (RunStatus.succeeded, "done", "answer")
    assert not runs.claim_run(db, run.id, "w2", 3).ok


def test_second_claim_of_running_run_is_a_resume_until_attempts_run_out(db, admin) -> None:
    run, _ = _new_run(db, admin)
    runs.claim_run(db, run.id, "w1", max_attempts=2)
    second = runs.claim_run(db, run.id, "w2", max_attempts=2)
    assert second.ok and second.resumed and second.run.attempts == 2
    third = runs.claim_run(db, run.id, "w3", max_attempts=2)
    db.commit()
    assert not third.ok and third.events[0].type == "run.failed"
    db.refresh(run)
    assert run.status is RunStatus.failed and run.reason.startswith(runs.WORKER_LOST)


def test_cancel_queued_is_immediate_and_cancel_finished_is_conflict(db, admin) -> None:
    run, _ = _new_run(db, admin)
    cancelled, events = runs.request_cancel(db, run.id, admin)
    db.commit()
    assert cancelled.status is RunStatus.cancelled and cancelled.reason == runs.CANCELLED_BY_USER
    assert events[0].type == "run.cancelled"
    with pytest.raises(Conflict):
        runs.request_cancel(db, run.id, admin)


def test_cancel_running_sets_flag_seen_by_heartbeat(db, admin) -> None:
    run, _ = _new_run(db, admin)
    runs.claim_run(db, run.id, "w1", 3)
    db.commit()
    assert runs.heartbeat(db, run.id) is False
    still_running, events = runs.request_cancel(db, run.id, admin)
    db.commit()
    assert events == [] and still_running.status is RunStatus.running and still_running.cancel_requested
    assert runs.heartbeat(db, run.id) is True


def test_reaper_fails_stale_runs_and_cancels_flagged_ones(db, admin) -> None:
    fresh, _ = _new_run(db, admin)
    stale, _ = _new_run(db, admin)
    flagged, _ = _new_run(db, admin)
    for r in (fresh, stale, flagged):
        runs.claim_run(db, r.id, "w", 3)
    old = utcnow() - timedelta(seconds=60)
    db.execute(update(Run).where(Run.id.in_([stale.id, flagged.id])).values(heartbeat_at=old))
    db.execute(update(Run).where(Run.id == flagged.id).values(cancel_requested=True))
    db.commit()
    events, requeued = runs.reap_stale_runs(db, stale_after_s=20)  # max_attempts 1: no attempt left
    db.commit()
    assert sorted(e.type for e in events) == ["run.cancelled", "run.failed"] and requeued == []
    by_id = {r.id: r for r in db.scalars(select(Run)).all()}
    for r in by_id.values():
        db.refresh(r)
    assert by_id[fresh.id].status is RunStatus.running
    assert (by_id[stale.id].status, by_id[stale.id].reason) == (RunStatus.failed, runs.WORKER_LOST)
    assert by_id[flagged.id].status is RunStatus.cancelled


def test_reaper_hands_a_lost_run_with_attempts_left_back_to_the_queue(db, admin) -> None:
    run, _ = _new_run(db, admin)
    runs.claim_run(db, run.id, "w1", 3)
    db.execute(update(Run).where(Run.id == run.id).values(heartbeat_at=utcnow() - timedelta(seconds=60)))
    db.commit()
    events, requeued = runs.reap_stale_runs(db, stale_after_s=20, max_attempts=3)
    db.commit()
    assert requeued == [run.id] and [e.type for e in events] == ["run.status"]
    assert events[0].payload == {"status": "queued", "reason": "worker lost; queued again", "attempt": 1}
    db.refresh(run)
    assert (run.status, run.worker, run.heartbeat_at) == (RunStatus.queued, None, None)
    claim = runs.claim_run(db, run.id, "w2", 3)  # the next delivery resumes it
    db.commit()
    assert claim.resumed and claim.run.attempts == 2 and claim.run.status is RunStatus.running
    assert [e.type for e in claim.events] == ["run.message"] and "resumed by w2" in claim.events[0].payload["text"]


def test_users_see_only_their_own_runs(db, admin) -> None:
    token, _ = create_token(db, "bob")
    bob = user_for_token(db, token)
    run, _ = _new_run(db, admin)
    with pytest.raises(NotFound):
        runs.get_run(db, run.id, bob)
    assert runs.list_runs(db, bob, None, 10, 0) == ([], 0)
    assert runs.list_runs(db, admin, None, 10, 0)[1] == 1
    assert user_for_token(db, "sp_not_a_token") is None


def test_concurrent_event_writers_get_distinct_consecutive_ids(db_url, db, admin) -> None:
    run, _ = _new_run(db, admin)
    maker = get_sessionmaker(db_url)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with maker.begin() as s:
                    add_event(s, run.id, "run.message", {"writer": n, "i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = db.scalars(select(Event.seq).where(Event.run_id == run.id).order_by(Event.seq)).all()
    assert seqs == list(range(1, 42))
