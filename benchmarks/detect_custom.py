"""Custom auto-label on real COCO images: a few classes, 30 labeled training images, a
held-out test set (coco128, split by file name), YOLOX-Nano fine-tuned on the CPU.

Rows: the pretrained detector as shipped (its classes mapped to the project's by name, no
training), then `labelpilot train --task detect` with `--init pretrained` and `--init
scratch` after each time budget. Each run is `labelpilot train ... --json` in its own
process on the same workspace; figures are on the test split (mAP@0.5, mAP@0.5:0.95,
accept rate = ground-truth boxes matched at IoU 0.7 by a proposal of the right class
scored >= 0.3, per-class AP@0.5).

Usage:
    python benchmarks/detect_custom.py [--classes person,car,bowl] [--minutes 5,10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "benchmarks" / "out"
LP = [sys.executable, "-m", "labelpilot.cli"]


def lp(*args: str) -> dict:
    r = subprocess.run([*LP, *args, "--json"], capture_output=True, text=True, check=False,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if r.returncode != 0:
        raise SystemExit(f"labelpilot {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)


def build(tmp: Path, classes: list[str], n_train: int, n_test: int) -> Path:
    root = SHARED / "datasets" / "coco128"
    j = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in j["categories"]}
    has = {a["image_id"] for a in j["annotations"] if names[a["category_id"]] in classes}
    ims = [im for im in sorted(j["images"], key=lambda i: i["file_name"]) if im["id"] in has]
    ws = tmp / "ws"
    lp("init", str(ws), "--task", "detect", "--labels", ",".join(classes))
    for split, sel in (("train", ims[:n_train]), ("test", ims[n_train:n_train + n_test])):
        d = tmp / split
        (d / "images").mkdir(parents=True)
        ids = {im["id"] for im in sel}
        for im in sel:
            shutil.copy(root / "train2017" / im["file_name"], d / "images" / im["file_name"])
        (d / "a.json").write_text(json.dumps({
            "images": sel, "categories": [c for c in j["categories"] if c["name"] in classes],
            "annotations": [a for a in j["annotations"] if a["image_id"] in ids
                            and names[a["category_id"]] in classes]}))
        lp("import", str(ws), str(d / "a.json"), "--format", "coco", "--split", split,
           "--images-dir", str(d / "images"))
    subprocess.run([*LP, "models", "add", str(ws), "yolox-nano", "--from", str(SHARED / "models")],
                   check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return ws


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", default="person,car,bowl")
    ap.add_argument("--train", type=int, default=30)
    ap.add_argument("--test", type=int, default=30)
    ap.add_argument("--minutes", default="5,10")
    args = ap.parse_args()
    classes = args.classes.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="lp-custom-") as t:
        ws = build(Path(t), classes, args.train, args.test)
        base = lp("eval", str(ws), "--model", "yolox-nano", "--split", "test")
        rows.append({**base, "model": "yolox-nano as shipped (no training)"})
        print(json.dumps(rows[-1]), flush=True)
        for minutes in (float(m) for m in args.minutes.split(",")):
            for init in ("pretrained", "scratch"):
                r = lp("train", str(ws), "--task", "detect", "--init", init, "--minutes",
                       str(minutes), "--name", f"{init}-{minutes:g}min")
                rows.append({**r["test"], "model": f"{init}, {minutes:g} min ({r['steps']} steps)"})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nclasses: {', '.join(classes)}; {args.train} training images, {args.test} test images")
    print("\n| model | mAP50 | mAP50:95 | accept rate | " + " | ".join(f"AP50 {c}" for c in classes)
          + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(classes))
    for r in rows:
        per = [f"{r['per_class'].get(c, {}).get('ap50', 0):.3f}" for c in classes]
        print(f"| {r['model']} | {r['map50']:.3f} | {r['map50_95']:.3f} | {r['accept_rate']:.3f} | "
              + " | ".join(per) + " |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "detect_custom.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
