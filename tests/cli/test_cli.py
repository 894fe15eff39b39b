from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from labelpilot.cli import app
from tests.test_transfer import coco_dir

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_init_import_export_stats(tmp_path: Path, db_url: str | None) -> None:
    ws = tmp_path / "ws"
    extra = ["--database-url", db_url] if db_url else []
    code, out, _ = run("init", ws, "--task", "detect", "--labels", "cat,dog", "--json", *extra)
    assert code == 0 and json.loads(out)["labels"] == ["cat", "dog"]
    code, out, _ = run("import", ws, coco_dir(tmp_path / "c"), "--format", "coco", "--split",
                       "val", "--json")
    assert code == 0 and json.loads(out)["annotations_added"] == 6
    code, out, _ = run("stats", ws, "--json")
    s = json.loads(out)
    assert code == 0
    assert (s["images"], s["annotations"]) == (3, 6)
    for key in ("annotations_by_status", "annotations_by_source", "annotations_by_label",
                "images_by_review_state", "images_by_split"):
        assert key in s
    assert s["images_by_split"] == {"val": 3}
    code, out, _ = run("export", ws, tmp_path / "out", "--format", "yolo", "--json")
    assert code == 0 and json.loads(out)["annotations"] == 6
    assert len(list((tmp_path / "out" / "labels" / "val").glob("*.txt"))) == 3
    code, out, _ = run("stats", ws)
    assert code == 0 and "annotations by label" in out
    code, out, _ = run("split", ws, "--train", "2", "--val", "0", "--test", "1", "--json")
    assert code == 0 and json.loads(out)["by_split"] == {"test": 1, "train": 2}
    code, out, _ = run("split", ws, "--train", "0", "--val", "0", "--test", "0")
    assert code == 2 and "add up to 0" in out + _
    code, out, _ = run("split", ws)
    assert code == 0 and "assigned 3 images" in out and "class" in out


def test_user_errors_are_one_clear_message(tmp_path: Path) -> None:
    code, _, err = run("stats", tmp_path)
    assert code == 2 and "is not a LabelPilot workspace" in err and "Traceback" not in err
    run("init", tmp_path / "ws", "--task", "ocr")
    code, _, err = run("import", tmp_path / "ws", tmp_path / "nope", "--format", "coco")
    assert code == 2 and "does not exist" in err
    code, _, err = run("import", tmp_path / "ws", tmp_path, "--format", "pascal")
    assert code == 2 and "unknown format 'pascal'" in err and "coco" in err


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    subprocess.run([sys.executable, "-m", "labelpilot.cli", "init", str(tmp_path / "ws"),
                    "--task", "detect"], check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-m", "labelpilot.cli", "import", str(tmp_path / "ws"),
                        str(bad), "--format", "coco"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "bad.json: not valid JSON" in r.stderr and "Traceback" not in r.stderr


def test_demo_builds_a_workspace(tmp_path: Path) -> None:
    code, out, _ = run("demo", tmp_path / "demo")
    assert code == 0 and "demo (ocr): 12 images" in out
    code, out, _ = run("stats", tmp_path / "demo", "--json")
    s = json.loads(out)
    # reviewed labels on half, proposals to review on a quarter, a quarter unlabeled
    assert s["annotations_by_label"]["text"] == s["annotations"] > 18
    assert s["images_by_review_state"] == {"new": 9, "prelabeled": 3}
    assert s["images_by_split"] == {"train": 6, "unassigned": 6}
    assert s["annotations_by_status"]["predicted"] >= 6


def _demo(tmp_path: Path, project: str, name: str) -> tuple[dict, list]:  # type: ignore[type-arg]
    """`labelpilot demo --project`, then the workspace's stats and every annotation."""
    from labelpilot.store import repo
    from labelpilot.workspace import Workspace

    code, out, _ = run("demo", tmp_path / project, "--project", project)
    assert code == 0 and f"{name} ({project}): 12 images" in out
    ws = Workspace.open(tmp_path / project)
    with ws.engine.connect() as conn:
        s = repo.stats(conn)
        rows = repo.list_images(conn)
        anns = [a for v in repo.annotations_for_images(conn, [r.id for r in rows]).values() for a in v]
    ws.close()
    return s, anns


def test_demo_segmentation_project(tmp_path: Path) -> None:
    s, anns = _demo(tmp_path, "segment", "demo-parts")
    assert s["images_by_review_state"] == {"new": 9, "prelabeled": 3}
    assert set(s["annotations_by_label"]) == {"washer", "bracket", "plate"}
    # reviewed: washers as masks (their holes), the rest as polygons
    reviewed = [a for a in anns if a.status == "accepted"]
    assert {(a.label, a.shape.type) for a in reviewed} == {
        ("washer", "mask"), ("bracket", "polygon"), ("plate", "polygon")}
    # proposals: the graph cut's outline of each part, a washer's hole kept
    proposed = [a for a in anns if a.status == "predicted"]
    assert proposed and {a.source for a in proposed} == {"model:graphcut@1"}
    washers = [a for a in proposed if a.label == "washer"]
    assert washers and all(getattr(a.shape, "holes", ()) for a in washers)
    code, _, err = run("demo", tmp_path / "other", "--project", "nothing")
    assert code == 2 and "the demo project is one of ocr, segment, detect" in err


def test_demo_detection_project(tmp_path: Path) -> None:
    _, anns = _demo(tmp_path, "detect", "demo-parts-boxes")
    assert {a.shape.type for a in anns} == {"box"}
    proposed = [a for a in anns if a.status == "predicted"]
    # click to box found each part of a quarter of the images: boxes the size of parts
    assert len(proposed) >= 5 and {a.source for a in proposed} == {"model:graphcut@1"}
    for a in proposed:
        x1, y1, x2, y2 = a.shape.bbox()
        assert 30 <= x2 - x1 <= 130 and 30 <= y2 - y1 <= 130, (a.label, a.shape)


def test_users_add_and_list(tmp_path: Path, monkeypatch) -> None:
    from argon2 import PasswordHasher

    from labelpilot import users

    monkeypatch.setattr(users, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    run("init", tmp_path / "ws", "--task", "detect")
    r = runner.invoke(app, ["users", "add", str(tmp_path / "ws"), "--username", "ann",
                            "--role", "annotator", "--password-stdin"], input="long-password\n")
    assert r.exit_code == 0 and "Added ann (annotator)" in r.stdout
    r = runner.invoke(app, ["users", "add", str(tmp_path / "ws"), "--username", "bob",
                            "--role", "admin", "--password-stdin"], input="short\n")
    assert r.exit_code == 2 and "at least 8 characters" in r.stderr
    code, out, _ = run("users", "list", tmp_path / "ws", "--json")
    assert code == 0
    assert json.loads(out) == [{"username": "ann", "role": "annotator", "active": True}]


def test_jobs_run_from_the_cli(tmp_path: Path) -> None:
    from labelpilot.jobs import kinds
    from labelpilot.workspace import Workspace

    run("init", tmp_path / "ws", "--task", "detect")
    run("import", tmp_path / "ws", coco_dir(tmp_path / "c", 2), "--format", "coco")
    with Workspace.open(tmp_path / "ws") as ws, ws.transaction() as conn:
        job = kinds.submit(conn, kind="export", params={"format": "voc"}, user="cli")
    code, out, _ = run("jobs", "run", tmp_path / "ws", "--json")
    assert code == 0
    (result,) = json.loads(out)
    assert (result["id"], result["status"], result["done"]) == (job.id, "done", 2)
    assert (Path(result["result"]["path"]) / "Annotations").is_dir()
    code, out, _ = run("jobs", "list", tmp_path / "ws", "--json")
    assert json.loads(out)[0]["status"] == "done"
    code, out, _ = run("jobs", "run", tmp_path / "ws")
    assert code == 0 and "no queued or interrupted jobs" in out


def test_autolabel_eval_and_models_from_the_cli(tmp_path: Path) -> None:
    from tests.conftest import page_dataset

    run("init", tmp_path / "ws", "--task", "ocr", "--labels", "text")
    code, out, _ = run("autolabel", tmp_path / "ws")
    assert code == 0 and "Nothing to do" in out
    run("import", tmp_path / "ws", page_dataset(tmp_path / "p"), "--format", "icdar",
        "--split", "test")
    code, out, _ = run("eval", tmp_path / "ws", "--split", "test", "--json")
    assert code == 0 and json.loads(out)["lines"] == 7
    code, out, _ = run("autolabel", tmp_path / "ws", "--images", "all", "--json")
    job = json.loads(out)
    # every line is covered by the imported (accepted) ground truth: nothing proposed
    assert code == 0 and job["status"] == "done" and job["result"]["added"] <= 1
    code, out, _ = run("models", "list", tmp_path / "ws", "--json")
    assert code == 0 and json.loads(out)[0]["name"] == "ocr"


def test_gc_removes_what_a_killed_import_left(tmp_path: Path, db_url: str | None) -> None:
    import hashlib

    from labelpilot.store.blobs import TEMP_PREFIX
    from labelpilot.workspace import Workspace

    ws_dir = tmp_path / "ws"
    extra = ["--database-url", db_url] if db_url else []
    assert run("init", ws_dir, "--task", "detect", *extra)[0] == 0
    assert run("import", ws_dir, coco_dir(tmp_path / "c"), "--format", "coco")[0] == 0
    ws = Workspace.open(ws_dir)
    stored = sorted(p for p in ws.blobs.root.glob("*/*"))
    ws.close()
    # what an import killed between storing files and committing rows leaves behind
    orphan = b"not referenced by any row"
    sha = hashlib.sha256(orphan).hexdigest()
    (ws_dir / "blobs" / sha[:2]).mkdir(exist_ok=True)
    (ws_dir / "blobs" / sha[:2] / f"{sha}.png").write_bytes(orphan)
    (stored[0].parent / f"{TEMP_PREFIX}abc").write_bytes(b"half a file")
    code, out, _ = run("gc", ws_dir, "--json")
    assert code == 0 and json.loads(out) == {"blobs": 1, "temporary": 1,
                                              "bytes": len(orphan) + 11}
    assert sorted(p for p in (ws_dir / "blobs").glob("*/*")) == stored
    code, out, _ = run("gc", ws_dir)
    assert code == 0 and "removed 0 unreferenced image files" in out


def test_errors_print_user_data_as_text_and_no_traceback(tmp_path: Path) -> None:
    # Rich markup in a path is printed as it is
    code, _, stderr = run("stats", tmp_path / "no[/]such")
    assert code == 2 and "no[/]such" in stderr and "Traceback" not in stderr
    # a database URL's password is never printed; the extra's name survives as text
    code, _, stderr = run("init", tmp_path / "w", "--task", "detect", "--database-url",
                          "postgresql+nosuchdriver://bob:s3cret@db.example/x")
    assert code == 2 and "s3cret" not in stderr and "bob:***@db.example" in stderr
    assert "[postgres]" in stderr
    # a damaged archive is a user error, not a traceback
    assert run("init", tmp_path / "ws", "--task", "detect")[0] == 0
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    code, _, stderr = run("import", tmp_path / "ws", tmp_path / "broken.zip", "--format", "coco")
    assert code == 2 and "error:" in stderr and "Traceback" not in stderr, stderr


def test_labels_and_names_with_markup_print_as_they_are(tmp_path: Path) -> None:
    # Label Studio and COCO labels like "[/x]" or "[bold]" once broke the import's report
    # (MarkupError after the commit) and every later `stats`
    ws = tmp_path / "ws"
    assert run("init", ws, "--task", "detect")[0] == 0
    src = coco_dir(tmp_path / "c[red]", extra={"categories": [
        {"id": 1, "name": "[/x]"}, {"id": 2, "name": "[bold]dog"}]})
    code, out, err = run("import", ws, src, "--format", "coco")
    assert code == 0, err
    assert "New label classes: [/x], [bold]dog" in out and "c[red]" in out
    code, out, err = run("stats", ws)
    assert code == 0 and "[/x]" in out and "[bold]dog" in out, err
    code, out, err = run("export", ws, tmp_path / "out[/]", "--format", "coco")
    assert code == 0 and "out[/]" in out, err
