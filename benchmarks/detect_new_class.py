"""Custom auto-label on classes the shipped detector has never seen: real data sets with a
class COCO lacks, a few dozen labeled images, a 2-core CPU time budget.

Data (Pascal VOC XML as LabelImg writes it, one folder of XML and one of images; neither
is shipped nor downloaded here, clone them and pass the folders):
    raccoon:  https://github.com/datitran/raccoon_dataset (200 web images, 217 raccoons; MIT)
    kangaroo: https://github.com/experiencor/kangaroo (164 images with boxes, 1 class)

Each data set is imported as a user would (`labelpilot import --format voc`), shared out
with `labelpilot split` (by default 40 train + 10 val = 50 labeled images; every other
image is test, each a different photo from the web, so test images are other scenes),
then: the shipped yolox-nano evaluated on the test split (it has no such class: 0),
`labelpilot train --task detect --minutes M` (pretrained, and `--init scratch` with
`--scratch`), each evaluated on the test split (mAP by the COCO protocol; accept rate:
ground-truth boxes matched at IoU 0.7 by a proposal of the right class the model shows: the
shipped model's threshold 0.3, a trained model's chosen on the val images; precision of the
proposals shown at IoU 0.5). With `--bases a,b` each base is fine-tuned for the budget and
the report says which wins (kept: the best on the val images).

Usage:
    python benchmarks/detect_new_class.py --data raccoon=DIR/annotations:DIR/images \
        --data kangaroo=DIR2/annots:DIR2/images [--minutes 10] [--train 40 --val 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "benchmarks" / "out"
LP = [sys.executable, "-m", "labelpilot.cli"]


def lp(*args: str, as_json: bool = True) -> dict:
    r = subprocess.run([*LP, *args, *(["--json"] if as_json else [])], capture_output=True,
                       text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if r.returncode != 0:
        raise SystemExit(f"labelpilot {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout) if as_json else {}


BASES = ["yolox-nano"]


def build(ws: Path, xml: Path, images: Path, n_train: int, n_val: int) -> dict:
    lp("init", str(ws), "--task", "detect", as_json=False)
    # --skip-invalid: the kangaroo set has one truncated JPEG (00090.jpg), said and skipped
    imported = lp("import", str(ws), str(xml), "--format", "voc", "--images-dir", str(images),
                  "--skip-invalid")
    n = imported["images_added"]
    split = lp("split", str(ws), "--train", str(n_train / n), "--val", str(n_val / n),
               "--test", str(1 - (n_train + n_val) / n))
    for base in BASES:
        lp("models", "add", str(ws), base, "--from", str(SHARED / "models"), as_json=False)
    return {"images": n, "split": split, "invalid_images": imported["invalid_images"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", action="append", required=True,
                    help="NAME=XML_DIR:IMAGES_DIR (repeatable)")
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--val", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--scratch", action="store_true", help="also train from scratch")
    ap.add_argument("--bases", default="yolox-nano",
                    help="base models to fine-tune (comma-separated: each for --minutes, "
                         "compared, the best on the val images kept), e.g. "
                         "yolox-nano,person-detector")
    args = ap.parse_args()
    BASES[:] = list(dict.fromkeys(["yolox-nano", *args.bases.split(",")]))
    rows = []
    for spec in args.data:
        name, _, dirs = spec.partition("=")
        xml, _, images = dirs.partition(":")
        with tempfile.TemporaryDirectory(prefix=f"lp-newclass-{name}-") as t:
            ws = Path(t) / "ws"
            info = build(ws, Path(xml), Path(images), args.train, args.val)
            base = lp("eval", str(ws), "--model", "yolox-nano", "--split", "test")
            rows.append({"data": name, "model": "yolox-nano as shipped", **base})
            print(json.dumps(rows[-1]), flush=True)
            for init in ("pretrained", "scratch") if args.scratch else ("pretrained",):
                r = lp("train", str(ws), "--task", "detect", "--init", init, "--minutes",
                       str(args.minutes), "--name", f"{name}-{init}", "--base", args.bases)
                for b in r["bases"][1:]:  # the bases not kept, on the same test split
                    rows.append({"data": name, "images": r["test"]["images"],
                                 "map50": b["test_map50"], "map50_95": float("nan"),
                                 "accept_rate": b["test_accept_rate"], "precision": float("nan"),
                                 "model": f"{init}, {args.minutes:g} min from {b['base']} "
                                          f"(not kept): {b['steps']} steps, val mAP50 "
                                          f"{b['val_map50']:.3f}, {b['ms_per_image']:.0f} ms/image"})
                kept = "start" if r["kept_step"] == 0 else f"step {r['kept_step']}"
                per_step = sum(r["seconds_per_step"].values())
                rows.append({"data": name, **r["test"],
                             "model": f"{init}, {args.minutes:g} min from {r['base']}: "
                                      f"{r['steps']} steps ({per_step:.2f} s each), kept {kept}, "
                                      f"val mAP50 {r['val_map50']:.3f}, threshold "
                                      f"{r['thresholds']['score_threshold']:.2f}, "
                                      f"{r['ms_per_image']:.0f} ms/image",
                             "seconds_per_step": r["seconds_per_step"],
                             "train_images": r["train_images"], "train_boxes": r["train_boxes"]})
                print(json.dumps(rows[-1]), flush=True)
            rows[-1]["split"] = info["split"]
    print("\n| data | model | test images | mAP50 | mAP50:95 | accept rate | precision shown |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['data']} | {r['model']} | {r['images']} | {r['map50']:.3f} | "
              f"{r['map50_95']:.3f} | {r['accept_rate']:.3f} | {r['precision']:.3f} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "detect_new_class.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
