"""INT8 variants of the catalogue's detectors on coco128, through the accuracy gate.

coco128 is imported whole (COCO file, 80 classes); the first 48 images by file name are
the train split (calibration), the other 80 the test split (scored). For each detector:
`labelpilot models optimize DIR NAME --json` with the default gate (>= 1.5x faster, <= 1
point of mAP50 lost) and the default calibration (percentile), and, as the baseline,
ONNX Runtime's `quantize_static` with its own defaults (QDQ, every operator, one scale per
tensor, MinMax) on the same calibration images, scored and timed the same way (the gate's
own functions, so every figure comes from the same code path). Times are milliseconds an
image for the whole pre-labeling path (preprocessing, network, decoding) on one thread,
interleaved with FP32 on the same images in the same run.

Usage:
    python benchmarks/optimize_detectors.py [--models yolox-nano,nanodet-m,picodet-xs]
        [--method percentile]
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
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def lp(*args: str) -> dict:
    r = subprocess.run([*LP, *args, "--json"], capture_output=True, text=True, check=False, env=ENV)
    if r.returncode != 0:
        raise SystemExit(f"labelpilot {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)


def build(tmp: Path, models: list[str]) -> Path:
    coco = SHARED / "datasets" / "coco128"
    j = json.loads((coco / "annotations" / "instances_train2017.json").read_text())
    ims = sorted(j["images"], key=lambda i: i["file_name"])
    ws = tmp / "ws"
    subprocess.run([*LP, "init", str(ws), "--task", "detect"], check=True, env=ENV,
                   capture_output=True)
    for split, sel in (("train", ims[:48]), ("test", ims[48:])):
        ids = {im["id"] for im in sel}
        f = tmp / f"{split}.json"
        f.write_text(json.dumps({**j, "images": sel,
                                 "annotations": [a for a in j["annotations"] if a["image_id"] in ids]}))
        lp("import", str(ws), str(f), "--format", "coco", "--split", split, "--images-dir",
           str(coco / "train2017"))
    for m in models:
        subprocess.run([*LP, "models", "add", str(ws), m, "--from", str(SHARED / "models")],
                       check=True, env=ENV, capture_output=True)
    return ws


def baseline(ws_dir: Path, name: str) -> dict:
    """ONNX Runtime's quantize_static with its defaults, through the gate's scoring and timing."""
    sys.path.insert(0, str(ROOT / "src"))
    import onnx
    from onnxruntime import quantization as q

    from labelpilot.evaluation.run import evaluate_detector
    from labelpilot.models.registry import get_manifest
    from labelpilot.models.runtime import sha256_file
    from labelpilot.optimize import gate
    from labelpilot.optimize.quantize import at_least_opset
    from labelpilot.optimize.subjects import DetectorSubject
    from labelpilot.workspace import Workspace

    ws = Workspace.open(ws_dir)
    manifest = get_manifest(name, ws.models_dir)
    split, scored, calib = gate.scoring_splits(ws, "train")
    subject = DetectorSubject(ws, manifest, "minmax", split, scored, calib, gate.TIMED_IMAGES)
    fp32 = subject.fp32
    feeds = subject.calibration_feeds()

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    src, _ = manifest.file("model")
    with tempfile.TemporaryDirectory() as t:
        pre, out = Path(t) / "pre.onnx", Path(t) / "int8.onnx"
        onnx.save(at_least_opset(onnx.load(str(src)), 13), str(pre))
        q.quantize_static(str(pre), str(out), Reader())
        model = subject.load(manifest.with_variant_files({"model": (out, sha256_file(out))}))
        base = evaluate_detector(ws, fp32, split)["map50"]
        got = evaluate_detector(ws, model, split)["map50"]
        ms_fp32, ms = gate.time_models(subject.run_whole, [fp32, model],
                                       subject.timed_items(None))
        size = out.stat().st_size
    ws.close()
    return {"map50": got, "fp32_map50": base, "ms": ms, "fp32_ms": ms_fp32, "size": size}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="yolox-nano,nanodet-m,picodet-xs")
    ap.add_argument("--method", default="percentile")
    args = ap.parse_args()
    models = args.models.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="lp-optimize-") as t:
        ws = build(Path(t), models)
        for m in models:
            r = lp("models", "optimize", str(ws), m, "--method", args.method)
            b = baseline(ws, m)
            rows.append({"model": m, "gate": r, "baseline": b})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| model | variant | mAP50 | loss (points) | ms/image | speed-up | size MB | kept / why |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        r, b = row["gate"], row["baseline"]
        first = r["tries"][0]
        print(f"| {row['model']} | FP32 | {r['fp32']['map50']:.3f} | | "
              f"{first.get('fp32_ms_per_image', 0):.1f} | 1.00x | {r['fp32']['size_bytes'] / 1e6:.1f} | |")
        for tr in r["tries"]:
            print(f"| {row['model']} | {tr['quantized']} ({tr.get('method', args.method)}) | "
                  f"{tr.get('value', float('nan')):.3f} | "
                  f"{tr.get('loss_points', float('nan')):.1f} | {tr.get('ms_per_image', float('nan')):.1f} | "
                  f"{tr.get('speedup', float('nan')):.2f}x | {tr['size_bytes'] / 1e6:.1f} | "
                  f"{'kept' if tr['kept'] else 'refused'}: {tr['reason']} |")
        print(f"| {row['model']} | ORT quantize_static defaults | {b['map50']:.3f} | "
              f"{100 * (b['fp32_map50'] - b['map50']):.1f} | {b['ms']:.1f} | "
              f"{b['fp32_ms'] / b['ms']:.2f}x | {b['size'] / 1e6:.1f} | (baseline) |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "optimize_detectors.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
