"""Tokens (hashed, listed, revoked) and the audit log, on the real gateway and with the real CLI."""

from __future__ import annotations

import subprocess
import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from sparkpilot import audit
from sparkpilot.auth import get_or_create_user, hash_token
from sparkpilot.db.models import ApiToken, AuditEntry
from tests.helpers import BIN, wait_terminal


def test_admin_routes_refuse_everyone_else(user_api: httpx.Client) -> None:
    for method, path in (("GET", "/api/v1/admin/tokens"), ("POST", "/api/v1/admin/tokens"),
                         ("DELETE", "/api/v1/admin/tokens/1"), ("GET", "/api/v1/admin/audit")):
        resp = user_api.request(method, path, json={"user": "x"} if method == "POST" else None)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden", (method, path)
    assert httpx.get(str(user_api.base_url) + "/api/v1/admin/audit").status_code == 401


def test_tokens_are_created_listed_revoked_and_audited(api: httpx.Client, stack, pages) -> None:  # noqa: ANN001
    name = f"carol-{uuid.uuid4().hex[:6]}"
    created = api.post("/api/v1/admin/tokens", json={"user": name, "label": "laptop"})
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["token"].startswith("sp_") and (token["user"], token["admin"], token["revoked_at"]) == (name, False, None)
    listed = api.get("/api/v1/admin/tokens").json()
    mine = next(t for t in listed if t["id"] == token["id"])
    assert "token" not in mine and "token_hash" not in mine and mine["label"] == "laptop"
    assert token["token"] not in api.get("/api/v1/admin/tokens").text  # never shown again

    carol = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {token['token']}"}, timeout=30)
    run = carol.post("/api/v1/runs", json={"task": "audited", "start_url": pages.url + "/slow?ms=3000",
                                           "policy": "replay", "actions": [{"name": "finish", "answer": "x"}]}).json()
    assert carol.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 200
    assert wait_terminal(carol, run["id"])["status"] == "cancelled"

    revoked = api.delete(f"/api/v1/admin/tokens/{token['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert carol.get("/api/v1/runs").status_code == 401  # a revoked token authenticates nobody
    again = api.delete(f"/api/v1/admin/tokens/{token['id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "token_revoked"
    assert api.delete("/api/v1/admin/tokens/999999").status_code == 404
    configured = next(t for t in listed if t["label"] == "SPARKPILOT_ADMIN_TOKEN")
    resp = api.delete(f"/api/v1/admin/tokens/{configured['id']}")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "admin_token"
    assert api.post("/api/v1/admin/tokens", json={"user": ""}).status_code == 422

    entries = api.get("/api/v1/admin/audit", params={"limit": 500}).json()["items"]
    trail = [(e["actor"], e["action"], e["target_id"]) for e in entries
             if e["target_id"] in (str(token["id"]), run["id"])]
    assert trail[::-1] == [("admin", "token.created", str(token["id"])), (name, "run.created", run["id"]),
                           (name, "run.cancel_requested", run["id"]), ("admin", "token.revoked", str(token["id"]))]
    tokens_only = api.get("/api/v1/admin/audit", params={"action": "token."}).json()["items"]
    assert tokens_only and all(e["action"].startswith("token.") for e in tokens_only)
    carol.close()


def test_the_cli_lists_and_revokes_tokens(stack) -> None:  # noqa: ANN001
    env = stack.env
    made = subprocess.run([str(BIN / "sparkpilot"), "token", "create", "--user", "dave", "--label", "cli"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0
    secret = made.stdout.strip().splitlines()[-1]
    listing = subprocess.run([str(BIN / "sparkpilot"), "token", "list"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert listing.returncode == 0 and "dave" in listing.stdout and secret not in listing.stdout
    row_id = max(int(line.split("│")[1]) for line in listing.stdout.splitlines()
                 if "dave" in line and "│" in line)
    revoke = subprocess.run([str(BIN / "sparkpilot"), "token", "revoke", str(row_id)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert revoke.returncode == 0, revoke.stderr
    assert httpx.get(stack.base_url + "/api/v1/runs", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    twice = subprocess.run([str(BIN / "sparkpilot"), "token", "revoke", str(row_id)], env=env, capture_output=True,
                           text=True, timeout=60)
    assert twice.returncode == 1 and "already revoked" in twice.stderr


def test_the_audit_log_is_append_only_in_the_database(db) -> None:  # noqa: ANN001
    user = get_or_create_user(db, "erin")
    audit.record(db, user, "run.created", "run", "r1", mode="direct")
    db.commit()
    entry = db.query(AuditEntry).one()
    assert (entry.actor, entry.action, entry.details) == ("erin", "run.created", {"mode": "direct"})
    # The ways around row triggers too: SQLite's INSERT OR REPLACE (deletes without a DELETE trigger), TRUNCATE.
    sneaky = (sa.text("INSERT OR REPLACE INTO audit_log (id, at, actor, action, target_type, target_id, details) "
                      "VALUES (:id, CURRENT_TIMESTAMP, 'mallory', 'x', 'x', 'x', '{}')").bindparams(id=entry.id)
              if db.bind.dialect.name == "sqlite" else sa.text("TRUNCATE audit_log"))
    for statement in (sa.update(AuditEntry).values(actor="mallory"), sa.delete(AuditEntry), sneaky):
        with pytest.raises(DBAPIError, match="append-only"):
            db.execute(statement)
            db.flush()
        db.rollback()
    assert db.query(AuditEntry).one().actor == "erin"
    # Tokens are stored as SHA-256 only.
    row = ApiToken(user_id=user.id, token_hash=hash_token("sp_secret"), label="x")
    db.add(row)
    db.commit()
    assert "sp_secret" not in str([c for c in db.execute(sa.select(ApiToken.__table__)).all()])


@pytest.mark.security
def test_a_rotated_admin_token_revokes_the_old_one(base_env, tmp_path) -> None:  # noqa: ANN001
    """Changing SPARKPILOT_ADMIN_TOKEN and restarting: the old value stops working; a token may not pose as it."""
    from tests.helpers import in_process_gateway, migrated

    env = dict(base_env, DATABASE_URL=f"sqlite:///{tmp_path / 'rot.db'}", SPARKPILOT_WORKSPACE_DIR=str(tmp_path / "ws"))
    migrated(env["DATABASE_URL"])
    old, new = "sp_rotation_old_" + "a" * 16, "sp_rotation_new_" + "b" * 16
    for token in (old, new):
        # The app's start-up (lifespan) registers the admin token, as a restarted gateway's does.
        with in_process_gateway(dict(env, SPARKPILOT_ADMIN_TOKEN=token), token) as gateway:
            got = {t: gateway.get("/api/v1/runs", headers={"Authorization": f"Bearer {t}"}).status_code
                   for t in (old, new)}
            if token == old:
                assert got == {old: 200, new: 401}
                posing = gateway.post("/api/v1/admin/tokens", json={"user": "eve", "label": "SPARKPILOT_ADMIN_TOKEN"})
                assert posing.status_code == 422 and posing.json()["error"]["code"] == "reserved_label"
            else:
                assert got == {old: 401, new: 200}, got
                audit = gateway.get("/api/v1/admin/audit", params={"action": "token.revoked"}).json()["items"]
                assert [e["details"].get("reason") for e in audit] == ["SPARKPILOT_ADMIN_TOKEN rotated"]


def test_a_short_admin_token_is_refused_outside_dev(settings_override, monkeypatch) -> None:  # noqa: ANN001
    from pydantic import ValidationError

    from sparkpilot.settings import GatewaySettings

    monkeypatch.setenv("SPARKPILOT_DEPLOYMENT", "prod")
    monkeypatch.setenv("SPARKPILOT_ADMIN_TOKEN", "short-secret")
    with pytest.raises(ValidationError, match="at least 20"):
        GatewaySettings()
