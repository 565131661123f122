"""GET /api/v1/runs filters: task search, agent, mode, model, creation dates — in the database and over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from sparkpilot import runs
from sparkpilot.auth import create_token, ensure_admin_token, user_for_token
from sparkpilot.db.models import Agent, AgentVersion, Run, RunStatus
from sparkpilot.errors import InvalidInput
from sparkpilot.schemas import RunCreate
from sparkpilot.team_schemas import AgentCreate

FINISH = [{"name": "finish", "answer": "ok"}]
DAY = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def admin(db):  # noqa: ANN001, ANN201
    user = ensure_admin_token(db, "sp_admin_filters")
    db.commit()
    return user


def _run(db, user, task: str, created: datetime, model: str | None = "base-model", agent: Agent | None = None,  # noqa: ANN001
         **kw) -> Run:  # noqa: ANN003
    run, _ = runs.create_run(db, user, RunCreate(task=task, start_url="http://x.test/", **kw), model, agent=agent)
    db.execute(update(Run).where(Run.id == run.id).values(created_at=created))
    db.commit()
    return run


def _ids(db, user, **filters) -> list[str]:  # noqa: ANN001, ANN003
    status = filters.pop("status", None)
    items, total = runs.list_runs(db, user, status, 100, 0, runs.RunFilter(**filters))
    assert total == len(items)
    return [r.id for r in items]


def _agent(db, user, name: str) -> Agent:  # noqa: ANN001
    body = AgentCreate(name=name)
    agent = Agent(user_id=user.id, name=name, version=1, config=body.model_dump(exclude={"name"}))
    db.add(agent)
    db.flush()
    db.add(AgentVersion(agent_id=agent.id, name=name, version=1, config=agent.config))
    db.commit()
    return agent


def test_each_filter_narrows_the_list_on_both_databases(db, admin) -> None:  # noqa: ANN001
    invoices = _agent(db, admin, "Invoice Agent")
    a = _run(db, admin, "Find the INVOICE total", DAY, agent=invoices)
    b = _run(db, admin, "read the title", DAY + timedelta(days=1), model="helper@v2")
    c = _run(db, admin, "plan a trip (100% off_sale)", DAY + timedelta(days=2), mode="team", model="helper@v3")
    d = _run(db, admin, "invoice archive", DAY + timedelta(days=3), model="helperx@v1")
    db.execute(update(Run).where(Run.id == d.id).values(status=RunStatus.succeeded))
    db.commit()

    assert _ids(db, admin) == [d.id, c.id, b.id, a.id]  # newest first
    assert _ids(db, admin, q="invoice") == [d.id, a.id]  # any case
    assert _ids(db, admin, q="100% off_") == [c.id]  # LIKE wildcards are literal text
    assert _ids(db, admin, q="0%") == [c.id]
    assert _ids(db, admin, q="nothing like it") == []
    assert _ids(db, admin, agent=invoices.id) == [a.id]
    assert _ids(db, admin, agent="invoice agent") == [a.id]  # the name, any case
    assert _ids(db, admin, agent="someone else") == []
    assert _ids(db, admin, mode="team") == [c.id]
    assert _ids(db, admin, mode="direct") == [d.id, b.id, a.id]
    assert _ids(db, admin, model="helper") == [c.id, b.id]  # an adapter name: all its versions, not helperx
    assert _ids(db, admin, model="helper@v2") == [b.id]
    assert _ids(db, admin, model="base-model") == [a.id]
    assert _ids(db, admin, created_after=DAY + timedelta(hours=12)) == [d.id, c.id, b.id]
    assert _ids(db, admin, created_before=DAY + timedelta(days=1)) == [b.id, a.id]  # inclusive
    assert _ids(db, admin, created_after=DAY + timedelta(days=1), created_before=DAY + timedelta(days=2)) == [c.id, b.id]
    # A timestamp without an offset is UTC; one with an offset is converted.
    assert _ids(db, admin, created_after=datetime(2024, 3, 3, 12, 0)) == [d.id, c.id]
    assert _ids(db, admin, created_after=datetime(2024, 3, 3, 13, 30, tzinfo=timezone(timedelta(hours=2)))) == [d.id, c.id]
    assert _ids(db, admin, q="invoice", status=RunStatus.succeeded) == [d.id]  # filters combine
    assert _ids(db, admin, q="invoice", status=RunStatus.queued, agent="Invoice Agent") == [a.id]

    # A renamed agent keeps its runs under the new name and the old one.
    invoices.name = "Billing"
    db.add(AgentVersion(agent_id=invoices.id, name="Billing", version=2, config=invoices.config))
    db.commit()
    assert _ids(db, admin, agent="billing") == [a.id] and _ids(db, admin, agent="Invoice Agent") == [a.id]

    # Another user's runs never show, whatever the filter.
    token, _ = create_token(db, "bob")
    bob = user_for_token(db, token)
    db.commit()
    assert _ids(db, bob, q="invoice") == [] and _ids(db, bob, agent=invoices.id) == []

    items, total = runs.list_runs(db, admin, None, 2, 2, runs.RunFilter())
    assert total == 4 and [r.id for r in items] == [b.id, a.id]  # the total counts every match, not the page

    with pytest.raises(InvalidInput):
        _ids(db, admin, created_after=DAY + timedelta(days=2), created_before=DAY)


def test_the_api_filters_and_pages(api, pages) -> None:  # noqa: ANN001
    tag = uuid.uuid4().hex[:8]
    name = f"filter agent {tag}"
    agent = api.post("/api/v1/agents", json={"name": name}).json()
    body = {"start_url": pages.url + "/index.html", "policy": "replay", "actions": FINISH}
    plain = [api.post("/api/v1/runs", json={**body, "task": f"plain {tag} #{i}"}).json()["id"] for i in range(3)]
    by_agent = api.post(f"/api/v1/agents/{agent['id']}/runs", json={**body, "task": f"agent {tag}"})
    assert by_agent.status_code == 201, by_agent.text

    found = api.get("/api/v1/runs", params={"q": f"PLAIN {tag}", "limit": 2}).json()
    assert found["total"] == 3 and [r["id"] for r in found["items"]] == plain[::-1][:2]
    second = api.get("/api/v1/runs", params={"q": f"plain {tag}", "limit": 2, "offset": 2}).json()
    assert [r["id"] for r in second["items"]] == [plain[0]]
    for ref in (agent["id"], name.upper()):
        hit = api.get("/api/v1/runs", params={"agent": ref}).json()
        assert [r["id"] for r in hit["items"]] == [by_agent.json()["id"]], ref
    assert api.get("/api/v1/runs", params={"q": tag, "mode": "team"}).json()["total"] == 0
    assert api.get("/api/v1/runs", params={"q": tag, "mode": "direct"}).json()["total"] == 4
    model = by_agent.json()["model"]
    assert api.get("/api/v1/runs", params={"q": tag, "model": model}).json()["total"] == 4
    now = datetime.now(timezone.utc)
    assert api.get("/api/v1/runs", params={"q": tag, "created_after": (now + timedelta(hours=1)).isoformat()}
                   ).json()["total"] == 0
    assert api.get("/api/v1/runs", params={"q": tag, "created_after": (now - timedelta(hours=1)).isoformat(),
                                           "created_before": (now + timedelta(hours=1)).isoformat()}).json()["total"] == 4


@pytest.mark.parametrize("params, field", [
    ({"mode": "solo"}, "mode"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": "2024-13-40T00:00:00"}, "created_before"),
    ({"q": ""}, "q"),
    ({"q": "a\x00b"}, "q"),
    ({"agent": "x" * 101}, "agent"),
    ({"status": "sleeping"}, "status"),
    ({"created_after": "2024-03-02T00:00:00Z", "created_before": "2024-03-01T00:00:00Z"}, "created_after"),
])
def test_bad_filters_are_422_in_the_envelope(api, params, field) -> None:  # noqa: ANN001
    resp = api.get("/api/v1/runs", params=params)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["type"] == "validation_error" and field in error["message"]
