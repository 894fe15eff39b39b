"""Detector plug-ins on real COCO images, and the mAP evaluator against pycocotools."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from labelpilot.errors import ModelError
from labelpilot.evaluation.detect import DetBox, GtBox, evaluate_detections
from labelpilot.models.catalogue import install
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.registry import load_detector
from tests.imaging import read_bgr

DETECTORS = ("yolox-nano", "nanodet-m", "picodet-xs")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import SHARED

    d = tmp_path_factory.mktemp("models")
    for name in (*DETECTORS, "person-detector"):
        install(d, name, str(SHARED / "models"))
    return d


def coco(shared: Path, n: int) -> tuple[list[Path], dict, dict[int, list[dict]]]:
    root = shared / "datasets" / "coco128"
    j = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    files = sorted((root / "train2017").glob("*.jpg"))[:n]
    anns: dict[int, list[dict]] = {}
    for a in j["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    return files, j, anns


@pytest.mark.parametrize("name", DETECTORS)
def test_detectors_find_the_objects_of_a_coco_image(models: Path, shared: Path, name: str) -> None:
    files, _j, _anns = coco(shared, 1)
    img = read_bgr(files[0])  # bowls of food: bowl and broccoli
    m = load_detector(name, models)
    got = m.predict(img)
    assert got and all(a.source == f"model:{name}@1" and a.status == "predicted" for a in got)
    labels = {a.label for a in got}
    assert {"bowl", "broccoli"} <= labels
    # grey, BGRA and 16-bit versions of the image are read too
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    deep = img.astype(np.uint16) * 257
    for variant in (grey, bgra, deep):
        assert m.predict(variant), name


def test_class_thresholds_and_a_wrong_layout(models: Path, tmp_path: Path, shared: Path) -> None:
    files, _, _ = coco(shared, 1)
    img = read_bgr(files[0])
    path = models / "yolox-nano" / "manifest.json"
    m = ModelManifest.load(path)
    m.preprocessing["class_thresholds"] = {"bowl": 0.99}
    m.name = "strict-yolox"
    m.files["model"].path = str(models / "yolox-nano" / m.files["model"].path)
    (tmp_path / "strict-yolox").mkdir()
    (tmp_path / "strict-yolox" / "manifest.json").write_bytes(m.to_json())
    labels = {a.label for a in load_detector("strict-yolox", tmp_path).predict(img)}
    assert "bowl" not in labels and "broccoli" in labels
    m.preprocessing = {**m.preprocessing, "layout": "yolov8", "class_thresholds": {}}
    m.name = "wrong"
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "manifest.json").write_bytes(m.to_json())
    with pytest.raises(ModelError, match=r"outputs \[\[1, 3549, 85\]\] do not fit the 'yolov8'"):
        load_detector("wrong", tmp_path)


def test_map_matches_pycocotools(models: Path, shared: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    files, j, anns = coco(shared, 24)
    ids = {im["file_name"]: im["id"] for im in j["images"]}
    names = {c["id"]: c["name"] for c in j["categories"]}
    cat_of = {v: k for k, v in names.items()}
    m = load_detector("yolox-nano", models)
    per_image, results = [], []
    for f in files:
        iid = ids[f.name]
        dets = [DetBox(a.shape.bbox(), a.label, float(a.score or 0)) for a in
                m.predict(read_bgr(f))]
        gts = [GtBox((a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                      a["bbox"][1] + a["bbox"][3]), names[a["category_id"]], bool(a["iscrowd"]))
               for a in anns.get(iid, [])]
        per_image.append((dets, gts))
        for d in dets:
            x1, y1, x2, y2 = d.box
            results.append({"image_id": iid, "category_id": cat_of[d.label],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": d.score})
    ours = evaluate_detections(per_image)
    gt = COCO()
    keep = {ids[f.name] for f in files}
    gt.dataset = {"images": [im for im in j["images"] if im["id"] in keep],
                  "annotations": [a for a in j["annotations"] if a["image_id"] in keep],
                  "categories": j["categories"]}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(results), "bbox")
    ev.params.imgIds = sorted(keep)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ours["map50_95"] == pytest.approx(ev.stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(ev.stats[1], abs=1e-6)
    assert 0 < ours["accept_rate"] < 1 and ours["per_class"]["person"]["instances"] > 0


def test_cli_autolabel_and_eval_with_a_detector(tmp_path: Path, shared: Path,
                                                db_url: str | None) -> None:
    """coco128's first images with their COCO labels as the test split; a catalogue
    detector pre-labels the other images and is evaluated against the ground truth."""
    from tests.cli.test_cli import run

    files, j, _anns = coco(shared, 8)
    keep = {im["id"] for im in j["images"] if im["file_name"] in {f.name for f in files}}
    src = tmp_path / "coco"
    (src / "images").mkdir(parents=True)
    for f in files:
        (src / "images" / f.name).write_bytes(f.read_bytes())
    sub = {"images": [im for im in j["images"] if im["id"] in keep],
           "annotations": [a for a in j["annotations"] if a["image_id"] in keep],
           "categories": j["categories"]}
    (src / "annotations.json").write_text(json.dumps(sub))
    ws = tmp_path / "ws"
    extra = ["--database-url", db_url] if db_url else []
    assert run("init", ws, "--task", "detect", *extra)[0] == 0
    code, _, err = run("import", ws, src / "annotations.json", "--format", "coco", "--split",
                       "test", "--images-dir", src / "images")
    assert code == 0, err
    code, _, err = run("models", "add", ws, "yolox-nano", "--from", shared / "models")
    assert code == 0, err
    code, out, err = run("eval", ws, "--model", "yolox-nano", "--split", "test", "--json")
    assert code == 0, err
    r = json.loads(out)
    for k in ("images", "map50", "map50_95", "accept_rate", "per_class"):
        assert k in r
    assert r["images"] == 8 and 0.2 < r["map50"] <= 1 and r["map50_95"] < r["map50"]
    code, out, _ = run("eval", ws, "--model", "yolox-nano", "--split", "test")
    assert code == 0 and "mAP50" in out
    # pre-label: proposals of the model, next to (not over) the imported labels
    extra_img = sorted((shared / "datasets" / "coco128" / "train2017").glob("*.jpg"))[20]
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / extra_img.name).write_bytes(extra_img.read_bytes())
    assert run("import", ws, tmp_path / "new", "--format", "images")[0] == 0
    code, out, err = run("autolabel", ws, "--model", "yolox-nano", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["kind"] == "autolabel" and job["result"]["added"] > 0


def test_class_map_by_name_and_its_errors(tmp_path: Path, shared: Path) -> None:
    from tests.cli.test_cli import run

    ws = tmp_path / "ws"
    assert run("init", ws, "--task", "detect", "--labels", "dish,vegetable")[0] == 0
    files, _, _ = coco(shared, 1)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / files[0].name).write_bytes(files[0].read_bytes())
    assert run("import", ws, tmp_path / "img", "--format", "images")[0] == 0
    assert run("models", "add", ws, "yolox-nano", "--from", shared / "models")[0] == 0
    code, _, err = run("autolabel", ws, "--model", "yolox-nano", "--map", "bowl=plate")
    assert code != 0 and "'plate', which do not exist" in err and "dish, vegetable" in err
    code, _, err = run("autolabel", ws, "--model", "yolox-nano", "--map", "bowls=dish")
    assert code != 0 and "'bowls', which the model does not have" in err
    code, out, err = run("autolabel", ws, "--model", "yolox-nano", "--map", "bowl=dish",
                         "--map", "broccoli=vegetable", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["result"]["added"] > 0 and job["result"]["dropped_unmapped"] > 0
    code, out, _ = run("stats", ws, "--json")
    assert set(json.loads(out)["annotations_by_label"]) == {"dish", "vegetable"}


def test_class_map_can_drop_a_same_named_class() -> None:
    from labelpilot.annotations import Annotation, Box
    from labelpilot.proposals import LabelMap

    m = LabelMap(["person", "car", "truck"], ["person", "car"], {"person": "", "truck": "car"})
    assert m.table == {"car": "car", "truck": "car"}
    anns = [Annotation(label=n, shape=Box(0, 0, 5, 5)) for n in ("person", "car", "truck")]
    assert [a.label for a in m.apply(anns)] == ["car", "car"] and m.dropped == 1


def test_eval_names_classes_as_prelabeling_would(tmp_path: Path, shared: Path) -> None:
    from tests.cli.test_cli import run

    # the project calls COCO's bowls "dish": without the map no dish is found
    files, j, anns = coco(shared, 1)
    im = next(i for i in j["images"] if i["file_name"] == files[0].name)
    bowl = next(c["id"] for c in j["categories"] if c["name"] == "bowl")
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "images" / files[0].name).write_bytes(files[0].read_bytes())
    (tmp_path / "d" / "a.json").write_text(json.dumps({
        "images": [im], "categories": [{"id": bowl, "name": "dish"}],
        "annotations": [a for a in anns[im["id"]] if a["category_id"] == bowl]}))
    ws = tmp_path / "ws"
    assert run("init", ws, "--task", "detect", "--labels", "dish")[0] == 0
    assert run("import", ws, tmp_path / "d" / "a.json", "--format", "coco", "--images-dir",
               tmp_path / "d" / "images")[0] == 0
    assert run("models", "add", ws, "yolox-nano", "--from", shared / "models")[0] == 0
    code, out, err = run("eval", ws, "--model", "yolox-nano", "--json")
    assert code == 0, err
    assert json.loads(out)["per_class"]["dish"]["ap50"] == 0
    code, out, err = run("eval", ws, "--model", "yolox-nano", "--map", "bowl=dish", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["per_class"]["dish"]["ap50"] > 0.5 and got["accept_rate"] > 0
    code, _, err = run("eval", ws, "--model", "yolox-nano", "--map", "bowl=plate")
    assert code != 0 and "'plate', which do not exist" in err


def test_eval_reports_map_by_the_coco_protocol_on_coco128(tmp_path: Path, shared: Path) -> None:
    """`eval` scores every detection down to 0.001 (100 per image), as pycocotools and every
    paper do: yolox-nano on all of coco128 gives pycocotools' 0.516 / 0.336 (0.357 mAP50 at
    the display threshold before). The accept rate counts only what the model shows."""
    from labelpilot.evaluation.run import evaluate_model
    from labelpilot.transfer import import_dataset
    from labelpilot.workspace import Workspace

    root = shared / "datasets" / "coco128"
    # SQLite only: the store is not what this measures (and 128 images take a while)
    ws = Workspace.create(tmp_path / "ws", task="detect")
    import_dataset(ws, root / "annotations" / "instances_train2017.json", format="coco",
                   split="test", images_dir=root / "train2017")
    install(ws.models_dir, "yolox-nano", str(shared / "models"))
    r = evaluate_model(ws, model_name="yolox-nano", split="test")
    assert r["images"] == 128
    assert r["map50"] == pytest.approx(0.5159, abs=0.0015)
    assert r["map50_95"] == pytest.approx(0.3365, abs=0.0015)
    assert "0.001" in r["protocol"]
    assert 0.2 < r["accept_rate"] < 0.8
    ws.close()


def test_a_detection_the_model_does_not_show_counts_for_map_not_the_accept_rate() -> None:
    gt = [GtBox((0, 0, 10, 10), "a", False)]
    shown = evaluate_detections([([DetBox((0, 0, 10, 10), "a", 0.9)], gt)])
    hidden = evaluate_detections([([DetBox((0, 0, 10, 10), "a", 0.1, shown=False)], gt)])
    assert shown["map50"] == hidden["map50"] == 1.0
    assert (shown["accept_rate"], hidden["accept_rate"]) == (1.0, 0.0)


def test_tiles_cover_the_image_flush_with_its_edges() -> None:
    from labelpilot.models.detect import Tiling

    t = Tiling(640, 0.2)
    wins = t.windows(2000, 700)
    assert wins[0] == (0, 0, 640, 640) and wins[-1] == (1360, 60, 2000, 700)
    assert {w[2] - w[0] for w in wins} == {640} and {w[3] - w[1] for w in wins} == {640}
    xs = sorted({w[0] for w in wins})
    assert all(b - a <= 512 for a, b in itertools.pairwise(xs))  # 20% overlap at least
    assert Tiling(640).windows(600, 400) == [(0, 0, 600, 400)]
    for bad in (dict(size=10), dict(size=640, overlap=0.95)):
        with pytest.raises(ModelError):
            Tiling(**bad)  # type: ignore[arg-type]


def test_tiled_detection_finds_the_small_people_whole_image_detection_misses(
        models: Path, shared: Path) -> None:
    """A 2560 x 1440 bench of coco128 images at half size: the people are 10-100 px high,
    too small once the whole image is shrunk to 416 px; 640 px tiles find them."""
    from labelpilot.models.detect import Tiling
    from tests.coco128 import bench_of_small_people, share_found

    canvas, people = bench_of_small_people(shared)
    m = load_detector("yolox-nano", models)
    person = m.manifest.labels.index("person")

    def found(tiling: Tiling | None) -> np.ndarray:
        d = m.detect(canvas, tiling=tiling)
        return d.boxes[d.classes == person]

    whole, tiled = share_found(found(None), people), share_found(found(Tiling(640, 0.2)), people)
    assert len(people) > 40
    assert tiled >= 2 * whole and tiled > 0.15, (whole, tiled)
    # every box in image coordinates, inside the image
    b = found(Tiling(640, 0.2))
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= canvas.shape[1]).all() and (b[:, 3] <= canvas.shape[0]).all()


def test_autolabel_and_eval_with_tiles_from_the_cli(tmp_path: Path, shared: Path) -> None:
    from tests.cli.test_cli import run
    from tests.coco128 import bench_of_small_people

    canvas, people = bench_of_small_people(shared)
    (tmp_path / "big").mkdir()
    cv2.imwrite(str(tmp_path / "big" / "bench.png"), canvas)
    ws = tmp_path / "ws"
    assert run("init", ws, "--task", "detect", "--labels", "person")[0] == 0
    assert run("import", ws, tmp_path / "big", "--format", "images")[0] == 0
    assert run("models", "add", ws, "yolox-nano", "--from", shared / "models")[0] == 0
    # a tile as large as the image would change nothing: said so, nothing started
    code, _, err = run("autolabel", ws, "--model", "yolox-nano", "--tile", "4096")
    assert code == 2 and "not smaller than any image (the largest is 2560 px)" in err
    code, _, err = run("autolabel", ws, "--model", "ocr", "--tile", "640")
    assert code == 2 and "tiling is for detectors" in err
    code, _, err = run("autolabel", ws, "--model", "yolox-nano", "--tile", "10")
    assert code == 2 and "a tile is 64 to 16384 pixels" in err
    code, out, err = run("autolabel", ws, "--model", "yolox-nano", "--tile", "640", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["params"]["tile"] == 640 and job["result"]["added"] >= 12
    # eval with the same tiles against the true people (imported as the test split)
    doc = {"images": [{"id": 1, "file_name": "bench.png", "width": canvas.shape[1],
                       "height": canvas.shape[0]}],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [{"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
                           for k, (x1, y1, x2, y2) in enumerate(people)]}
    (tmp_path / "gt").mkdir()
    cv2.imwrite(str(tmp_path / "gt" / "bench2.png"), canvas)
    doc["images"][0]["file_name"] = "bench2.png"
    (tmp_path / "gt" / "a.json").write_text(json.dumps(doc))
    assert run("import", ws, tmp_path / "gt" / "a.json", "--format", "coco", "--split", "test",
               "--images-dir", tmp_path / "gt")[0] == 0
    code, out, err = run("eval", ws, "--model", "yolox-nano", "--split", "test", "--json")
    whole = json.loads(out)
    code, out, err = run("eval", ws, "--model", "yolox-nano", "--split", "test", "--tile", "640",
                         "--json")
    tiled = json.loads(out)
    assert tiled["tiling"] == {"tile": 640, "overlap": 0.2} and whole["tiling"] is None
    assert tiled["map50"] >= 2 * whole["map50"] and tiled["map50"] > 0.1, (whole["map50"], tiled["map50"])
