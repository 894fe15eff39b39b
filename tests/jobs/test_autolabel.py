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
