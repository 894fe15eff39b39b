from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from labelpilot.errors import WorkspaceError
from labelpilot.store import db
from labelpilot.workspace import Workspace


def test_create_and_open(make_workspace) -> None:
    ws = make_workspace(task="ocr", labels=["text", " text", "logo"])
    assert ws.config.labels == ["text", "logo"]
    again = Workspace.open(ws.root)
    assert (again.config.name, again.config.task) == ("ws", "ocr")
    from labelpilot.store import repo

    with again.engine.connect() as conn:
        assert repo.label_names(conn) == ["text", "logo"]
    again.close()


def test_create_refuses_existing(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(WorkspaceError, match="exists and is not empty"):
        Workspace.create(tmp_path / "full", task="ocr")
    with pytest.raises(WorkspaceError, match="task must be one of"):
        Workspace.create(tmp_path / "new", task="caption")
    ws = Workspace.create(tmp_path / "ok", task="detect")
    ws.close()
    with pytest.raises(WorkspaceError, match="already a workspace"):
        Workspace.create(tmp_path / "ok", task="detect")


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not a LabelPilot workspace") as e:
        Workspace.open(tmp_path)
    assert "labelpilot init" in str(e.value.hint)
    (tmp_path / "labelpilot.toml").write_text('name = "x"\ntask = "dance"\n')
    with pytest.raises(WorkspaceError, match="field 'task' must be one of"):
        Workspace.open(tmp_path)
    (tmp_path / "labelpilot.toml").write_text('name = "x\n')
    with pytest.raises(WorkspaceError, match="not valid TOML"):
        Workspace.open(tmp_path)


def test_sqlite_wal_and_foreign_keys(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "w", task="detect")
    with ws.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    ws.close()


def test_env_var_points_at_another_database(tmp_path: Path, monkeypatch) -> None:
    other = tmp_path / "elsewhere.db"
    monkeypatch.setenv("LABELPILOT_DATABASE_URL", f"sqlite:///{other}")
    ws = Workspace.create(tmp_path / "w", task="detect")
    ws.close()
    assert other.exists() and not (tmp_path / "w" / "labelpilot.db").exists()


def test_old_workspace_upgrades_itself(make_workspace) -> None:
    ws = make_workspace()
    url = ws.database_url
    ws.close()
    engine = db.make_engine(url)
    db.downgrade(engine, "base")  # the state a workspace from before any migration is in
    assert "annotations" not in inspect(engine).get_table_names()
    engine.dispose()
    again = Workspace.open(ws.root)
    assert {"images", "annotations", "label_classes"} <= set(
        inspect(again.engine).get_table_names())
    again.close()


def test_migrations_match_the_tables(make_workspace) -> None:
    # Alembic's autogenerate diff between the migrated database and tables.py is empty.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from labelpilot.store.tables import Base

    ws = make_workspace()
    with ws.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_bad_database_url(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="cannot use database URL"):
        Workspace.create(tmp_path / "w", task="detect", database_url="nosuchdb://x")
    assert not (tmp_path / "w").exists()  # nothing half-made left behind


def test_upgrade_from_the_first_schema_keeps_the_data(make_workspace, tmp_path: Path) -> None:
    from labelpilot.transfer import import_dataset, workspace_stats
    from tests.test_transfer import coco_dir

    ws = make_workspace()
    import_dataset(ws, coco_dir(tmp_path / "c", 2), format="coco")
    before = workspace_stats(ws)
    url = ws.database_url
    ws.close()
    engine = db.make_engine(url)
    db.downgrade(engine, "0001")  # as a workspace made by the first release is
    assert "users" not in inspect(engine).get_table_names()
    engine.dispose()
    again = Workspace.open(ws.root)
    assert workspace_stats(again) == before
    assert {"users", "jobs", "audit_log"} <= set(inspect(again.engine).get_table_names())
    # columns added since are filled in for the rows already there (0007: name_key)
    from labelpilot.store import repo
    from labelpilot.store.names import natural_key

    with again.engine.connect() as conn:
        rows = repo.list_images(conn, None)
    assert rows and all(r.name_key == natural_key(r.file_name) for r in rows)
    again.close()


def first_uses_together(ws: Workspace, n: int = 8) -> tuple[list[object], list[BaseException]]:
    """`ws.engine` asked for by `n` threads at the same moment."""
    import threading

    errors: list[BaseException] = []
    engines: list[object] = []
    start = threading.Barrier(n)

    def first_use() -> None:
        start.wait()
        try:
            engines.append(ws.engine)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=first_use) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return engines, errors


def test_the_first_uses_of_the_database_from_many_threads_migrate_once(tmp_path: Path) -> None:
    # a server's first requests arrive together; Alembic's context is one global
    Workspace.create(tmp_path / "ws", task="detect", labels=["a"]).close()
    for _ in range(3):
        ws = Workspace.open(tmp_path / "ws")
        engines, errors = first_uses_together(ws)
        assert not errors, errors
        assert len({id(e) for e in engines}) == 1
        ws.close()
