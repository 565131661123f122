"""The audit log: who did what, when. Rows are only ever added (the database refuses changes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sparkpilot.db.models import AuditEntry, User

CLI_ACTOR = "cli"


def record(session: Session, actor: User | str | None, action: str, target_type: str, target_id: object, /,
           **details: Any) -> None:
    """Add one entry by `actor` (a user, a service's name, or None: the command line) in the caller's transaction."""
    user = actor if isinstance(actor, User) else None
    name = user.name if user else (actor if isinstance(actor, str) else CLI_ACTOR)
    session.add(AuditEntry(user_id=user.id if user else None, actor=name, action=action, target_type=target_type,
                           target_id=str(target_id), details=details))


def list_entries(session: Session, action: str | None, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
    """A page of entries, newest first, optionally of one action (or an action prefix ending in '.', e.g. 'token.')."""
    where = []
    if action:
        where.append(AuditEntry.action.startswith(action) if action.endswith(".") else AuditEntry.action == action)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    rows = session.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return list(rows), total
