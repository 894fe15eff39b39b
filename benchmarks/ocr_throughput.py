"""OCR pre-labeling throughput: LabelPilot's pipeline against bare rapidocr.

Same model files (the PP-OCRv6 small det/rec and the line classifier inside the rapidocr
wheel), same number of CPU threads, same real images with ground truth:
scikit-image's scanned page (ground truth in tests/data/ocr) and the ICDAR 2015 sample
images under shared/datasets/mmocr_toy. Prints images/s, text lines/s, detection hmean
and end-to-end line accuracy (lines read exactly right) for both, and peak memory.

Usage:
    python benchmarks/ocr_throughput.py [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))


def dataset() -> list[tuple[str, object, list[tuple[list[tuple[float, float]], str]]]]:
    import cv2
    from skimage import data

    def gt(path: Path) -> list[tuple[list[tuple[float, float]], str]]:
        out = []
        for ln in path.read_text(encoding="utf-8-sig").splitlines():
            if ln.strip():
                v = ln.split(",", 8)
                xy = [float(x) for x in v[:8]]
                out.append((list(zip(xy[0::2], xy[1::2], strict=True)), v[8]))
        return out

    items = [("page", cv2.cvtColor(data.page(), cv2.COLOR_GRAY2BGR),
              gt(ROOT / "tests" / "data" / "ocr" / "gt_page.txt"))]
    toy = SHARED / "datasets" / "mmocr_toy"
    for img in sorted((toy / "det_toy_dataset" / "imgs" / "test").glob("*.jpg")):
        items.append((img.stem, cv2.imread(str(img)),
                      gt(toy / "icdar2015_toy_gt" / "annotations" / "test" / f"gt_{img.stem}.txt")))
    return items


def rapidocr_reader(images: list[Any], threads: int
                    ) -> Callable[[], list[list[tuple[list[list[float]], str]]]]:
    """Bare rapidocr on `images` (its own pipeline, `threads` ONNX threads): quads and text
    per image."""
    from rapidocr import RapidOCR

    engine = RapidOCR(params={"Global.log_level": "error",
                              "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                              "EngineConfig.onnxruntime.inter_op_num_threads": 1})

    def read_all() -> list[list[tuple[list[list[float]], str]]]:
        out = []
        for im in images:
            r: Any = engine(im)  # a RapidOCROutput for a whole image
            boxes = [] if r.boxes is None else r.boxes.tolist()
            out.append(list(zip(boxes, r.txts or (), strict=True)))
        return out

    return read_all


def print_ratios(res: dict[str, dict[str, float]], tools: tuple[str, ...]) -> None:
    """Each tool's throughput as a multiple of rapidocr's, and its accuracy beside it."""
    ro = res["rapidocr"]
    for tool in tools:
        lp = res[tool]
        print(f"{tool}: {lp['images_per_s'] / ro['images_per_s']:.2f}x rapidocr's throughput; "
              f"hmean {100 * (lp['det_hmean'] - ro['det_hmean']):+.1f} points, "
              f"line accuracy {100 * (lp['line_accuracy'] - ro['line_accuracy']):+.1f} points")


def run_tool(tool: str, threads: int, repeat: int) -> dict[str, float]:
    from labelpilot.evaluation.ocr import GtLine, PredLine, evaluate

    items = dataset()
    images: list[Any] = [im for _, im, _ in items]
    if tool.startswith("labelpilot"):
        from concurrent.futures import ThreadPoolExecutor

        from labelpilot.models.ocr import FAST, OcrModel, OcrSettings, builtin_manifest

        # As the autolabel job runs it: one ONNX thread per image, `threads` images at once.
        settings = OcrSettings(**FAST) if tool.endswith("fast") else OcrSettings()  # type: ignore[arg-type]
        model = OcrModel(builtin_manifest(), threads=1, settings=settings)
        pool = ThreadPoolExecutor(threads)

        def read_all() -> list[list[tuple[list[list[float]], str]]]:
            return [[(ln.points.tolist(), ln.text) for ln in lines]
                    for lines in pool.map(model.read, images)]
    else:
        read_all = rapidocr_reader(images, threads)

    read_all()  # warm-up: sessions, allocator, caches
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        results = read_all()
        best = min(best, time.perf_counter() - t)
    gts = [[GtLine(p, text) for p, text in g] for _, _, g in items]
    preds = [[PredLine([(pt[0], pt[1]) for pt in p], text) for p, text in r] for r in results]
    metrics = evaluate(gts, preds, [[""] * len(g) for g in gts])
    n_lines = sum(len(r) for r in results)
    return {"seconds": best, "images_per_s": len(images) / best, "lines_per_s": n_lines / best,
            "lines": n_lines, "det_hmean": metrics["det_hmean"],
            "line_accuracy": metrics["e2e_accept_rate"],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tool", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tool:
        print(json.dumps(run_tool(args.tool, args.threads, args.repeat)))
        return
    res = {}
    for tool in ("labelpilot", "labelpilot-fast", "rapidocr"):
        out = subprocess.run([sys.executable, __file__, "--tool", tool, "--threads",
                              str(args.threads), "--repeat", str(args.repeat)],
                             check=True, capture_output=True, text=True).stdout
        res[tool] = json.loads(out.strip().splitlines()[-1])
    n = len(dataset())
    print(f"\n{n} real images (scikit-image page + ICDAR 2015 samples), {args.threads} threads, "
          f"best of {args.repeat}")
    print(f"{'tool':<16}{'images/s':>10}{'lines/s':>10}{'lines':>7}{'det hmean':>11}"
          f"{'line acc':>10}{'peak MB':>9}")
    for tool, r in res.items():
        print(f"{tool:<16}{r['images_per_s']:>10.2f}{r['lines_per_s']:>10.1f}{r['lines']:>7}"
              f"{r['det_hmean']:>11.3f}{r['line_accuracy']:>10.3f}{r['peak_mb']:>9.0f}")
    print_ratios(res, ("labelpilot", "labelpilot-fast"))


if __name__ == "__main__":
    main()
