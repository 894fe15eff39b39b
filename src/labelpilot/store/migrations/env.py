"""Alembic environment: runs against the engine the workspace hands over.

On SQLite, foreign keys are switched off while migrating: SQLite changes a table by
copying it and dropping the old one, and with foreign keys on, dropping `images` would
cascade into `annotations`. They are checked again before the migration commits.
"""

from alembic import context

from labelpilot.store.tables import Base

config = context.config
engine = config.attributes["engine"]

def _pragma(connection, sql: str) -> None:  # type: ignore[no-untyped-def]
    # On the driver's connection, outside any transaction (the pragma is a no-op inside
    # one, and SQLAlchemy begins one before any statement it runs).
    connection.connection.driver_connection.execute(sql)


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=sqlite)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left dangling references: {broken[:5]}")
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()  # whatever is left open (nothing after a commit)
            _pragma(connection, "PRAGMA foreign_keys=ON")
