"""The migrations themselves (every other test starts from a copy of a database migrated once)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from sparkpilot.db.migrate import alembic_config, upgrade
from sparkpilot.db.models import Base


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_table_of_the_models(empty_db_url: str) -> None:
    assert _tables(empty_db_url) == set()
    upgrade(empty_db_url)
    head = ScriptDirectory.from_config(alembic_config(empty_db_url)).get_current_head()
    assert _revision(empty_db_url) == head
    assert _tables(empty_db_url) == set(Base.metadata.tables)


def test_downgrade_to_base_and_upgrade_again_round_trips(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    created = _tables(empty_db_url)
    command.downgrade(alembic_config(empty_db_url), "base")
    assert _tables(empty_db_url) == set()
    upgrade(empty_db_url)
    assert _tables(empty_db_url) == created
