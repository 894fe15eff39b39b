"""Pre-labeling and evaluation on a workspace (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labelpilot import review
from labelpilot.annotations import Annotation, Quad, text_corners
from labelpilot.errors import LabelPilotError
from labelpilot.evaluation.run import evaluate_model
from labelpilot.jobs import engine, kinds
from labelpilot.store import images as image_rows
from labelpilot.store import jobs as job_rows
from labelpilot.store import repo
from labelpilot.transfer import import_dataset, workspace_stats
from labelpilot.users import UserInfo
from tests.conftest import page_dataset, write_image

REVIEWER = UserInfo(1, "rita", "reviewer", True)


def autolabel(ws, images: str = "new", **params) -> engine.JobInfo:  # type: ignore[no-untyped-def]
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind="autolabel", user="test",
                          params={"model": "ocr", "images": images, **params})
    return engine.run_job(ws, job.id, kinds.HANDLERS)


def result_of(job: engine.JobInfo) -> dict[str, Any]:
    assert job.result is not None, job.error
    return job.result


def ident(a: Annotation) -> int:
    assert a.id is not None
    return a.id


def anns(ws, image_id: int) -> list[Annotation]:  # type: ignore[no-untyped-def]
    with ws.engine.connect() as conn:
        return repo.annotations_for_images(conn, [image_id]).get(image_id, [])


def test_autolabel_then_rerun_respects_people(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, page_dataset(tmp_path / "p"), format="images")
    write_image(tmp_path / "q" / "other.png", 200, 100, seed=3)
    import_dataset(ws, tmp_path / "q", format="images")
    job = autolabel(ws)
    assert job.status == "done" and result_of(job)["images"] == 2
    with ws.engine.connect() as conn:
        page_id, other_id = [r.id for r in repo.list_images(conn)]
    first = anns(ws, page_id)
    assert len(first) >= 6 and {a.status for a in first} == {"predicted"}
    assert {a.source for a in first} == {"model:ocr@ppocrv6-small"}
    assert workspace_stats(ws)["images_by_review_state"]["prelabeled"] >= 1
    # A person accepts the title, edits the second line, draws their own line where the
    # third proposal was, and rejects the fourth.
    title, second, third, fourth = first[:4]
    with ws.transaction() as conn:
        review.update_annotation(conn, annotation_id=ident(title), version=1,
                                 changes={"status": "accepted"}, user=REVIEWER)
        review.update_annotation(conn, annotation_id=ident(second), version=1,
                                 changes={"text": "fixed by hand"}, user=REVIEWER)
        review.delete_annotation(conn, annotation_id=ident(third), version=1, user=REVIEWER)
        mine = review.create_annotation(conn, image_id=page_id, user=REVIEWER, annotation=Annotation(
            label="text", shape=Quad(text_corners(third.shape)), text="my own line"))
        review.update_annotation(conn, annotation_id=ident(fourth), version=1,
                                 changes={"status": "rejected"}, user=REVIEWER)
        review.set_review_state(conn, image_id=other_id, state="done", user=REVIEWER)
    before_other = anns(ws, other_id)
    again = autolabel(ws, images="all")
    assert again.status == "done" and result_of(again)["images"] == 1  # the done image is skipped
    after = {a.id: a for a in anns(ws, page_id)}
    # people's work is untouched
    assert after[title.id].status == "accepted" and after[title.id].version == 2
    assert after[second.id].text == "fixed by hand"
    assert after[mine.id].text == "my own line"
    assert after[fourth.id].status == "rejected"
    predicted = [a for a in after.values() if a.status == "predicted"]
    # earlier proposals replaced, none where a person's or a rejected label is
    assert not {a.id for a in predicted} & {a.id for a in first}
    assert result_of(again)["covered"] >= 4
    assert len(predicted) == len(first) - 4
    assert anns(ws, other_id) == before_other


def test_a_bad_image_does_not_stop_the_job(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, page_dataset(tmp_path / "p"), format="images")
    write_image(tmp_path / "q" / "b.png", 120, 60, seed=9)
    import_dataset(ws, tmp_path / "q", format="images")
    with ws.engine.connect() as conn:
        rows = repo.list_images(conn)
    broken = next(r for r in rows if r.file_name == "b.png")
    blob = ws.blobs.path(broken.sha256, broken.suffix)
    good = blob.read_bytes()
    blob.write_bytes(b"garbage")  # the disk lost it after import
    job = autolabel(ws)
    assert job.status == "done" and job.done == 1
    assert len(result_of(job)["failed_images"]) == 1 and "b.png" in result_of(job)["failed_images"][0]
    blob.write_bytes(good)  # fixed: a new run picks up just that image
    retry = autolabel(ws)
    assert result_of(retry)["images"] == 1 and not result_of(retry)["failed_images"]


def test_nothing_to_do_is_said_plainly(make_workspace) -> None:
    ws = make_workspace(task="ocr")
    job = autolabel(ws)
    assert job.status == "done" and result_of(job)["images"] == 0


def test_eval_against_accepted_ground_truth(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, page_dataset(tmp_path / "p"), format="icdar", split="test")
    with pytest.raises(LabelPilotError, match="the val split has no accepted text lines"):
        evaluate_model(ws, model_name="ocr", split="val")
    r = evaluate_model(ws, model_name="ocr", split="test")
    for key in ("images", "lines", "det_precision", "det_recall", "det_hmean",
                "rec_line_accuracy", "rec_cer", "e2e_accept_rate"):
        assert key in r
    assert (r["images"], r["lines"]) == (1, 7)
    assert r["det_hmean"] >= 0.8 and r["det_recall"] >= 6 / 7
    assert 5 / 7 <= r["rec_line_accuracy"] <= 1 and 0 <= r["rec_cer"] < 0.2
    assert 4 / 7 <= r["e2e_accept_rate"] <= r["rec_line_accuracy"] + 1e-9


def test_a_resumed_autolabel_counts_what_the_first_run_did(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(task="ocr")
    for i in range(4):
        write_image(tmp_path / "imgs" / f"p{i}.png", 96, 64, seed=i)
    import_dataset(ws, tmp_path / "imgs", format="images")
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind="autolabel", user="test",
                          params={"model": "ocr", "images": "new"})
    # the first run pre-labeled two images and died: its items are recorded, and those
    # images are no longer `new`
    with ws.transaction() as conn:
        done_ids = [r.id for r in repo.list_images(conn)[:2]]
        for i in done_ids:
            image_rows.set_image(conn, i, review_state="prelabeled")
        job_rows.add_items(conn, job.id, [str(i) for i in done_ids])
        job_rows.set_job(conn, job.id, status="running", done=2, total=4)
    again = engine.run_job(ws, job.id, kinds.HANDLERS)
    assert again.status == "done" and (again.done, again.total) == (4, 4), again


def plate_crops(folder: Path, shared: Path, n: int) -> Path:
    lpr = shared / "datasets" / "lpr_plates"
    folder.mkdir(parents=True)
    for i, ln in enumerate((lpr / "test_rec_gt.txt").read_text(encoding="utf-8").splitlines()[:n]):
        (folder / f"plate{i:02d}.jpg").write_bytes((lpr / ln.split("\t")[0]).read_bytes())
    return folder


def test_whole_image_lines_pre_label_every_crop(make_workspace, tmp_path: Path,
                                                shared: Path) -> None:
    # cropped plates: the text detector misses some (small, 24 px high); read whole, each
    # image gets exactly one line covering it
    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, plate_crops(tmp_path / "p", shared, 12), format="images")
    found = result_of(autolabel(ws))
    assert found["lines"] == "detect"
    with ws.engine.connect() as conn:
        ids = [r.id for r in repo.list_images(conn)]
    detected = sum(len(anns(ws, i)) == 1 for i in ids)
    job = autolabel(ws, images="all", lines="whole-image")
    assert result_of(job)["lines"] == "whole-image"
    for i in ids:
        (a,) = [x for x in anns(ws, i) if x.status == "predicted"]
        assert text_corners(a.shape) == ((0, 0), (94, 0), (94, 24), (0, 24))
        assert a.text and a.source == "model:ocr@ppocrv6-small"
    assert detected < len(ids)  # what the mode is for: the detector missed some crops
    # the project's setting is the default; it is checked and kept in labelpilot.toml
    ws.config.text_lines = "whole-image"
    ws.save_config()
    from labelpilot.jobs.autolabel import plan_autolabel
    from labelpilot.workspace import Workspace

    assert plan_autolabel(ws, model="ocr")[1]["lines"] == "whole-image"
    assert Workspace.open(ws.root).config.text_lines == "whole-image"
    with pytest.raises(LabelPilotError, match="lines must be one of"):
        plan_autolabel(ws, model="ocr", lines="words")


def test_whole_image_lines_are_for_ocr(make_workspace, tmp_path: Path, shared: Path) -> None:
    from labelpilot.jobs.autolabel import plan_autolabel
    from labelpilot.models.catalogue import install
    from labelpilot.workspace import Workspace

    ws = make_workspace(task="detect", labels=["car"])
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    with pytest.raises(LabelPilotError, match="is for OCR models"):
        plan_autolabel(ws, model="yolox-nano", lines="whole-image")
    assert "lines" not in plan_autolabel(ws, model="yolox-nano")[1]
    with pytest.raises(LabelPilotError, match="text_lines is for OCR workspaces"):
        Workspace.create(tmp_path / "d", task="detect", text_lines="whole-image")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "labelpilot.toml").write_text(
        'name = "x"\ntask = "ocr"\ntext_lines = "words"\n')
    with pytest.raises(LabelPilotError, match="field 'text_lines' must be one of"):
        Workspace.open(tmp_path / "bad")


def test_text_lines_over_the_api(make_workspace, tmp_path: Path, shared: Path) -> None:
    import time

    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from tests.server.conftest import PASSWORD, add_users

    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, plate_crops(tmp_path / "p", shared, 4), format="images")
    add_users(ws)

    def token(name: str) -> dict[str, str]:
        t = client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
        return {"Authorization": f"Bearer {t.json()['access_token']}"}

    with TestClient(create_app(ws)) as client:
        admin, reviewer = token("admin"), token("reviewer")
        assert client.get("/api/project", headers=reviewer).json()["text_lines"] == "detect"
        assert client.patch("/api/project", headers=reviewer,
                            json={"text_lines": "whole-image"}).status_code == 403
        bad = client.patch("/api/project", headers=admin, json={"text_lines": "words"})
        assert bad.status_code == 422
        r = client.patch("/api/project", headers=admin, json={"text_lines": "whole-image"})
        assert r.status_code == 200 and r.json()["text_lines"] == "whole-image"
        assert 'text_lines = "whole-image"' in (ws.root / "labelpilot.toml").read_text()
        # a reviewer pre-labels; the project's setting is the default, `lines` overrides it
        job = client.post("/api/autolabel", headers=reviewer, json={"model": "ocr"}).json()
        assert job["params"]["lines"] == "whole-image"
        deadline = time.monotonic() + 60
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
            job = client.get(f"/api/jobs/{job['id']}", headers=reviewer).json()
        assert job["status"] == "done" and job["result"]["lines"] == "whole-image"
        with ws.engine.connect() as conn:
            for row in repo.list_images(conn):
                (a,) = anns(ws, row.id)
                assert text_corners(a.shape) == ((0, 0), (94, 0), (94, 24), (0, 24))
        bad = client.post("/api/autolabel", headers=reviewer,
                          json={"model": "ocr", "images": "all", "lines": "words"})
        assert bad.status_code == 422



def test_a_detection_project_has_no_text_lines_to_choose(make_workspace) -> None:
    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from tests.server.conftest import PASSWORD, add_users

    det = make_workspace(task="detect", labels=["car"])
    add_users(det)
    with TestClient(create_app(det)) as client:
        t = client.post("/api/auth/token", data={"username": "admin", "password": PASSWORD})
        bad = client.patch("/api/project", json={"text_lines": "whole-image"},
                           headers={"Authorization": f"Bearer {t.json()['access_token']}"})
        assert bad.status_code == 422 and "for OCR projects" in bad.json()["detail"]
