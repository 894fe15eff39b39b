"""Selections on a workspace (SQLite and PostgreSQL): what they store, the queue they
make, what they refuse."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelpilot import review
from labelpilot.active.select import SelectParams, plan_select, select_images
from labelpilot.errors import LabelPilotError, ModelNotFoundError
from labelpilot.jobs import engine, kinds
from labelpilot.models.catalogue import install
from labelpilot.review import ImageFilter
from labelpilot.store import images as image_rows
from labelpilot.store import repo, scores
from labelpilot.transfer import import_dataset
from labelpilot.users import UserInfo

ANNA = UserInfo(1, "anna", "annotator", True)


def coco_workspace(make_workspace: Any, tmp_path: Path, shared: Path, n: int = 10) -> Any:
    """A detection workspace: `n` coco128 images nobody has labeled, 2 reviewed ones (done,
    with their COCO boxes) and yolox-nano."""
    from tests.coco128 import coco_subset

    ws = make_workspace(task="detect", labels=["person"])
    sub = coco_subset(shared, tmp_path / "c", ["person"], 2, 0)
    import_dataset(ws, sub["train"] / "a.json", format="coco", split="train",
                   images_dir=sub["train"] / "images")
    with ws.transaction() as conn:
        for r in repo.list_images(conn):
            image_rows.set_image(conn, r.id, review_state="done")
    labeled = {p.name for p in (sub["train"] / "images").iterdir()}
    src = tmp_path / "pool"
    src.mkdir()
    pool = [p for p in sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))
            if p.name not in labeled][:n]
    for p in pool:
        shutil.copy(p, src / p.name)
    import_dataset(ws, src, format="images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    return ws


def run(ws: Any, **kw: Any) -> Any:
    """A selection run as a job; its result (it must be done)."""
    params = plan_select(ws, **kw)
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind="select", user="test", params=params.public())
    done = engine.run_job(ws, job.id, kinds.HANDLERS)
    assert done.status == "done" and done.result is not None, done.error
    return done.result


def queue(ws: Any) -> list[tuple[str, int]]:
    with ws.engine.connect() as conn:
        rows, _ = review.list_images(conn, filters=ImageFilter(), offset=0, limit=100)
    return [(r.file_name, r.queue_rank) for r, _, _ in rows]


def test_uncertainty_orders_the_queue_and_stores_its_scores(make_workspace, tmp_path: Path,
                                                            shared: Path) -> None:
    ws = coco_workspace(make_workspace, tmp_path, shared)
    r = run(ws, strategy="uncertainty", budget=4, model="yolox-nano")
    assert r["pool"] == 10 and r["model"] == "model:yolox-nano@1" and r["computed"] == 10
    picked = r["selected"]
    assert len(picked) == 4
    assert [s["score"] for s in picked] == sorted((s["score"] for s in picked), reverse=True)
    # the stored scores are what the selection ranked by: the 4 highest of the 10
    with ws.engine.connect() as conn:
        ids = {x.file_name: x.id for x in repo.list_images(conn)}
        stored = scores.scores_for(conn, "model:yolox-nano@1", list(ids.values()))
    assert len(stored) == 10
    by_name = {n: stored[i][0] for n, i in ids.items() if i in stored}
    best = sorted(by_name, key=lambda n: -by_name[n])[:4]
    assert [s["file_name"] for s in picked] == best
    assert all(s["score"] == pytest.approx(by_name[s["file_name"]], abs=1e-4) for s in picked)
    # the grid's default order and the labeling queue follow the selection
    order = queue(ws)
    assert [n for n, _ in order[:4]] == best and [k for _, k in order[:4]] == [1, 2, 3, 4]
    with ws.transaction() as conn:
        first = review.claim_next(conn, user=ANNA)
        second = review.claim_next(conn, user=UserInfo(2, "ben", "annotator", True))
    assert first is not None and second is not None
    assert (first.file_name, second.file_name) == (best[0], best[1])
    # a second selection reuses the stored scores and replaces the first's order
    again = run(ws, strategy="uncertainty", budget=2, model="yolox-nano")
    assert again["computed"] == 0
    # the claimed images left the pool: the next two most uncertain come first now
    assert [s["file_name"] for s in again["selected"]] == best[2:4]
    assert sum(1 for _, k in queue(ws) if k != 2_000_000_000) == 2


def test_diversity_and_hybrid_spread_out_and_random_is_seeded(make_workspace, tmp_path: Path,
                                                               shared: Path) -> None:
    ws = coco_workspace(make_workspace, tmp_path, shared, n=8)
    div = run(ws, strategy="diversity", budget=3, model="yolox-nano")
    # embeddings of the 8 pool images and the 2 reviewed ones, computed once
    assert div["computed"] == 10
    assert all("unlike the images labeled" in s["reason"].lower() for s in div["selected"])
    dists = [float(s["reason"].rsplit("distance ", 1)[1].rstrip(")")) for s in div["selected"]]
    assert dists == sorted(dists, reverse=True)  # each pick the farthest left
    assert run(ws, strategy="diversity", budget=3, model="yolox-nano")["computed"] == 0
    hyb = run(ws, strategy="hybrid", budget=2, model="yolox-nano")
    assert hyb["computed"] == 8  # the scores; the embeddings were there
    assert all("; unlike the images" in s["reason"] for s in hyb["selected"])
    a = run(ws, strategy="random", budget=3, seed=7)
    b = run(ws, strategy="random", budget=3, seed=7)
    c = run(ws, strategy="random", budget=3, seed=8)
    assert a["selected"] == b["selected"] and a["selected"] != c["selected"]
    assert a["model"] is None and all(s["score"] is None for s in a["selected"])


def test_bad_selections_are_refused_and_change_nothing(make_workspace, tmp_path: Path,
                                                       shared: Path) -> None:
    ws = coco_workspace(make_workspace, tmp_path, shared, n=3)
    run(ws, strategy="random", budget=2, seed=1)
    before = queue(ws)

    def refused(**kw: Any) -> str:
        with pytest.raises(LabelPilotError) as e:
            plan_select(ws, **kw)
        return e.value.message

    assert "larger than the 3 image(s)" in refused(strategy="random", budget=4)
    assert "name the detect model" in refused(strategy="uncertainty", budget=1)
    assert "is a ocr model" in refused(strategy="hybrid", budget=1, model="ocr")
    assert "strategy must be one of" in refused(strategy="loudest", budget=1)
    assert "1 image or more" in refused(strategy="random", budget=0)
    with pytest.raises(ModelNotFoundError):
        plan_select(ws, strategy="uncertainty", budget=1, model="nope")
    assert "no images left" in refused(strategy="random", budget=1, split="test")
    with ws.transaction() as conn:
        for r in repo.list_images(conn):
            image_rows.set_image(conn, r.id, review_state="done")
    assert "no images left to select from" in refused(strategy="random", budget=1)
    # a job whose pool shrank after it was planned fails with the reason, queue untouched
    with pytest.raises(LabelPilotError, match="fewer than the budget"):
        select_images(ws, SelectParams("random", 2))
    assert queue(ws) == before


def test_a_new_model_version_runs_the_last_selection_again(make_workspace, tmp_path: Path,
                                                           shared: Path) -> None:
    from labelpilot.active.select import rescoring

    ws = coco_workspace(make_workspace, tmp_path, shared, n=3)
    last = {"strategy": "hybrid", "budget": 5, "model": "yolox-nano", "split": None, "seed": 2}
    again = rescoring(ws, last, "yolox-nano")
    # the budget is cut to the 3 images left; the rest as it was
    assert again == SelectParams("hybrid", 3, "yolox-nano", None, 2)
    assert rescoring(ws, last, "custom-detector") is None  # another model's new version
    assert rescoring(ws, {**last, "strategy": "random", "model": None}, "yolox-nano") is None
    assert rescoring(ws, None, "yolox-nano") is None
    assert rescoring(ws, {**last, "split": "test"}, "yolox-nano") is None  # nothing left there
    # the re-run is a real selection: scored by the model's current version
    r = select_images(ws, again)
    assert len(r["selected"]) == 3 and r["model"] == "model:yolox-nano@1"



def test_whole_image_projects_score_each_crop_as_one_line(make_workspace, tmp_path: Path,
                                                          shared: Path, ocr_model) -> None:
    # cropped plates not pre-labeled yet: the project reads each image whole, so every
    # crop is scored on its one line, the ones the text detector misses included; and read
    # as pre-labeling reads it (upright or upside down, the surer kept): a crop stored
    # upside down is scored on its real text
    import cv2

    from labelpilot.active.uncertainty import score_lines
    from tests.jobs.test_autolabel import plate_crops

    ws = make_workspace(task="ocr", labels=["text"])
    crops = plate_crops(tmp_path / "p", shared, 12)
    for p in sorted(crops.iterdir())[::3]:
        crop = cv2.imread(str(p))
        assert crop is not None
        cv2.imwrite(str(p), cv2.rotate(crop, cv2.ROTATE_180))
    import_dataset(ws, crops, format="images")
    ws.config.text_lines = "whole-image"
    out = select_images(ws, plan_select(ws, strategy="uncertainty", budget=12))
    with ws.engine.connect() as conn:
        rows = repo.list_images(conn)
        stored = scores.scores_for(conn, "model:ocr@ppocrv6-small", [r.id for r in rows])
    assert len(stored) == 12 and all(parts["lines"] == 1 for _, parts, _ in stored.values())
    assert all("found no text" not in s["reason"] for s in out["selected"])
    missed = [r for r in rows if not ocr_model.read(ws.blobs.load_image(r))]
    assert missed  # what the mode is for: read whole, these are scored on their text
    low = ocr_model.settings.low_confidence
    turned = 0
    for r in rows:
        image = ws.blobs.load_image(r)
        assert stored[r.id][0] == pytest.approx(
            score_lines(ocr_model.read_whole(image), low_confidence=low).score, abs=1e-4)
        h, w = image.shape[:2]
        whole = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        turned += (ocr_model.read_whole(image)[0].text
                   != ocr_model.read_quads(image, [whole])[0].text)
    assert turned >= 2  # the upside-down crops: read upright only, they read otherwise


def _tiles() -> Any:
    """3x3 flat tiles of distinct colours: every click of the grid lands inside a tile the
    graph cut finds whole, a click moved a little too."""
    import numpy as np

    im = np.zeros((240, 330, 3), np.uint8)
    colours = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 220, 40), (200, 40, 200),
               (40, 210, 210), (120, 60, 20), (250, 250, 250), (20, 20, 20)]
    for k, c in enumerate(colours):
        im[k // 3 * 80:(k // 3 + 1) * 80, k % 3 * 110:(k % 3 + 1) * 110] = c
    return im


def test_segmentation_uncertainty_ranks_what_the_segmenter_doubts(make_workspace,
                                                                  tmp_path: Path,
                                                                  shared: Path) -> None:
    import cv2
    import numpy as np

    from labelpilot.active.uncertainty import score_masks
    from labelpilot.models.registry import load_segmenter

    src = tmp_path / "imgs"
    src.mkdir()
    cv2.imwrite(str(src / "tiles.png"), _tiles())
    noise = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (240, 330, 3),
                                                               dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(src / "noise.png"), noise)
    for p in sorted((shared / "datasets" / "grabcut" / "data_GT").iterdir())[:2]:
        shutil.copy(p, src / p.name)
    ws = make_workspace(task="segment", labels=["object"])
    import_dataset(ws, src, format="images")
    # the default segmenter here is the graph cut: no quality of its own, one mask a click
    out = run(ws, strategy="uncertainty", budget=4)
    assert out["model"] == "model:graphcut@1"
    names = [s["file_name"] for s in out["selected"]]
    assert names[0] == "noise.png" and names[-1] == "tiles.png"
    assert out["selected"][-1]["score"] == 0.0
    assert "sure of it" in out["selected"][-1]["reason"]
    assert "changes when its click moves" in out["selected"][0]["reason"]
    # the stored scores are the segmenter's own, image by image
    seg = load_segmenter("graphcut", None)
    with ws.engine.connect() as conn:
        rows = {r.file_name: r for r in repo.list_images(conn)}
        stored = scores.scores_for(conn, "model:graphcut@1", [r.id for r in rows.values()])
    for name, row in rows.items():
        direct = score_masks(seg, ws.blobs.load_rgb(row))
        assert stored[row.id][0] == pytest.approx(direct.score, abs=1e-4), name
    assert [n for n, _ in queue(ws)] == names
    # spreading out: the graph cut learnt no features, so the backbone LabelPilot ships
    # (the built-in OCR model's detector) embeds the images
    div = run(ws, strategy="diversity", budget=3)
    assert div["model"] == "model:graphcut@1" and div["computed"] == 4
    assert len({s["file_name"] for s in div["selected"]}) == 3
    assert all("unlike the images labeled" in s["reason"].lower()
               for s in div["selected"][1:])
    from labelpilot.active.select import Embedding

    backbone = Embedding("ocr").load("ocr", None, 1)
    with ws.engine.connect() as conn:
        stored_v = scores.embeddings_for(conn, backbone.key, [r.sha256 for r in rows.values()])
    assert len(stored_v) == 4
    for row in rows.values():
        want = backbone.embed(ws.blobs.load_image(row))
        assert np.allclose(np.frombuffer(stored_v[row.sha256], np.float32), want, atol=1e-5)
    hyb = run(ws, strategy="hybrid", budget=2)
    assert hyb["computed"] == 0  # the scores and the embeddings were there
    assert all("; unlike the images" in s["reason"] or "the first pick" in s["reason"]
               for s in hyb["selected"])
    with pytest.raises(LabelPilotError, match="an interactive segmenter"):
        plan_select(ws, strategy="uncertainty", budget=1, model="ocr")


def test_sam_mask_quality_and_disagreement_are_parts_of_the_score(tmp_path: Path) -> None:
    # SAM answers a click with three masks and their predicted IoU: both are parts of the
    # score (a randomly initialised tiny SAM of the real architecture: its doubt is real)
    pytest.importorskip("torch")
    from labelpilot.active.uncertainty import score_masks
    from labelpilot.models.convert.sam import convert_sam
    from labelpilot.models.registry import load_segmenter

    convert_sam(tmp_path, "tiny-sam", arch="sam_tiny", checkpoint=None)
    sam = load_segmenter("tiny-sam", tmp_path, threads=1)
    inf = score_masks(sam, _tiles()[:, :, ::-1].copy())
    assert set(inf.parts) == {"mask_quality", "mask_disagreement", "click_instability"}
    assert all(0.0 <= v <= 1.0 for v in inf.parts.values())
    assert inf.score == pytest.approx(sum(inf.parts.values()) / 3)


def test_a_sam_spreads_out_with_its_own_image_encoder(tmp_path: Path) -> None:
    """A SAM-family segmenter embeds with its image encoder: the embedding averaged over
    the cells the image covers (not the padding that makes the input square)."""
    pytest.importorskip("torch")
    import cv2

    from labelpilot.active.select import Embedding
    from labelpilot.models.convert.sam import convert_sam
    from labelpilot.models.registry import load_segmenter
    from labelpilot.models.sam import SamSegmenter
    from labelpilot.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws", task="segment", labels=["object"])
    convert_sam(ws.models_dir, "tiny-sam", arch="sam_tiny", checkpoint=None)
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(1)
    tiles = _tiles()
    cv2.imwrite(str(src / "tiles.png"), tiles)
    cv2.imwrite(str(src / "tiles-too.png"), np.clip(tiles.astype(int) + 3, 0, 255)
                .astype(np.uint8))
    cv2.imwrite(str(src / "noise.png"), rng.integers(0, 255, (300, 200, 3), dtype=np.uint8))
    import_dataset(ws, src, format="images")
    extractor = Embedding("segmenter").load("tiny-sam", ws.models_dir, 1)
    sam = load_segmenter("tiny-sam", ws.models_dir, threads=1)
    assert isinstance(sam, SamSegmenter) and extractor.key.endswith("#image_embeddings")
    # a 240 x 330 image in a square input: the rows below it are padding, left out
    emb = sam.embed(np.ascontiguousarray(tiles[..., ::-1]))
    g = emb.features.shape[-1]
    rows_in = int(np.ceil(240 * emb.scale * g / sam.input_size))
    assert rows_in < g
    want = emb.features[0, :, :rows_in, :].mean(axis=(1, 2))
    got = extractor.embed(tiles)
    assert np.allclose(got, want / np.linalg.norm(want), atol=1e-5)
    div = run(ws, strategy="diversity", budget=2)
    assert div["model"].startswith("model:tiny-sam@") and div["computed"] == 3
    # the two near-identical tile images are not both picked
    assert {s["file_name"] for s in div["selected"]} != {"tiles.png", "tiles-too.png"}
    ws.close()
