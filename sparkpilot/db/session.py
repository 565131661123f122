"""Engine and session factory, one per process and database URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from sparkpilot.settings import get_settings


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: settings.database_url, read now: settings may be reloaded)."""
    return _engine(url or get_settings().database_url)


@lru_cache
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # As many connections as the gateway has request threads (40): a busy gateway waits on SQLite's
        # write lock, never on the pool.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=10,
                               max_overflow=30)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            # WAL lets the gateway read while a worker writes; busy_timeout queues writers.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: no fsync per commit, still crash-safe
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    """A session factory bound to the engine for `url` (default: settings.database_url)."""
    return _sessionmaker(url or get_settings().database_url)


@lru_cache
def _sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
