"""The OCR model through the optimization gate, and the optimized pipeline against bare
rapidocr, on real receipts with ground truth.

Data: the ICDAR 2019 SROIE receipts (scanned, 626 images with every text line's quad and
transcription), as the zzzDavid/ICDAR-2019-SROIE repository keeps them corrected
(`data/img/NNN.jpg`, `data/box/NNN.csv` in ICDAR 2015's line format); research use, not
shipped: fetch it and pass its `data` folder. The first `--train` receipts by name are
the train split (calibration, and the characters a pruned recognizer keeps), the last
`--test` the test split (scored and timed).

1. `labelpilot models optimize WS ocr --json` with the default gate (>= 1.5x faster, <= 1
   point lost): the built-in PP-OCRv6 small detector and recognizer, each tried as INT8
   (through, then careful), the recognizer also pruned to the characters in use (alone,
   then in INT8); every try's metric, loss, stage time and size, and why it was kept or
   refused.
2. The whole pre-labeling path on the test receipts, 2 threads, best of `--repeat`:
   LabelPilot with the original files, LabelPilot with the kept variant, and bare
   `rapidocr` (same original files): images/s, detection hmean and end-to-end line
   accuracy (lines read exactly right).

3. The recognizer alone (`--only rec`) on two recognition sets, where a project's text is
   narrow and the general recognizer reads it poorly: the real licence plates under
   `shared/datasets/lpr_plates` (700 train / 300 test crops) and generated dot-matrix,
   inkjet and stamped lot codes (`benchmarks/ocr_finetune.py`'s industrial set, 600 / 200).

Usage:
    python benchmarks/optimize_ocr.py --sroie PATH/TO/ICDAR-2019-SROIE/data
        [--train 40] [--test 40] [--repeat 2] [--rec-sets plates,industrial]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT / "benchmarks"))
from ocr_throughput import print_ratios, rapidocr_reader  # noqa: E402
from optimize_detectors import ENV, lp  # noqa: E402


def layout(sroie: Path, tmp: Path, train: int, test: int) -> dict[str, Path]:
    """The receipts as ICDAR 2015 folders (gt_NAME.txt beside NAME.jpg), per split."""
    names = sorted(p.stem for p in (sroie / "box").glob("*.csv")
                   if (sroie / "img" / f"{p.stem}.jpg").exists())
    if len(names) < train + test:
        raise SystemExit(f"{sroie} has {len(names)} receipts; {train} + {test} asked")
    out = {}
    for split, chosen in (("train", names[:train]), ("test", names[-test:])):
        d = tmp / split
        d.mkdir(parents=True)
        for n in chosen:
            shutil.copyfile(sroie / "img" / f"{n}.jpg", d / f"{n}.jpg")
            (d / f"gt_{n}.txt").write_bytes((sroie / "box" / f"{n}.csv").read_bytes())
        out[split] = d
    return out


def run_tool(tool: str, ws_dir: Path, threads: int, repeat: int) -> dict[str, Any]:
    """One tool on the workspace's test receipts (in its own process: peak memory is its own)."""
    from labelpilot.annotations import region_corners
    from labelpilot.evaluation.ocr import GtLine, PredLine, evaluate
    from labelpilot.store import repo
    from labelpilot.workspace import Workspace

    ws = Workspace.open(ws_dir)
    with ws.engine.connect() as conn:
        rows, anns = repo.confirmed_labels(conn, "test")
    images = [ws.blobs.load_image(r) for r in rows]
    gts = [[GtLine(region_corners(a.shape), a.text or "") for a in anns.get(r.id, [])]
           for r in rows]
    if tool.startswith("labelpilot"):
        from concurrent.futures import ThreadPoolExecutor

        from labelpilot.models.ocr import OcrModel, builtin_manifest
        from labelpilot.models.registry import get_manifest, serving_manifest

        manifest = builtin_manifest() if tool == "labelpilot" else serving_manifest(
            get_manifest("ocr", ws.models_dir))
        model = OcrModel(manifest, threads=1)  # as autolabel runs it: a thread per image
        pool = ThreadPoolExecutor(threads)

        def read_all() -> list[list[tuple[Any, str]]]:
            return [[(ln.points.tolist(), ln.text) for ln in lines]
                    for lines in pool.map(model.read, images)]
    else:
        read_all = rapidocr_reader(images, threads)

    read_all()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        results = read_all()
        best = min(best, time.perf_counter() - t)
    preds = [[PredLine([(p[0], p[1]) for p in pts], text) for pts, text in r] for r in results]
    m = evaluate(gts, preds, [[""] * len(g) for g in gts])
    ws.close()
    return {"images": len(images), "seconds": best, "images_per_s": len(images) / best,
            "det_hmean": m["det_hmean"], "line_accuracy": m["e2e_accept_rate"],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def rec_set(name: str, tmp: Path) -> dict[str, Any]:
    """The recognizer alone through the gate on a recognition set (crops, one line each)."""
    if name == "plates":
        source = SHARED / "datasets" / "lpr_plates"
    else:
        from ocr_finetune import industrial

        source = industrial(tmp / "industrial")
    ws = tmp / f"ws-{name}"
    lp("init", str(ws), "--task", "ocr")
    lp("import", str(ws), str(source), "--format", "ppocr-rec")
    started = time.perf_counter()
    gate = lp("models", "optimize", str(ws), "ocr", "--only", "rec", "--images", "700")
    gate["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(gate), flush=True)
    return gate


def print_tries(title: str, gate: dict[str, Any], metrics: tuple[str, ...]) -> None:
    fp32 = gate["fp32"]
    print(f"\n{title}: calibrated on {gate['calibration']['images']} train images, scored on "
          f"{gate['scored_images']} test images; gate run {gate['wall_s']} s\n")
    print("| role | variant | metric | value | loss (points) | stage ms/image | speed-up | "
          "size MB | kept / why |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    for m in metrics:
        print(f"| {m.split('_')[0]} | FP32 | {m} | {fp32[m]:.3f} | | | 1.00x | | |")
    for tr in gate["tries"]:
        print(f"| {tr['role']} | {tr['quantized']} | {tr['metric']} | "
              f"{tr.get('value', float('nan')):.3f} | {tr.get('loss_points', float('nan')):.1f} | "
              f"{tr.get('ms_per_image', float('nan')):.1f} | {tr.get('speedup', float('nan')):.2f}x | "
              f"{tr['size_bytes'] / 1e6:.1f} | {'kept' if tr['kept'] else 'refused'}: "
              f"{tr['reason']} |")
    v = gate.get("variant")
    if v:
        print(f"\nKept variant: {v['quantized']}; whole path {v['fp32_ms_per_image']:.1f} -> "
              f"{v['ms_per_image']:.1f} ms an image on one thread ({v['speedup']:.2f}x), "
              f"{v['fp32_size_bytes'] / 1e6:.1f} -> {v['size_bytes'] / 1e6:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sroie", type=Path, help="the SROIE data folder (img/, box/)")
    ap.add_argument("--train", type=int, default=40)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--rec-sets", default="plates,industrial")
    ap.add_argument("--tool", help=argparse.SUPPRESS)
    ap.add_argument("--ws", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tool:
        print(json.dumps(run_tool(args.tool, args.ws, args.threads, args.repeat)))
        return
    if args.sroie is None and not args.rec_sets:
        raise SystemExit("--sroie PATH (see the docstring) or --rec-sets is needed")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lp-optimize-ocr-") as t:
        tmp = Path(t)
        if args.sroie is not None:
            out.update(sroie(args, tmp))
        out["recognition"] = {n: rec_set(n, tmp) for n in args.rec_sets.split(",") if n}
    if "gate" in out:
        gate, tools = out["gate"], out["tools"]
        print_tries("SROIE receipts", gate, ("det_hmean", "rec_line_accuracy"))
        print("\n| tool | images/s | det hmean | line accuracy | peak MB |\n"
              "|---|---:|---:|---:|---:|")
        for tool, r in tools.items():
            print(f"| {tool} | {r['images_per_s']:.2f} | {r['det_hmean']:.3f} | "
                  f"{r['line_accuracy']:.3f} | {r['peak_mb']:.0f} |")
        print_ratios(tools, ("labelpilot", "labelpilot-optimized"))
    for n, g in out["recognition"].items():
        print_tries(f"Recognizer alone, {n}", g, ("rec_line_accuracy",))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "optimize_ocr.json").write_text(json.dumps(out, indent=1))


def sroie(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The receipts: the whole OCR model through the gate, then the three tools."""
    ws = tmp / "ws"
    lp("init", str(ws), "--task", "ocr")
    for split, d in layout(args.sroie, tmp / "icdar", args.train, args.test).items():
        lp("import", str(ws), str(d), "--format", "icdar", "--split", split)
    started = time.perf_counter()
    gate = lp("models", "optimize", str(ws), "ocr")
    gate["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(gate), flush=True)
    tools = {}
    for tool in ("labelpilot", "labelpilot-optimized", "rapidocr"):
        r = subprocess.run([sys.executable, __file__, "--tool", tool, "--ws", str(ws),
                            "--threads", str(args.threads), "--repeat", str(args.repeat)],
                           check=True, capture_output=True, text=True, env=ENV)
        tools[tool] = json.loads(r.stdout.strip().splitlines()[-1])
        print(tool, json.dumps(tools[tool]), flush=True)
    return {"gate": gate, "tools": tools}

if __name__ == "__main__":
    main()
