"""The simulated annotator: actions and seconds per correct label, labeling by hand against
reviewing LabelPilot's proposals and using its smart tools, on the shared data sets with
their ground truth as the oracle (rules and time model: labelpilot.evaluation.effort).

Sets (../shared/datasets):
- OCR, ICDAR 2015 toy (mmocr_toy: 10 street images, don't-care lines skipped): the
  built-in PP-OCRv6 pipeline's proposals; a moved or drawn quad is read again by the
  recognizer as the editor does.
- OCR, licence plates (lpr_plates test, 300 crops; the true quad is the crop): the same,
  and again with the recognizer fine-tuned for `--finetune-minutes` on the 700 train
  plates (the loop's second round: what a team reviews after one fine-tuning); each also
  pre-labeled as a `text_lines = "whole-image"` project is (each crop read whole).
- Detection, coco128 (128 images, 80 classes, crowd boxes left out): yolox-nano's shown
  proposals (its display thresholds); a box nothing proposed gets a click to box in its
  middle: the detector's shown box under the click, else the graph cut's mask, boxed.
- Segmentation, GrabCut (50 objects, 480 px, the uncertain band ignored): the graph cut's
  clicks to 90% IoU (RITM's click protocol, 20 at most) against the fewest polygon
  vertices reaching 90%.

It also times every model call the editor waits on (re-recognize a quad, click to box, a
smart-mask click once the image's embedding is ready) and reports stalls over 100 ms.

Prints a table, saves benchmarks/out/annotator.json and annotator.png.

Usage:
    python benchmarks/annotator.py [--plates 300] [--coco 128] [--grabcut 50]
                                   [--only ocr,detect,segment]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT / "src"))

from labelpilot.evaluation import effort as fx  # noqa: E402

STALL_MS = 100.0


class Timer:
    """Latencies (ms) of the calls the UI waits on, by tool."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {}

    def time(self, tool: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        self.ms.setdefault(tool, []).append((time.perf_counter() - t0) * 1000)
        return out

    def table(self) -> dict[str, dict[str, float]]:
        return {k: {"calls": len(v), "p50_ms": round(float(np.percentile(v, 50)), 1),
                    "p95_ms": round(float(np.percentile(v, 95)), 1),
                    "max_ms": round(float(np.max(v)), 1),
                    "over_100ms": int(sum(x > STALL_MS for x in v))}
                for k, v in self.ms.items()}


def read(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    data = np.fromfile(str(path), np.uint8)
    image = cv2.imdecode(data, flags)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return image


# --- OCR -------------------------------------------------------------------------------

def ocr_sets(plates: int) -> dict[str, list[tuple[Path, list[tuple[list[tuple[float, float]], str]]]]]:
    toy = SHARED / "datasets" / "mmocr_toy"
    icdar = []
    for gt in sorted((toy / "icdar2015_toy_gt" / "annotations" / "test").glob("gt_img_*.txt")):
        lines = []
        for ln in gt.read_text(encoding="utf-8-sig").splitlines():
            v = ln.split(",", 8)
            if len(v) < 9 or v[8].strip() == "###":
                continue
            xy = [float(x) for x in v[:8]]
            lines.append((list(zip(xy[0::2], xy[1::2], strict=True)), v[8].strip()))
        icdar.append((toy / "det_toy_dataset" / "imgs" / "test" / f"{gt.stem[3:]}.jpg", lines))
    lpr = SHARED / "datasets" / "lpr_plates"
    plate_set: list[tuple[Path, list[tuple[list[tuple[float, float]], str]]]] = []
    for ln in (lpr / "test_rec_gt.txt").read_text(encoding="utf-8").splitlines()[:plates]:
        name, text = ln.split("\t")
        plate_set.append((lpr / name, [([], text)]))
    return {"ocr-icdar2015-toy": icdar, "ocr-plates": plate_set}


def finetuned_plates(minutes: float, root: Path) -> Any:
    """The recognizer fine-tuned for `minutes` on the 700 train plates (the loop's second
    round: pre-label, review, fine-tune, pre-label the rest), as an OcrModel."""
    from labelpilot.models.registry import load_ocr
    from labelpilot.train.ocr_rec import TrainConfig, Trainer
    from labelpilot.transfer import import_dataset
    from labelpilot.workspace import Workspace

    ws = Workspace.create(root, task="ocr", labels=["text"])
    import_dataset(ws, SHARED / "datasets" / "lpr_plates", format="ppocr-rec", link=True)
    Trainer(ws, TrainConfig(init="pretrained", minutes=minutes, name="plates-rec"),
            run_dir=root / "run").run()
    model = load_ocr("plates-rec", ws.models_dir, threads=1)
    ws.close()
    return model


def run_ocr(name: str, items: list[Any], timer: Timer, model: Any = None,
            whole: bool = False) -> dict[str, Any]:
    """`whole`: pre-labeled as a project with `text_lines = "whole-image"` is (each crop
    read whole, no text detector)."""
    from labelpilot.models.ocr import OcrModel, builtin_manifest

    model = model or OcrModel(builtin_manifest(), threads=1)
    hand, assisted = fx.Effort(), fx.Effort()
    exact = nothing = 0
    for path, lines in items:
        image = read(path)
        h, w = image.shape[:2]
        gt = [(q or [(0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h))], t)
              for q, t in lines]
        found = model.read_whole(image) if whole else model.read(image)
        props = [(ln.points.tolist(), ln.text) for ln in found]
        nothing += not props

        def reread(quad: Any, image: np.ndarray = image) -> str:
            return str(timer.time("re-recognize", model.recognize_quad, image, quad)[0])

        hand += fx.ocr_by_hand(gt)
        # a recognition set's true quad is the whole crop
        e = fx.ocr_reviewed(gt, props, reread, crops=not lines[0][0] if lines else False)
        assisted += e
        exact += e.total == 2 and len(props) == len(gt)
    return {"set": name, "task": "ocr", "images": len(items), "model": model.spec.source,
            "lines": "whole-image" if whole else "detect", "hand": hand.public(),
            "assisted": assisted.public(), "images_accepted_unchanged": exact,
            "images_without_proposals": nothing}


# --- detection ---------------------------------------------------------------------------

def run_detection(n: int, timer: Timer, models_dir: Path) -> dict[str, Any]:
    from labelpilot.assist.click_box import pick_box
    from labelpilot.models.base import Click, Prompt
    from labelpilot.models.catalogue import install
    from labelpilot.models.registry import load_detector, load_segmenter

    install(models_dir, "yolox-nano", str(SHARED / "models"))
    det = load_detector("yolox-nano", models_dir, threads=1)
    seg = load_segmenter("graphcut", None)
    root = SHARED / "datasets" / "coco128"
    j = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in j["categories"]}
    by_image: dict[int, list[Any]] = {}
    for a in j["annotations"]:
        if not a.get("iscrowd"):
            x, y, bw, bh = a["bbox"]
            by_image.setdefault(a["image_id"], []).append(
                ((x, y, x + bw, y + bh), names[a["category_id"]]))
    hand, assisted = fx.Effort(), fx.Effort()
    images = sorted(j["images"], key=lambda i: i["file_name"])[:n]
    for im in images:
        image = read(root / "train2017" / im["file_name"])
        gt = by_image.get(im["id"], [])
        shown = det.detect(image)
        props: list[tuple[fx.Box, str]] = [
            ((float(b[0]), float(b[1]), float(b[2]), float(b[3])), det.manifest.labels[int(c)])
            for b, c in zip(shown.boxes, shown.classes, strict=True)]
        cache: dict[str, Any] = {}

        def click_box(box: Any, cache: dict[str, Any] = cache, image: np.ndarray = image) -> Any:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            if "embedding" not in cache:  # when the editor opens an image (or the server
                cache["embedding"] = seg.embed(image)  # hands it out) the server embeds it
                cache["boxes"] = det.detect(image)  # and finds its boxes, in the background

            def answer() -> Any:
                hit = pick_box(cache["boxes"], det.manifest.labels, [Click(cx, cy, True)])
                if hit is not None:
                    return hit[0], hit[1]
                found = seg.predict(cache["embedding"], Prompt([Click(cx, cy, True)]))
                if not found or not found[0].mask.any():
                    return None
                ys, xs = np.nonzero(found[0].mask)
                return (float(xs.min()), float(ys.min()), float(xs.max() + 1),
                        float(ys.max() + 1)), None

            return timer.time("click to box", answer)

        hand += fx.detection_by_hand(gt)
        assisted += fx.detection_reviewed(gt, props, click_box)
    return {"set": "detect-coco128", "task": "detect", "images": len(images),
            "model": det.spec.source, "hand": hand.public(), "assisted": assisted.public(),
            "hand_seconds_extreme_clicking": round(hand.seconds_extreme, 1),
            "assisted_seconds_extreme_clicking": round(assisted.seconds_extreme, 1)}


# --- segmentation --------------------------------------------------------------------------

def run_segmentation(n: int, timer: Timer) -> dict[str, Any]:
    from labelpilot.evaluation.clicker import simulate
    from labelpilot.models.registry import load_segmenter

    seg = load_segmenter("graphcut", None)
    gc = SHARED / "datasets" / "grabcut"
    hand, assisted = fx.Effort(), fx.Effort()
    reached = 0
    files = sorted((gc / "data_GT").iterdir())[:n]
    for path in files:
        image = read(path)
        gt = read(next((gc / "boundary_GT").glob(path.stem + ".*")), cv2.IMREAD_GRAYSCALE)
        h, w = gt.shape
        s = 480 / max(h, w)
        wh = (round(w * s), round(h * s))
        image = cv2.resize(image, wh, interpolation=cv2.INTER_AREA)
        gt = cv2.resize(gt, wh, interpolation=cv2.INTER_NEAREST)
        ignore = gt == 128
        truth = gt == 255
        emb = seg.embed(image)

        def predict(prompt: Any, emb: Any = emb, image: np.ndarray = image) -> np.ndarray:
            props = timer.time("smart mask click", seg.predict, emb, prompt)
            return props[0].mask if props else np.zeros(image.shape[:2], bool)

        trace = simulate(predict, truth, ignore=ignore, max_clicks=20, stop_at=0.9)
        noc = next((k + 1 for k, v in enumerate(trace.ious) if v >= 0.9), None)
        vertices = fx.polygon_vertices(truth, 0.9, ignore)
        hand += fx.segment_by_hand(vertices)
        assisted += fx.segment_with_clicks(noc or 20, noc is not None, vertices)
        reached += noc is not None
    return {"set": "segment-grabcut", "task": "segment", "images": len(files),
            "model": "graphcut", "hand": hand.public(), "assisted": assisted.public(),
            "reached_90": reached}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plates", type=int, default=300)
    ap.add_argument("--coco", type=int, default=128)
    ap.add_argument("--grabcut", type=int, default=50)
    ap.add_argument("--finetune-minutes", type=float, default=3.0,
                    help="also the plates with the recognizer fine-tuned this long on the "
                         "700 train plates (0: not)")
    ap.add_argument("--only", default="ocr,detect,segment",
                    help="the tasks to run, comma-separated")
    args = ap.parse_args()
    import tempfile

    only = set(args.only.split(","))
    timer = Timer()
    rows = []
    sets = ocr_sets(args.plates)
    if "ocr" in only:
        for name, items in sets.items():
            rows.append(run_ocr(name, items, timer))
        # the plates are crops of one line: the project reads them whole
        rows.append(run_ocr("ocr-plates-whole", sets["ocr-plates"], timer, whole=True))
    with tempfile.TemporaryDirectory() as tmp:
        if args.finetune_minutes > 0 and "ocr" in only:
            tuned = finetuned_plates(args.finetune_minutes, Path(tmp) / "plates")
            rows.append(run_ocr(f"ocr-plates-tuned-{args.finetune_minutes:g}min",
                                sets["ocr-plates"], timer, tuned))
            rows.append(run_ocr(f"ocr-plates-tuned-{args.finetune_minutes:g}min-whole",
                                sets["ocr-plates"], timer, tuned, whole=True))
        if "detect" in only:
            rows.append(run_detection(args.coco, timer, Path(tmp)))
    if "segment" in only:
        rows.append(run_segmentation(args.grabcut, timer))
    print(f"{'set':26} {'labels':>6} {'hand act/label':>15} {'assisted':>9} {'ratio':>6} "
          f"{'hand s/label':>13} {'assisted':>9} {'ratio':>6}")
    for r in rows:
        h, a = r["hand"], r["assisted"]
        r["actions_ratio"] = round(h["actions_per_label"] / max(1e-9, a["actions_per_label"]), 2)
        r["seconds_ratio"] = round(h["seconds_per_label"] / max(1e-9, a["seconds_per_label"]), 2)
        print(f"{r['set']:26} {h['labels']:>6} {h['actions_per_label']:>15.2f} "
              f"{a['actions_per_label']:>9.2f} {r['actions_ratio']:>6.2f} "
              f"{h['seconds_per_label']:>13.1f} {a['seconds_per_label']:>9.1f} "
              f"{r['seconds_ratio']:>6.2f}")
    for det in (r for r in rows if r["task"] == "detect"):
        ratio = det["hand_seconds_extreme_clicking"] / max(
            1e-9, det["assisted_seconds_extreme_clicking"])
        print(f"detection with boxes drawn by extreme clicking (7 s): seconds ratio {ratio:.2f}")
    for r in rows:
        if r["task"] == "ocr":
            print(f"{r['set']}: {r['images_without_proposals']} of {r['images']} images "
                  f"without a proposal, {r['images_accepted_unchanged']} accepted unchanged")
    lat = timer.table()
    print(f"\n{'tool the UI waits on':20} {'calls':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
          f"{'>100ms':>7}")
    for k, v in lat.items():
        print(f"{k:20} {v['calls']:>6} {v['p50_ms']:>7.1f} {v['p95_ms']:>7.1f} "
              f"{v['max_ms']:>7.1f} {v['over_100ms']:>7}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "annotator.json").write_text(json.dumps({"sets": rows, "latency": lat}, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["hand"]["actions_per_label"] for r in rows], 0.4, label="by hand")
    ax.bar(x + 0.2, [r["assisted"]["actions_per_label"] for r in rows], 0.4,
           label="LabelPilot-assisted")
    ax.set_xticks(x, [r["set"] for r in rows], rotation=15, fontsize=8)
    ax.set_ylabel("actions per correct label")
    ax.set_title("Simulated annotator: actions per correct label")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "annotator.png", dpi=100)


if __name__ == "__main__":
    main()
