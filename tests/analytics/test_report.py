"""The report's numbers against the store (direct SQL, SQLite and PostgreSQL), on a
workspace where proposals were made, accepted, edited, rejected and deleted by people."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import orjson
import pytest
from PIL import Image
from sqlalchemy import text

from labelpilot import review, splits
from labelpilot.analytics import dedup, quality
from labelpilot.analytics.report import ReportCache, build, to_html, write
from labelpilot.annotations import Annotation, Box
from labelpilot.proposals import store_proposals
from labelpilot.store import repo
from labelpilot.transfer import import_dataset
from labelpilot.users import UserInfo
from labelpilot.workspace import Workspace
from tests.conftest import write_image

ANNA = UserInfo(2, "anna", "annotator", True)
RITA = UserInfo(1, "rita", "reviewer", True)


def _box(x1: float, y1: float, x2: float, y2: float, label: str, *, score: float | None = None,
         source: str = "human", status: str = "accepted") -> Annotation:
    return Annotation(label=label, shape=Box(x1, y1, x2, y2), score=score, source=source,
                      status=status)


def scenario(ws: Workspace, tmp_path: Path) -> dict[str, int]:
    """Eight 160x120 images (one an exact copy of another under a second name, one a
    slightly brighter copy), two model versions' proposals, and a person's review."""
    src = tmp_path / "imgs"
    for i in range(6):
        write_image(src / f"img{i}.png", 160, 120, seed=i)
    (src / "copy_of_img0.png").write_bytes((src / "img0.png").read_bytes())
    arr = np.asarray(Image.open(src / "img1.png")).astype(np.int16) + 6
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(src / "brighter_img1.png")
    import_dataset(ws, src, format="images")
    with ws.transaction() as conn:
        ids = {Path(r.file_name).stem: r.id for r in repo.list_images(conn)}
        splits.assign_splits(conn, user=None, split="train",
                             image_ids=[ids["img0"], ids["img1"], ids["img2"]])
        splits.assign_splits(conn, user=None, split="val", image_ids=[ids["img3"]])
        v1, v2 = "model:det@1", "model:det@2"
        store_proposals(conn, image_id=ids["img0"], proposals=[
            _box(10, 10, 60, 60, "cat", score=0.95, source=v1, status="predicted"),
            _box(70, 10, 120, 60, "dog", score=0.85, source=v1, status="predicted"),
            _box(10, 70, 40, 100, "cat", score=0.35, source=v1, status="predicted"),
            _box(100, 70, 150, 110, "dog", score=0.55, source=v1, status="predicted")])
        store_proposals(conn, image_id=ids["img1"], proposals=[
            _box(5, 5, 100, 100, "dog", score=0.9, source=v2, status="predicted"),
            _box(110, 5, 150, 40, "cat", score=0.25, source=v2, status="predicted")])
        store_proposals(conn, image_id=ids["img2"], proposals=[
            _box(0, 0, 80, 80, "bird", score=0.75, source=v2, status="predicted")])
        # ground truth people imported (small and large objects)
        for a in (_box(1, 1, 9, 9, "bird"), _box(20, 20, 150, 115, "cat")):
            review.create_annotation(conn, image_id=ids["img3"], annotation=a, user=RITA)
    with ws.engine.connect() as conn:
        p = {(a.label, a.score): a for a in repo.annotations_for_images(
            conn, [ids["img0"], ids["img1"], ids["img2"]]).get(ids["img0"], [])}
        p1 = repo.annotations_for_images(conn, [ids["img1"]])[ids["img1"]]
        p2 = repo.annotations_for_images(conn, [ids["img2"]])[ids["img2"]]

    def aid(a: Annotation) -> int:
        assert a.id is not None
        return a.id

    with ws.transaction() as conn:
        # anna relabels the first cat as a dog and moves the 0.55 dog; draws a box it missed
        review.update_annotation(conn, annotation_id=aid(p["cat", 0.95]), version=1,
                                 changes={"label": "dog"}, user=ANNA)
        review.update_annotation(conn, annotation_id=aid(p["dog", 0.55]), version=1,
                                 changes={"shape": Box(95, 70, 150, 112)}, user=ANNA)
        mine = review.create_annotation(conn, image_id=ids["img0"], user=ANNA,
                                        annotation=_box(130, 20, 158, 50, "bird"))
        review.set_review_state(conn, image_id=ids["img0"], state="submitted", user=ANNA)
        # rita accepts the 0.85 dog, rejects the 0.35 cat, accepts anna's bird, finishes
        review.bulk_set_status(conn, image_id=ids["img0"], status="accepted", user=RITA,
                               annotation_ids=[aid(p["dog", 0.85]), aid(mine)])
        review.update_annotation(conn, annotation_id=aid(p["cat", 0.35]), version=1,
                                 changes={"status": "rejected"}, user=RITA)
        review.set_review_state(conn, image_id=ids["img0"], state="done", user=RITA)
        # image 1: the 0.25 cat is deleted, the 0.9 dog accepted as it is
        small = next(a for a in p1 if a.label == "cat")
        big = next(a for a in p1 if a.label == "dog")
        review.delete_annotation(conn, annotation_id=aid(small), version=1, user=RITA)
        review.update_annotation(conn, annotation_id=aid(big), version=1,
                                 changes={"status": "accepted"}, user=RITA)
        review.set_review_state(conn, image_id=ids["img1"], state="done", user=RITA)
    assert len(p2) == 1
    return ids


@pytest.fixture
def ws_with_review(make_workspace, tmp_path: Path) -> tuple[Workspace, dict[str, int]]:
    ws = make_workspace(task="detect", labels=["cat", "dog", "bird"])
    return ws, scenario(ws, tmp_path)


def q(ws: Workspace, sql: str) -> list[Any]:
    with ws.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_dataset_health_numbers_equal_the_store(ws_with_review) -> None:
    ws, ids = ws_with_review
    r = build(ws)
    per_class = r.panel("labels_per_class").data
    sql = dict(q(ws, "SELECT l.name, count(*) FROM annotations a JOIN label_classes l "
                     "ON l.id = a.label_id WHERE a.status <> 'rejected' GROUP BY l.name"))
    assert dict(zip(per_class["x"], per_class["totals"], strict=True)) == sql
    by_split = Counter({(lab, split or "unassigned"): n for lab, split, n in q(
        ws, "SELECT l.name, i.split, count(*) FROM annotations a JOIN label_classes l "
            "ON l.id = a.label_id JOIN images i ON i.id = a.image_id "
            "WHERE a.status <> 'rejected' GROUP BY l.name, i.split")})
    drawn = Counter({(lab, s): v for s, vals in per_class["series"].items()
                     for lab, v in zip(per_class["x"], vals, strict=True) if v})
    assert drawn == by_split
    # objects per image: every image counted once, each at its number of labels
    hist = r.panel("objects_per_image").data
    counts = dict(q(ws, "SELECT i.id, count(a.id) FROM images i LEFT JOIN annotations a "
                        "ON a.image_id = i.id AND a.status <> 'rejected' GROUP BY i.id"))
    expect = np.histogram(list(counts.values()), bins=hist["edges"])[0].tolist()
    assert hist["counts"] == expect and sum(expect) == 8
    # sizes: COCO's small / large by box area, as SQL computes it
    sizes = r.panel("object_sizes").data
    (small, large, total), = q(ws, "SELECT sum(CASE WHEN (x2-x1)*(y2-y1) < 1024 THEN 1 ELSE 0 "
                                   "END), sum(CASE WHEN (x2-x1)*(y2-y1) > 9216 THEN 1 ELSE 0 "
                                   "END), count(*) FROM annotations WHERE status <> 'rejected'")
    assert (sizes["small"], sizes["large"]) == (small, large)
    assert sum(sizes["counts"]) == total
    # images without labels
    empty = q(ws, "SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM annotations a "
                  "WHERE a.image_id = i.id AND a.status <> 'rejected') ORDER BY id")
    unl = r.panel("unlabeled_images").data
    assert unl["ids"] == [i for (i,) in empty] and unl["count"] == 4
    # the copy shares img0's bytes; the brighter copy's hash is a few bits from img1's
    dup = r.panel("near_duplicates").data
    assert dup["count"] == 2 and dup["images"] == 4
    assert sorted(dup["image_ids"]) == sorted([min(ids["img0"], ids["copy_of_img0"]),
                                               min(ids["img1"], ids["brighter_img1"])])
    assert r.hashed == 7  # seven contents, each hashed once
    (n_hashes,), = q(ws, "SELECT count(*) FROM image_hashes")
    assert n_hashes == 7 and build(ws).hashed == 0


def test_model_quality_numbers_equal_the_store(ws_with_review) -> None:
    ws, ids = ws_with_review
    r = build(ws)
    outcomes = r.panel("proposal_outcomes").data
    got = {(v, k): n for k, vals in outcomes["series"].items()
           for v, n in zip(outcomes["x"], vals, strict=True) if n}
    # the store: status per source, plus deletions of predicted proposals in the audit log
    rows = q(ws, "SELECT source, status, count(*) FROM annotations WHERE source LIKE 'model:%' "
                 "GROUP BY source, status")
    store: Counter[tuple[str, str]] = Counter()
    for source, status, n in rows:
        store[source.removeprefix("model:"), {"predicted": "pending"}.get(status, status)] += n
    deleted = [orjson.loads(b) for (b,) in q(ws, "SELECT before FROM audit_log "
                                                 "WHERE action = 'delete'")]
    for b in deleted:
        if b["source"].startswith("model:") and b["status"] == "predicted":
            store[b["source"].removeprefix("model:"), "rejected"] += 1
    # an accepted proposal whose label or shape a person changed counts as edited
    changed = {aid for aid, before, after in q(
        ws, "SELECT annotation_id, before, after FROM audit_log WHERE action = 'update'")
        if any(orjson.loads(before)[k] != orjson.loads(after)[k] for k in ("label", "shape"))}
    for aid, source, status in q(ws, "SELECT id, source, status FROM annotations "
                                     "WHERE source LIKE 'model:%'"):
        if aid in changed and status == "accepted":
            store[source.removeprefix("model:"), "accepted"] -= 1
            store[source.removeprefix("model:"), "edited"] += 1
    assert got == {k: v for k, v in store.items() if v}
    assert got == {("det@1", "accepted"): 1, ("det@1", "edited"): 2, ("det@1", "rejected"): 1,
                   ("det@2", "accepted"): 1, ("det@2", "rejected"): 1, ("det@2", "pending"): 1}
    # calibration: every reviewed proposal with a score in one bin
    cal = r.panel("calibration").data
    assert sum(cal["count"]) == 6
    # 0.9-1: the 0.95 cat became a dog (edited), the 0.9 dog accepted as it was
    assert cal["accepted"][9] == 0.5 and cal["count"][9] == 2
    assert cal["accepted"][8] == 1.0 and cal["accepted"][3] == 0.0 and cal["accepted"][7] is None
    # the class a person changed: cat proposed, dog kept
    conf = r.panel("class_confusion").data
    assert conf["values"][conf["rows"].index("cat")][conf["cols"].index("dog")] == 1
    assert conf["changed"] == 1
    # worst image: img0 (2 edited + 1 rejected + 1 missed)
    worst = r.panel("worst_images").data
    assert worst["image_ids"][0] == ids["img0"] and worst["rows"][0][1:4] == [4, 3, 1]
    assert r.panel("class_acceptance").data["overall"] == {"det@1": 0.25, "det@2": 0.5}


def test_labeling_progress_numbers_equal_the_store(ws_with_review) -> None:
    ws, _ids = ws_with_review
    r = build(ws)
    burn = r.panel("burn_down").data
    now = dict(q(ws, "SELECT review_state, count(*) FROM images GROUP BY review_state"))
    assert {k: v[-1] for k, v in burn["series"].items() if v[-1]} == now
    assert burn["series"]["done"][0] == 0  # nothing was done when the first image came
    # throughput: the annotations each person touched
    touched = dict(q(ws, "SELECT username, count(DISTINCT annotation_id) FROM audit_log "
                         "WHERE action IN ('create','update','delete','accepted','rejected') "
                         "GROUP BY username"))
    tp = r.panel("throughput").data
    assert dict(zip(tp["x"], tp["labels"], strict=True)) == touched
    # what rita made of anna's work: the relabelled cat and moved dog untouched by her
    # since (pending), the bird she accepted
    out = r.panel("review_outcomes").data
    anna = {k: v[out["x"].index("anna")] for k, v in out["series"].items()}
    assert anna == {"accepted": 1, "edited": 0, "rejected": 0, "pending": 2}


def test_since_limits_the_activity_not_the_dataset(ws_with_review) -> None:
    ws, _ = ws_with_review
    later = build(ws, since=datetime.now(UTC) + timedelta(days=1))
    assert later.panel("throughput").why_not is not None
    assert later.panel("labels_per_class").data == build(ws).panel("labels_per_class").data


def test_empty_workspace_draws_what_it_can_and_says_why_not(make_workspace, tmp_path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    r = build(ws)
    assert r.panels, "every panel is listed"
    for p in r.panels:
        assert (p.why_not is None) or (p.svg is None and p.why_not)
    assert {p.key for p in r.panels if p.why_not} >= {"labels_per_class", "burn_down",
                                                     "throughput", "proposal_outcomes"}
    html = to_html(r)
    assert "Not drawn: no images yet" in html
    # the built-in recognizer's dictionary is known even before any label
    assert r.panel("characters").why_not == "no transcriptions yet"
    html_path, json_path = write(r, tmp_path / "out" / "report.html")
    assert html_path.read_text().startswith("<!doctype html>")
    assert orjson.loads(json_path.read_bytes())["panels"][0]["key"] == r.panels[0].key


def test_every_drawable_figure_is_an_svg_with_its_title(ws_with_review) -> None:
    ws, _ = ws_with_review
    r = build(ws)
    drawn = [p for p in r.panels if p.why_not is None and p.kind != "table"]
    assert len(drawn) >= 9
    for p in drawn:
        assert p.svg is not None and p.svg.lstrip().startswith("<?xml")
        assert escape(p.title) in p.svg, p.key  # text stays text, escaped
        assert p.caption
    html = to_html(r)
    assert html.count("<svg") == len(drawn)
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing to fetch
    assert "<metadata>" not in html


def test_cache_rebuilds_only_when_the_data_changes(ws_with_review) -> None:
    ws, ids = ws_with_review
    cache = ReportCache(ws)
    first, built = cache.get()
    assert built
    again, built = cache.get()
    assert not built and again is first
    with ws.transaction() as conn:
        review.set_review_state(conn, image_id=ids["img2"], state="done", user=RITA,
                                pending="reject")
    third, built = cache.get()
    assert built and third.stamp != first.stamp
    assert third.panel("burn_down").data["series"]["done"][-1] == 3


def test_ocr_text_panels(make_workspace, tmp_path: Path) -> None:
    ws = make_workspace(task="ocr", labels=["text"])
    write_image(tmp_path / "i" / "a.png", 120, 40, seed=1)
    import_dataset(ws, tmp_path / "i", format="images")
    with ws.transaction() as conn:
        (image_id,) = [r.id for r in repo.list_images(conn)]
        store_proposals(conn, image_id=image_id, proposals=[
            Annotation(label="text", shape=Box(0, 0, 60, 20), text="L0T 8B", score=0.8,
                       source="model:ocr@ppocrv6-small", status="predicted"),
            Annotation(label="text", shape=Box(0, 20, 60, 40), text="ABC", score=0.9,
                       source="model:ocr@ppocrv6-small", status="predicted")])
    with ws.engine.connect() as conn:
        a, b = repo.annotations_for_images(conn, [image_id])[image_id]
    with ws.transaction() as conn:
        assert a.id is not None and b.id is not None
        review.update_annotation(conn, annotation_id=a.id, version=1,
                                 changes={"text": "LOT 88ᚠ"}, user=RITA)
        review.update_annotation(conn, annotation_id=b.id, version=1,
                                 changes={"status": "accepted"}, user=RITA)
    r = build(ws)
    chars = r.panel("characters").data
    assert "ᚠ" in chars["unknown"] and "L" not in chars["unknown"]
    lengths = r.panel("text_lengths").data
    assert sum(lengths["counts"]) == 2
    conf = r.panel("char_confusions").data
    # "L0T 8B" -> "LOT 88ᚠ": 0 read for O, and B for the run 8ᚠ (unequal runs stay whole)
    assert Counter((x, y) for x, y, _ in conf["pairs"]) == Counter([("0", "O"), ("B", "8ᚠ")])
    # line accuracy in use: one of the two lines kept its text
    assert r.panel("class_acceptance").data["overall"] == {"ocr@ppocrv6-small": 0.5}


def test_substitutions_pair_equal_runs_and_keep_the_rest() -> None:
    assert quality.substitutions("L0T", "LOT") == [("0", "O")]
    assert quality.substitutions("AB", "ABC") == [("", "C")]
    assert quality.substitutions("rn", "m") == [("rn", "m")]


def test_near_duplicate_groups_find_hashes_a_few_bits_apart() -> None:
    rng = np.random.default_rng(0)
    base = [int(x) for x in rng.integers(0, 2 ** 63, 50)]
    hashes = {f"h{i}": v for i, v in enumerate(base)}
    hashes["near"] = base[3] ^ 0b1011  # 3 bits
    hashes["far"] = base[7] ^ ((1 << 40) - 1)  # 40 bits
    found = dedup.groups(hashes)
    assert [(sorted(g), d) for g, d in found] == [(["h3", "near"], 3)]
    assert dedup.dhash(b"not an image") is None
    # every pair within 4 bits is found, whatever bits differ (bands guarantee it)
    for trial in range(50):
        bits = rng.choice(64, size=4, replace=False)
        other = base[0] ^ sum(1 << int(b) for b in bits)
        assert len(dedup.groups({"a": base[0], "b": other})) == 1, trial


def test_cli_report_writes_html_and_json(tmp_path: Path) -> None:
    from tests.cli.test_cli import run

    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["cat", "dog", "bird"])
    try:
        scenario(ws, tmp_path)
    finally:
        ws.close()
    code, out, err = run("report", tmp_path / "ws", "--out", tmp_path / "r" / "report.html",
                         "--json")
    assert code == 0, err
    data = orjson.loads(out)
    assert Path(data["html"]).read_text(encoding="utf-8").count("<figure") == len(data["panels"])
    assert orjson.loads(Path(data["json"]).read_bytes())["stamp"] == data["stamp"]
    code, out, err = run("report", tmp_path / "ws", "--since", "yesterday")
    assert code == 2 and "--since 'yesterday' is not a date" in err and "Traceback" not in err
