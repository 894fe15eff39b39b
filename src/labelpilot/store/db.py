"""Engines and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from labelpilot.errors import WorkspaceError
from labelpilot.store import signals

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for `url`: SQLite in WAL mode with foreign keys on, or PostgreSQL."""
    try:
        if url.startswith("sqlite"):
            # Connections are cheap on SQLite; the server's thread pool may want 40 at once.
            engine = create_engine(url, connect_args={"timeout": 30}, pool_size=10,
                                   max_overflow=40)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
    except (ArgumentError, NoSuchModuleError) as e:
        raise WorkspaceError(f"cannot use database URL {safe_url(url)!r}: {e}",
                             hint="for PostgreSQL install the [postgres] extra") from None
    except ModuleNotFoundError as e:
        raise WorkspaceError(f"database driver missing: {e.name}",
                             hint="pip install 'labelpilot[postgres]'") from None
    return engine


# A write transaction on SQLite takes the database's write lock when it begins (BEGIN
# IMMEDIATE), not at its first write: otherwise a transaction that read before another
# process committed cannot write at all ("database is locked"), and a check-then-insert
# (an upload's "is this image stored?") races the other process. Reads begin deferred.
IMMEDIATE = "sqlite_immediate"


def _sqlite_begin(conn: Any) -> None:
    immediate = conn.get_execution_options().get(IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """`engine.begin()` for a write: on SQLite the write lock is taken at BEGIN, and the job
    signals the transaction noted are published once it has committed (PostgreSQL sends
    its own on commit: `store.signals`)."""
    with engine.execution_options(**{IMMEDIATE: True}).begin() as conn:
        pending = signals.note_pending(conn)
        try:
            yield conn
        finally:
            signals.forget_pending(conn)
    if pending:
        signals.signals_of(engine).publish(pending)


def safe_url(url: str) -> str:
    """The database URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # SQLAlchemy, not the driver, begins transactions (see _sqlite_begin): this also makes
    # SAVEPOINTs work.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    # 64 MiB of page cache (the default is 2 MiB): bulk imports touch four indexes at once.
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (a workspace made by an older version upgrades here)."""
    from alembic import command

    try:
        command.upgrade(alembic_config(engine), revision)
    except DBAPIError as e:
        raise WorkspaceError(f"cannot open the database at {engine.url!r}: {e.orig}",
                             hint="check the database URL and that the server is running") from None


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)
