"""Split assignment (issue 16): a selection into one split, or ratios stratified by class so
that a rare class reaches every split; the same seed gives the same assignment."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from labelpilot.annotations import Annotation, Box
from labelpilot.errors import ForbiddenError, LabelPilotError
from labelpilot.formats.base import Dataset, DatasetItem
from labelpilot.splits import assign_splits
from labelpilot.users import UserInfo
from tests.conftest import write_image


def _workspace(make_workspace, tmp_path: Path):  # type: ignore[no-untyped-def]
    """40 images: 30 of 'common', 10 of 'rare' (3 of those also hold 'common'), 5 unlabeled."""
    from labelpilot.formats import get_format
    from labelpilot.transfer import import_dataset

    ws = make_workspace(labels=["common", "rare"])
    items = []
    for i in range(45):
        p = write_image(tmp_path / "src" / f"{i:02d}.png", 32, 24, seed=i)
        labels = ["common"] if i < 30 else ["rare"] if i < 40 else []
        if 27 <= i < 30:
            labels.append("rare")
        items.append(DatasetItem(p.name, path=p, width=32, height=24, annotations=[
            Annotation(label, Box(1, 1, 10, 10)) for label in labels]))
    get_format("coco").save(Dataset(items, ["common", "rare"]), tmp_path / "coco")
    import_dataset(ws, tmp_path / "coco", format="coco")
    return ws


def _splits(ws) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    from labelpilot.store import repo

    with ws.engine.connect() as conn:
        return {r.file_name: r.split for r in repo.list_images(conn, None)}


def test_ratios_stratified_by_class_and_repeatable(make_workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = _workspace(make_workspace, tmp_path)
    with ws.transaction() as conn:
        r = assign_splits(conn, user=None, ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    assert r["assigned"] == 45 and r["by_split"] == {"test": 9, "train": 27, "val": 9}
    # 'rare' (13 images) reaches every split in proportion; so do the unlabeled images
    shares = {"train": 0.6, "val": 0.2, "test": 0.2}
    for cls, n in (("rare", 13), ("common", 30)):
        got = r["by_class"][cls]
        assert sum(got.values()) == n
        assert all(abs(got[s] - n * share) <= 1 for s, share in shares.items()), (cls, got)
    assert set(r["by_class"]["(no label)"]) == {"train", "val", "test"}
    first = _splits(ws)
    assert Counter(first.values()) == {"train": 27, "val": 9, "test": 9}
    with ws.transaction() as conn:  # the same seed: the same assignment
        assign_splits(conn, user=None, ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    assert _splits(ws) == first
    # without stratification a rare class may miss a split; with it, it may not
    with ws.transaction() as conn:
        for seed in range(5):
            r = assign_splits(conn, user=None, ratios={"train": 0.8, "val": 0.1, "test": 0.1},
                              seed=seed)
            assert set(r["by_class"]["rare"]) == {"train", "val", "test"}, r


def test_a_selection_into_one_split_and_unassigned_only(make_workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = _workspace(make_workspace, tmp_path)
    from labelpilot.store import repo

    with ws.engine.connect() as conn:
        ids = [r.id for r in repo.list_images(conn, None)]
    reviewer = UserInfo(2, "rev", "reviewer", True)
    with ws.transaction() as conn:
        r = assign_splits(conn, user=reviewer, split="test", image_ids=ids[:5])
    assert r["assigned"] == 5 and r["by_split"] == {"test": 5}
    with ws.transaction() as conn:
        r = assign_splits(conn, user=reviewer, ratios={"train": 1}, only_unassigned=True)
    assert r["assigned"] == 40
    assert Counter(_splits(ws).values()) == {"train": 40, "test": 5}
    annotator = UserInfo(3, "ann", "annotator", True)
    with ws.transaction() as conn, pytest.raises(ForbiddenError):
        assign_splits(conn, user=annotator, split="val")
    for kw, msg in [({"split": "val", "ratios": {"train": 1}}, "either one split"),
                    ({"ratios": {"train": 0, "val": 0}}, "add up to 0"),
                    ({"ratios": {"holdout": 1}}, "unknown split 'holdout'"),
                    ({"split": "val", "image_ids": [999999]}, "no image 999999")]:
        with ws.transaction() as conn, pytest.raises(LabelPilotError, match=msg):
            assign_splits(conn, user=None, **kw)  # type: ignore[arg-type]
