"""Custom auto-label on large images with small objects (issue 17): trained on tiles, the
detector finds what whole-image training cannot, and pre-labels in the tiles it learnt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelpilot.errors import LabelPilotError
from labelpilot.models.catalogue import install
from labelpilot.models.registry import load_detector
from labelpilot.transfer import import_dataset
from labelpilot.workspace import Workspace
from tests.coco128 import bullseyes

pytest.importorskip("torch")

SIZE = (1600, 1200)


def _large_scenes(folder: Path, shared: Path, n: int, seed: int) -> Path:
    """`n` 1600 x 1200 scenes (a coco128 photo enlarged) with 4-7 small bullseyes (12-24 px:
    3-6 px once the whole scene is shrunk to a 416 px input), as a COCO file."""
    return bullseyes(folder, shared, n, seed, size=SIZE, per_image=(4, 8), radius=(6, 13),
                     name="s")


@pytest.fixture
def large(tmp_path: Path, shared: Path) -> Workspace:
    ws = Workspace.create(tmp_path / "ws", task="detect", labels=["bullseye"])
    for split, n, seed in (("train", 5, 1), ("val", 2, 2), ("test", 2, 3)):
        d = _large_scenes(tmp_path / split, shared, n, seed)
        import_dataset(ws, d / "a.json", format="coco", split=split, images_dir=d / "images")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    return ws


def test_tiles_find_small_objects_whole_images_lose(large: Workspace) -> None:
    from labelpilot.evaluation.run import evaluate_model
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer

    warned: list[str] = []
    whole = DetectTrainer(large, DetectTrainConfig(epochs=3, batch=4, minutes=None, name="whole",
                                                   eval_seconds=None), warn=warned.append).run()
    # shrunk to the input, the bullseyes are too small to learn: said, with what to do
    assert any("under 4 px" in w and "--tile" in w for w in warned)
    tiled = DetectTrainer(large, DetectTrainConfig(epochs=3, batch=4, minutes=None, name="tiled",
                                                   tile=416, eval_seconds=None)).run()
    assert tiled.tiling is not None and tiled.tiling["train_images"] == 5
    # 5 scenes of 4x3 tiles: every tile with a bullseye, and a few without
    assert 5 < tiled.tiling["train_tiles"] < 5 * 20
    assert whole.test is not None and tiled.test is not None
    print(f"test mAP50: whole images {whole.test['map50']:.3f}, tiles {tiled.test['map50']:.3f}")
    # the test split is scored as the model pre-labels: in its tiles
    assert tiled.test["tiling"] == {"tile": 416, "overlap": 0.2}
    assert whole.test["tiling"] is None
    assert tiled.test["map50"] >= 0.5 and tiled.test["map50"] > whole.test["map50"] + 0.3
    # the model keeps its tiles: pre-labeling and eval use them unless told otherwise
    model = load_detector("tiled", large.models_dir)
    assert model.default_tiling is not None and model.default_tiling.size == 416
    again = evaluate_model(large, model_name="tiled", split="test")
    assert again["map50"] == tiled.test["map50"]
    m = json.loads((large.models_dir / "tiled" / "manifest.json").read_text())
    assert m["preprocessing"]["tile"] == 416 and m["metrics"]["tiling"]["tile"] == 416
    # --tile auto: chosen from the boxes, said, and kept by the model
    said: list[str] = []
    auto = DetectTrainer(large, DetectTrainConfig(epochs=1, batch=4, minutes=None, name="auto",
                                                  tile="auto", eval_seconds=None),
                         warn=said.append).run()
    assert auto.tiling is not None and auto.tiling["chosen"] == "auto"
    assert any(w.startswith("--tile auto: a quarter of the boxes are under") and
               f"{auto.tiling['tile']} px tiles" in w for w in said)
    kept = load_detector("auto", large.models_dir).default_tiling
    assert kept is not None and kept.size == auto.tiling["tile"]


def test_a_tile_as_large_as_the_images_is_refused(large: Workspace) -> None:
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer

    with pytest.raises(LabelPilotError, match="not smaller than any image"):
        DetectTrainer(large, DetectTrainConfig(epochs=1, minutes=None, tile=1600)).run()
    with pytest.raises(LabelPilotError, match="tile is 64 to 16384"):
        DetectTrainer(large, DetectTrainConfig(epochs=1, minutes=None, tile=32)).run()
    assert not (large.models_dir / "custom-detector").exists()


def test_the_tile_chosen_from_the_boxes() -> None:
    from types import SimpleNamespace

    from labelpilot.train.detect import choose_tile

    def items(side: int, box: int, n: int = 8) -> list:
        image = SimpleNamespace(width=side, height=side * 3 // 4)
        return [(image, [((0, 0, box, box), "x")] * 3) for _ in range(n)]

    # 16 px boxes in 4000 px images: 1.7 px at a 416 px input; tiles keep them 12 px
    tile, why = choose_tile(items(4000, 16), (416, 416))
    assert tile == 544 and "under 16 px: 544 px tiles" in why
    # never a tile smaller than the network's input
    assert choose_tile(items(4000, 4), (416, 416))[0] == 416
    # boxes large enough on whole images: no tiles
    tile, why = choose_tile(items(1000, 100), (416, 416))
    assert tile is None and "no tiles needed" in why
    # tiny boxes in images no larger than the input: a tile would not be smaller
    tile, why = choose_tile(items(400, 8), (416, 416))
    assert tile is None and "not smaller than the images" in why
