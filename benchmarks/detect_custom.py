"""Custom auto-label on real COCO images: a few classes, 30 labeled training images, a
held-out test set (coco128, split by file name), YOLOX-Nano fine-tuned on the CPU.

A project class is a COCO class (`person`) or a new one made of several (`animal=cat+dog`:
the boxes of those COCO classes relabelled; the shipped detector has no such class, so the
fine-tune must learn it in an output channel of its own).

Rows: the pretrained detector as shipped (its classes mapped to the project's: by name, and
for a new class with `--map cat=animal --map dog=animal ...`, which a user would have to
know to write; no training), then `labelpilot train --task detect` with `--init pretrained`
and `--init scratch` after each time budget. Each run is `labelpilot train ... --json` in its own
process on the same workspace; figures are on the test split (mAP@0.5, mAP@0.5:0.95,
accept rate = ground-truth boxes matched at IoU 0.7 by a proposal of the right class
the model shows (its display thresholds: the shipped model's 0.3, a trained model's chosen
on its held-out images), precision of the proposals shown (IoU 0.5), per-class AP@0.5).

Usage:
    python benchmarks/detect_custom.py [--classes person,car,bowl] [--minutes 5,10] \
        [--inits pretrained,scratch]
    python benchmarks/detect_custom.py --classes animal=bird+cat+dog+horse+sheep+cow+\
elephant+bear+zebra+giraffe,vehicle=bicycle+car+motorcycle+airplane+bus+train+truck+boat
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


def parse_classes(spec: str) -> dict[str, list[str]]:
    """'person,animal=cat+dog' -> {'person': ['person'], 'animal': ['cat', 'dog']}"""
    out = {}
    for item in spec.split(","):
        name, _, parts = item.partition("=")
        out[name.strip()] = [p.strip() for p in parts.split("+")] if parts else [name.strip()]
    return out


def build(tmp: Path, classes: dict[str, list[str]], n_train: int, n_test: int) -> Path:
    root = SHARED / "datasets" / "coco128"
    j = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    project_of = {coco: proj for proj, cocos in classes.items() for coco in cocos}
    cat_id = {c["name"]: c["id"] for c in j["categories"]}
    unknown = sorted(set(project_of) - set(cat_id))
    if unknown:
        raise SystemExit(f"not COCO classes: {', '.join(unknown)}")
    # project class -> category id; annotations relabelled onto the project's classes
    new_id = {proj: i + 1 for i, proj in enumerate(classes)}
    target = {cat_id[coco]: new_id[proj] for coco, proj in project_of.items()}
    anns = [{**a, "category_id": target[a["category_id"]]} for a in j["annotations"]
            if a["category_id"] in target]
    has = {a["image_id"] for a in anns}
    ims = [im for im in sorted(j["images"], key=lambda i: i["file_name"]) if im["id"] in has]
    if len(ims) < n_train + n_test:
        print(f"only {len(ims)} images have these classes: {n_train} for training, "
              f"{len(ims) - n_train} for testing", flush=True)
    ws = tmp / "ws"
    lp("init", str(ws), "--task", "detect", "--labels", ",".join(classes))
    for split, sel in (("train", ims[:n_train]), ("test", ims[n_train:n_train + n_test])):
        d = tmp / split
        (d / "images").mkdir(parents=True)
        ids = {im["id"] for im in sel}
        for im in sel:
            shutil.copy(root / "train2017" / im["file_name"], d / "images" / im["file_name"])
        (d / "a.json").write_text(json.dumps({
            "images": sel, "categories": [{"id": i, "name": n} for n, i in new_id.items()],
            "annotations": [a for a in anns if a["image_id"] in ids]}))
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
    ap.add_argument("--inits", default="pretrained,scratch")
    args = ap.parse_args()
    spec = parse_classes(args.classes)
    classes = list(spec)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lp-custom-") as t:
        ws = build(Path(t), spec, args.train, args.test)
        maps = [f"--map={coco}={proj}" for proj, cocos in spec.items() for coco in cocos
                if coco != proj]
        base = lp("eval", str(ws), "--model", "yolox-nano", "--split", "test", *maps)
        rows.append({**base, "model": "yolox-nano as shipped, classes mapped (no training)"})
        print(json.dumps(rows[-1]), flush=True)
        for minutes in (float(m) for m in args.minutes.split(",")):
            for init in args.inits.split(","):
                r = lp("train", str(ws), "--task", "detect", "--init", init, "--minutes",
                       str(minutes), "--name", f"{init}-{minutes:g}min")
                kept = "start" if r["kept_step"] == 0 else f"step {r['kept_step']}"
                rows.append({**r["test"], "model": f"{init}, {minutes:g} min ({r['steps']} steps, "
                                                    f"kept {kept}, val mAP50 {r['val_map50']:.3f}, "
                                                    f"threshold {r['thresholds']['score_threshold']:.2f})"})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nclasses: {args.classes}; {args.train} training images, {rows[0]['images']} test "
          "images")
    print("\n| model | mAP50 | mAP50:95 | accept rate | precision shown | "
          + " | ".join(f"AP50 {c}" for c in classes) + " |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(classes))
    for r in rows:
        per = [f"{r['per_class'].get(c, {}).get('ap50', 0):.3f}" for c in classes]
        print(f"| {r['model']} | {r['map50']:.3f} | {r['map50_95']:.3f} | {r['accept_rate']:.3f} | "
              f"{r['precision']:.3f} | " + " | ".join(per) + " |")
    OUT.mkdir(parents=True, exist_ok=True)
    tag = "-".join(classes)
    (OUT / f"detect_custom_{tag}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
