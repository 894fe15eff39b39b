"""Tiled against whole-image detection on small objects: a 2560 x 1440 bench of coco128
images holding people, shrunk to half size and laid side by side (the people 10-100 px
high), detected by YOLOX-Nano whole (the image shrunk to its 416 px input) and in
overlapping tiles. Recall of the people at IoU 0.5 (all detections down to 0.001, and the
proposals the model shows, >= 0.25), AP50 by the COCO protocol, and the time per image.

Usage:
    python benchmarks/detect_tiled.py [--tiles 512,640,960] [--overlap 0.2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.coco128 import bench_of_small_people, share_found  # noqa: E402

from labelpilot.evaluation.detect import DetBox, GtBox, evaluate_detections  # noqa: E402
from labelpilot.models.catalogue import install  # noqa: E402
from labelpilot.models.detect import Tiling  # noqa: E402
from labelpilot.models.registry import load_detector  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiles", default="512,640,960")
    ap.add_argument("--overlap", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    a = ap.parse_args()
    canvas, people = bench_of_small_people(a.shared)
    with tempfile.TemporaryDirectory() as tmp:
        install(Path(tmp), "yolox-nano", str(a.shared / "models"))
        model = load_detector("yolox-nano", Path(tmp), threads=2)
        person = model.manifest.labels.index("person")
        rows = []
        for tile in [None, *(int(t) for t in a.tiles.split(","))]:
            tiling = Tiling(tile, a.overlap) if tile else None
            times = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                d = model.detect(canvas, score_threshold=0.001, tiling=tiling)
                times.append(time.perf_counter() - t0)
            ppl = d.classes == person
            shown = ppl & (d.scores >= model.settings.score_threshold)
            ap50 = evaluate_detections([(
                [DetBox(tuple(b), "person", float(s)) for b, s in zip(d.boxes[ppl], d.scores[ppl],
                                                                       strict=True)],
                [GtBox(g, "person", False) for g in people])])["map50"]
            rows.append((f"tiles {tile} px, overlap {a.overlap}" if tile else "whole image",
                         len(tiling.windows(canvas.shape[1], canvas.shape[0])) if tiling else 1,
                         share_found(d.boxes[ppl], people), share_found(d.boxes[shown], people), ap50,
                         min(times) * 1000))
    print(f"{len(people)} people on a {canvas.shape[1]}x{canvas.shape[0]} image; "
          f"time: best of {a.repeat}, 2 threads\n")
    print(f"{'inference':32} {'tiles':>5} {'recall (all)':>12} {'recall (shown)':>14} "
          f"{'AP50':>6} {'ms':>7} {'vs whole':>8}")
    base_recall = rows[0][3] or 1e-9
    for name, n, r_all, r_shown, ap50, ms in rows:
        print(f"{name:32} {n:5d} {r_all:12.3f} {r_shown:14.3f} {ap50:6.3f} {ms:7.0f} "
              f"{r_shown / base_recall:7.1f}x")


if __name__ == "__main__":
    main()
