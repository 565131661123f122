"""Which runs become training data: the export's filters, on SQLite and PostgreSQL."""

from datetime import datetime, timedelta, timezone

from sparkpilot.auth import get_or_create_user
from sparkpilot.db.models import Run, RunStatus, Step
from sparkpilot.trajectory import TrajectoryFilter, iter_records

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _run(db, user, key: str, *, status="succeeded", policy="model", reward=None, task="t", env=None, model="base",
         day=0) -> str:
    run = Run(id=key.ljust(8, "x"), user_id=user.id, task=task, status=RunStatus(status), policy={"type": policy},
              reward=reward, env=env or {}, model=model, created_at=T0 + timedelta(days=day))
    db.add(run)
    db.flush()
    db.add(Step(run_id=run.id, index=0, action={"name": "click", "args": {"bid": "12"}}, model=model,
                prompt={"messages": [{"role": "user", "content": "GOAL"}]}, raw_output="{}"))
    return run.id


def _ids(db, **kw) -> set[str]:
    return {r.run_id[:2] for r in iter_records(db, TrajectoryFilter(**kw))}


def test_filters(db) -> None:
    user = get_or_create_user(db, "u")
    _run(db, user, "m1", reward=1.0, env={"type": "miniwob", "task": "click-button"}, model="agent@v1", day=1)
    _run(db, user, "m2", reward=-1.0, status="failed", env={"type": "miniwob", "task": "enter-text"}, day=2)
    _run(db, user, "m3", reward=0.0, env={"type": "miniwob", "task": "click-button"}, model="agent@v2", day=3)
    _run(db, user, "r1", policy="replay", task="scripted click", day=4)
    _run(db, user, "f1", task="Book a flight to Oslo", model="base", day=5)
    db.commit()
    assert _ids(db) == {"m1", "m3", "f1"}  # succeeded model runs; replay left out
    assert _ids(db, policy=None) == {"m1", "m3", "r1", "f1"}
    assert _ids(db, policy="replay") == {"r1"}
    assert _ids(db, status=None) == {"m1", "m2", "m3", "f1"}
    assert _ids(db, status=None, min_reward=0.5) == {"m1"}
    assert _ids(db, task="click-button") == {"m1", "m3"}
    assert _ids(db, task="flight to oslo") == {"f1"}
    assert _ids(db, model="agent") == {"m1", "m3"} and _ids(db, model="agent@v2") == {"m3"}
    assert _ids(db, since=T0 + timedelta(days=3)) == {"m3", "f1"}
    assert _ids(db, until=T0 + timedelta(days=3)) == {"m1"}
    record = next(iter_records(db, TrajectoryFilter(model="agent@v1")))
    assert (record.reward, record.model, record.env["task"], record.outcome.reward) == (1.0, "agent@v1", "click-button", 1.0)


def test_run_files_are_written_once_finished_and_read_back(db, tmp_path) -> None:
    from sparkpilot.trajectory import read_dir, write_run_file

    user = get_or_create_user(db, "files")
    done = _run(db, user, "d1", reward=1.0, model="agent@v1")
    db.get(Run, done).finished_at = T0 + timedelta(days=2)
    running = _run(db, user, "q1", status="running")
    db.commit()
    path = write_run_file(db, done, tmp_path)
    assert path == tmp_path / "2026-11-03" / f"{done}.jsonl"
    assert write_run_file(db, running, tmp_path) is None  # only finished runs are training data
    assert write_run_file(db, "nope", tmp_path) is None
    records = list(read_dir(tmp_path))
    assert [(r.run_id, r.step, r.model, r.reward) for r in records] == [(done, 0, "agent@v1", 1.0)]
    assert not list(tmp_path.glob("*/*.tmp"))
