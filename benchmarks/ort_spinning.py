"""ONNX Runtime's spinning threads in LabelPilot's pipelines: on (ONNX Runtime's default)
against off (LabelPilot's default, `LABELPILOT_ORT_SPINNING`), in the same run.

Each session's threads (every core, as shipped) either spin between operators or sleep.
Spinning saves a wake-up per operator when one session has the machine; LabelPilot runs
sessions one after another (OCR: the text detector, then the line classifier and the
recognizer) and side by side (two job workers; a smart tool next to a job), where a
spinning pool burns the cores the other session needs. Timed here, interleaved (on, off,
on, off, ...) so that the machine's ups and downs fall on both:

- OCR on text scenes: the pre-labeling pipeline on the ICDAR 2015 sample images (many
  lines an image: the recognizer's batches are most of the work);
- OCR on photos: the same on coco128 photos (a few lines an image: the pipeline goes
  from session to session after little work in each);
- 2 x OCR: two pipelines at once (two job workers), on the photos;
- detector + OCR: yolox-nano on coco128 images next to the OCR pipeline on text scenes.

Usage:
    python benchmarks/ort_spinning.py [--repeat 3] [--images 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))


def _images(folder: Path, n: int) -> list[Any]:
    import cv2

    return [cv2.imread(str(p)) for p in sorted(folder.glob("*.jpg"))[:n]]


def _loaders(models_dir: Path) -> dict[str, Callable[[], Callable[[Any], Any]]]:
    """Each model as pre-labeling runs it, loaded anew (the process cache would hand back
    the sessions made with the other setting)."""
    from labelpilot.models.registry import open_predictor

    def ocr() -> Callable[[Any], Any]:
        return open_predictor("ocr", None)[0].predict

    def det() -> Callable[[Any], Any]:
        return open_predictor("yolox-nano", models_dir)[0].predict

    return {"ocr": ocr, "det": det}


def run_case(work: list[tuple[str, str]], spinning: bool, loaders: dict[str, Any],
             images: dict[str, list[Any]]) -> float:
    """Seconds for the (model, images) pairs of `work` running at once, sessions made with
    spinning on or off (a warm-up image first, not timed)."""
    os.environ["LABELPILOT_ORT_SPINNING"] = "1" if spinning else "0"
    runs = [(loaders[kind](), images[which]) for kind, which in work]
    for run, ims in runs:
        run(ims[0])
    threads = [threading.Thread(target=lambda r=run, i=ims: [r(im) for im in i])
               for run, ims in runs]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--images", type=int, default=10)
    args = ap.parse_args()
    from labelpilot.models.catalogue import install

    models_dir = Path(tempfile.mkdtemp())
    install(models_dir, "yolox-nano", str(SHARED / "models"))
    loaders = _loaders(models_dir)
    coco = SHARED / "datasets" / "coco128" / "train2017"
    images = {"text": _images(SHARED / "datasets" / "mmocr_toy" / "det_toy_dataset" / "imgs"
                              / "test", args.images),
              "photos": _images(coco, 2 * args.images),
              "detector": _images(coco, 3 * args.images)}
    cases = {"OCR on text scenes": [("ocr", "text")],
             "OCR on photos": [("ocr", "photos")],
             "2 x OCR on photos (two jobs)": [("ocr", "photos"), ("ocr", "photos")],
             "detector + OCR on text scenes": [("det", "detector"), ("ocr", "text")]}
    print(f"{os.cpu_count()} cores; images: " + ", ".join(f"{len(v)} {k}" for k, v in
                                                         images.items())
          + f"; median of {args.repeat}")
    print("| case | spinning on (s) | off (s) | off is faster by |")
    print("|---|---:|---:|---:|")
    for name, work in cases.items():
        got: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeat):
            for spinning in (True, False):
                got[spinning].append(run_case(work, spinning, loaders, images))
        on, off = statistics.median(got[True]), statistics.median(got[False])
        print(f"| {name} | {on:.2f} | {off:.2f} | {on / off:.2f}x |")


if __name__ == "__main__":
    main()
