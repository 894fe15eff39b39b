"""Interactive segmentation: clicks to 85/90% IoU with RITM's click simulator.

The real benchmarks under shared/datasets: GrabCut (50 images, the 128 band ignored) and
COCO-MVal (240 instances), scaled as the issue's baseline was measured (480 px on the long
side for GrabCut, 320 px for COCO-MVal), imported into a workspace with
`--format masks` and evaluated by the same code as `labelpilot eval-interactive`.

Models, in the same run on the same input:
- opencv-grabcut: plain `cv2.grabCut` (the peer baseline): 5 iterations per interaction,
  clicks as 5-px definite seeds, the previous result as the probable labels, a box as
  GC_INIT_WITH_RECT; OpenCV's RNG seeded with 0 per instance;
- graphcut: LabelPilot's offline default;
- any SAM-family model installed in a workspace (--sam-models DIR), and the decoder latency
  of a random-weight model of the real SAM architecture (prompt encoder + mask decoder at
  full size, a tiny encoder), which is what a MobileSAM-size decoder costs per click.

Prints a table (NoC@85, NoC@90, mIoU after 1/3/5 interactions, latency p50/p95 per
interaction) and saves a plot of mIoU against clicks to benchmarks/out/. An instance stops
once it reaches 90% IoU after its fifth interaction (NoC@85/90 and mIoU@1/3/5 are exact;
the curves are flat from there).

Usage:
    python benchmarks/interactive_seg.py [--baseline-every 1] [--max-clicks 20]

`--baseline-every K` runs the slow OpenCV baseline on every K-th instance only (and
LabelPilot on the same subset as well as on all of them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "benchmarks" / "out"


def read(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return np.asarray(image)


def build_sets(tmp: Path, every: int = 1, offset: int = 0) -> dict[str, tuple[Path, int | None]]:
    """The two benchmarks in the masks layout, scaled; (folder, ignore value)."""
    out: dict[str, tuple[Path, int | None]] = {}
    gc = SHARED / "datasets" / "grabcut"
    mv = SHARED / "datasets" / "coco_mval"
    pairs = {
        "GrabCut": ([(p, next((gc / "boundary_GT").glob(p.stem + ".*")))
                     for p in sorted((gc / "data_GT").iterdir())], 480, 128),
        "COCO-MVal": ([(p, mv / "gt" / f"{p.stem}.png") for p in sorted((mv / "img").glob("*.jpg"))],
                      320, None),
    }
    for name, (files, size, ignore) in pairs.items():
        d = tmp / name
        (d / "images").mkdir(parents=True)
        (d / "masks").mkdir()
        for i, (img_path, gt_path) in enumerate(files):
            if i % every != offset % every:
                continue
            img = read(img_path)
            gt = read(gt_path, cv2.IMREAD_GRAYSCALE)
            h, w = gt.shape
            s = size / max(h, w)
            wh = (round(w * s), round(h * s))
            img = cv2.resize(img, wh, interpolation=cv2.INTER_AREA)
            gt = cv2.resize(gt, wh, interpolation=cv2.INTER_NEAREST)
            if ignore is None:
                gt = np.where(gt > 0, 255, 0).astype(np.uint8)
            cv2.imwrite(str(d / "images" / f"{img_path.stem}.png"), img)
            cv2.imwrite(str(d / "masks" / f"{img_path.stem}.png"), gt)
        out[name] = (d, ignore)
    return out


class OpenCVGrabCut:
    """The peer baseline behind the same interface."""

    name = "opencv-grabcut"
    version = cv2.__version__

    def embed(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[..., ::-1])  # grabCut wants BGR

    def predict(self, img: np.ndarray, prompt: Any) -> list[Any]:
        from labelpilot.models.base import MaskProposal

        h, w = img.shape[:2]
        if prompt.previous is None and not prompt.clicks:  # a box alone
            cv2.setRNGSeed(0)
            x1, y1, x2, y2 = (round(v) for v in prompt.box)
            mask = np.zeros((h, w), np.uint8)
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(img, mask, (x1, y1, max(1, x2 - x1), max(1, y2 - y1)), bgd, fgd, 5,
                        cv2.GC_INIT_WITH_RECT)
            return [MaskProposal((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 1.0)]
        if prompt.previous is not None:
            mask = np.where(prompt.previous, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        else:
            mask = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        if prompt.box is not None:
            x1, y1, x2, y2 = (round(v) for v in prompt.box)
            outside = np.ones((h, w), bool)
            outside[max(0, y1):y2, max(0, x1):x2] = False
            mask[outside] = cv2.GC_BGD
        for c in prompt.clicks:
            cv2.circle(mask, (int(c.x), int(c.y)), 5, cv2.GC_FGD if c.positive else cv2.GC_BGD, -1)
        if not ((mask == cv2.GC_BGD) | (mask == cv2.GC_PR_BGD)).any():
            return [MaskProposal(np.ones((h, w), bool), 1.0)]
        if not ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).any():  # grabCut needs both
            return [MaskProposal(np.zeros((h, w), bool), 1.0)]
        cv2.setRNGSeed(0)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(img, mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
        return [MaskProposal((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 1.0)]


def workspace(tmp: Path, name: str, folder: Path, ignore: int | None) -> Any:
    from labelpilot.transfer import import_dataset
    from labelpilot.workspace import Workspace

    ws = Workspace.create(tmp / f"ws-{name}", task="segment")
    import_dataset(ws, folder, format="masks", split="test", link=True,
                   options={"ignore_value": ignore})
    return ws


def decoder_latency(n: int = 60, quantize: bool = False) -> dict[str, float]:
    """Per-click decode time of the real-size SAM prompt encoder + mask decoder (random
    weights), on a real image, prompts growing as in the simulator."""
    from labelpilot.models.base import Click, Prompt
    from labelpilot.models.convert.sam import convert_sam
    from labelpilot.models.registry import load_segmenter

    with tempfile.TemporaryDirectory() as d:
        convert_sam(Path(d), "sam-arch", arch="sam_tiny", checkpoint=None, quantize=quantize)
        seg = load_segmenter("sam-arch", Path(d))
        img = read(next((SHARED / "datasets" / "grabcut" / "data_GT").glob("*.jpg")))
        emb = seg.embed(np.ascontiguousarray(img[..., ::-1]))
        h, w = img.shape[:2]
        rng = np.random.default_rng(0)
        times = []
        prompt = Prompt()
        for i in range(n):
            if i % 10 == 0:
                prompt = Prompt()
            prompt.clicks.append(Click(float(rng.uniform(0, w - 1)), float(rng.uniform(0, h - 1)),
                                       bool(rng.random() < 0.7)))
            t0 = time.perf_counter()
            out = seg.predict(emb, prompt)
            if i >= 5:  # the first calls allocate
                times.append((time.perf_counter() - t0) * 1000)
            prompt.previous = out[0].mask
        return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--baseline-every", type=int, default=1,
                    help="run OpenCV's grabCut on every K-th instance (it is slow)")
    ap.add_argument("--sam-models", type=Path, default=None,
                    help="a workspace whose SAM-family models to evaluate too")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from labelpilot.evaluation.interactive import evaluate_interactive
    from labelpilot.models.graphcut import GraphCutSegmenter
    from labelpilot.models.registry import load_segmenter
    from labelpilot.workspace import Workspace

    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lp-iseg-") as tmp_s:
        tmp = Path(tmp_s)
        full = build_sets(tmp / "full")
        sub = build_sets(tmp / "sub", args.baseline_every) if args.baseline_every > 1 else full
        sams = []
        if args.sam_models:
            ws_models = Workspace.open(args.sam_models)
            from labelpilot.models.registry import list_models

            sams = [(i.name, load_segmenter(i.name, ws_models.models_dir))
                    for i in list_models(ws_models.models_dir) if i.task == "segment"
                    and not i.builtin]
        for bench in full:
            sets = [("all", full[bench])]
            if args.baseline_every > 1:
                sets.append((f"every {args.baseline_every}th", sub[bench]))
            for which, (folder, ignore) in sets:
                ws = workspace(tmp / which.replace(" ", ""), bench, folder, ignore)
                models: list[tuple[str, Any]] = [("graphcut", GraphCutSegmenter()), *sams]
                if not args.skip_baseline and (which != "all" or args.baseline_every == 1):
                    models.insert(0, ("opencv-grabcut", OpenCVGrabCut()))
                for name, seg in models:
                    for first in ("click", "box"):
                        t0 = time.time()
                        r = evaluate_interactive(ws, model_name=None, split="test", first=first,
                                                 max_clicks=args.max_clicks, segmenter=seg,
                                                 stop_at=0.9)
                        r.update(bench=bench, subset=which, tool=name, seconds=time.time() - t0)
                        rows.append(r)
                        print(f"{bench:9} {which:10} {name:15} {first:5} "
                              f"NoC85 {r['noc85']:5.2f} NoC90 {r['noc90']:5.2f} "
                              f"mIoU@1/3/5 {r['miou_at_1']:.3f}/{r['miou_at_3']:.3f}/"
                              f"{r['miou_at_5']:.3f} p50/p95 {r['click_latency_p50_ms']:.0f}/"
                              f"{r['click_latency_p95_ms']:.0f} ms ({r['instances']} inst., "
                              f"{r['seconds']:.0f} s)", flush=True)
                ws.close()
    lat = {"fp32": decoder_latency(), "int8": decoder_latency(quantize=True)}
    for k, v in lat.items():
        print(f"\nSAM-architecture decoder (real size, random weights, {k}): per click "
              f"p50 {v['p50_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms")
    print("\n| set | subset | tool | first | NoC@85 | NoC@90 | mIoU@1 | mIoU@3 | mIoU@5 | "
          "p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['bench']} | {r['subset']} ({r['instances']}) | {r['tool']} | {r['first']} | "
              f"{r['noc85']:.2f} | {r['noc90']:.2f} | {r['miou_at_1']:.3f} | "
              f"{r['miou_at_3']:.3f} | {r['miou_at_5']:.3f} | {r['click_latency_p50_ms']:.0f} | "
              f"{r['click_latency_p95_ms']:.0f} |")
    (OUT / "interactive_seg.json").write_text(json.dumps({"rows": rows, "sam_decoder": lat},
                                                         indent=1))
    plot(rows, OUT / "interactive_seg.png")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    benches = sorted({r["bench"] for r in rows})
    fig, axes = plt.subplots(1, len(benches), figsize=(6 * len(benches), 4), squeeze=False)
    for ax, bench in zip(axes[0], benches, strict=True):
        for r in rows:
            if r["bench"] != bench:
                continue
            xs = range(1, len(r["miou_curve"]) + 1)
            ax.plot(xs, r["miou_curve"], marker=".",
                    label=f"{r['tool']}, first {r['first']} ({r['subset']})",
                    linestyle="-" if r["first"] == "click" else "--")
        ax.set_title(bench)
        ax.set_xlabel("interactions")
        ax.set_ylabel("mIoU")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
