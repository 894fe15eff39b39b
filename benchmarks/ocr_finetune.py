"""Fine-tuning from pretrained weights against training from scratch, same budget.

Two recognition sets: the real licence plates under shared/datasets/lpr_plates (its own
train/test split) and generated industrial markings (dot-matrix, inkjet and stamped lot
codes rendered with the fonts on this machine). For each: the pretrained model's
zero-shot line accuracy and CER on the test split, then `--init pretrained` and
`--init scratch` with the same time budget; the time each needs to reach the scratch
run's final validation accuracy, the final test accuracy at equal budget, the peak
resident memory of the fine-tuning run, and the accuracy-vs-time curves (PNG,
benchmarks/out/finetune-curves.png).

Usage:
    python benchmarks/ocr_finetune.py [--minutes 5] [--sets plates,industrial]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"]


def industrial(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Lot codes as printers and stamps make them: dot-matrix, inkjet, stamped."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = random.Random(seed)
    fonts = [f for f in FONTS if Path(f).exists()]
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "crops").mkdir(parents=True)
    n = 0
    for split, count in (("train", n_train), ("test", n_test)):
        lines = []
        for _ in range(count):
            code = rng.choice([
                f"LOT {rng.randint(10, 99)}{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(1000, 9999)}",
                f"EXP {rng.randint(1, 12):02d}/{rng.randint(24, 31)}",
                f"{rng.randint(100000, 999999)}-{rng.choice('ABCDEFGHJK')}{rng.randint(10, 99)}",
                f"SN{rng.randint(10**7, 10**8 - 1)}"])
            # Rendered large, then sampled on the printer's dot grid: a character is 7 to
            # 9 dots tall, as on real 5x7 / 7x9 dot-matrix and inkjet coders.
            font = ImageFont.truetype(rng.choice(fonts), rng.randint(44, 52))
            style = rng.choice(["dot", "inkjet", "stamp"])
            w = int(font.getlength(code)) + 40
            ink = Image.new("L", (w, 80), 0)
            ImageDraw.Draw(ink).text((20, 10), code, fill=255, font=font)
            mask = np.asarray(ink) > 128
            bg = rng.randint(150, 230)
            img = np.full(mask.shape, bg, dtype=np.float32)
            if style in ("dot", "inkjet"):
                pitch = 5
                dots = np.zeros_like(mask)
                dots[::pitch, ::pitch] = mask[::pitch, ::pitch]
                drop = np.random.default_rng(rng.randrange(1 << 30)).random(dots.shape) < 0.04
                dots &= ~drop
                canvas = Image.fromarray((dots * 255).astype(np.uint8)).filter(
                    ImageFilter.MaxFilter(3))
                if style == "inkjet":
                    canvas = canvas.filter(ImageFilter.GaussianBlur(1.2))
                level = np.asarray(canvas, dtype=np.float32) / 255
                img = np.asarray(img * (1 - level) + rng.randint(10, 60) * level, np.float32)
            else:  # stamped: embossed, lower contrast
                level = np.asarray(ink.filter(ImageFilter.GaussianBlur(1.0)), np.float32) / 255
                shade = np.roll(level, 2, axis=0) - level
                img = np.asarray(img + 60 * shade - 45 * level, np.float32)
            img += np.random.default_rng(rng.randrange(1 << 30)).normal(0, 6, img.shape)
            big = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).convert("RGB")
            out = big.resize((max(1, big.width * 44 // big.height), 44), Image.Resampling.BILINEAR)
            name = f"crops/{split}_{n:05d}.png"
            out.save(folder / name)
            lines.append(f"{name}\t{code}\n")
            n += 1
        (folder / f"{split}_rec_gt.txt").write_text("".join(lines), encoding="utf-8")
    return folder


def run_one(kind: str, source: Path, minutes: float) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "src"))
    from labelpilot.evaluation.run import evaluate_model
    from labelpilot.train.ocr_rec import TrainConfig, Trainer
    from labelpilot.transfer import import_dataset
    from labelpilot.workspace import Workspace

    results: dict[str, Any] = {}
    for init in ("zero-shot", "pretrained", "scratch"):
        root = OUT / f"ft-{kind}-{init}"
        shutil.rmtree(root, ignore_errors=True)
        ws = Workspace.create(root, task="ocr", labels=["text"])
        import_dataset(ws, source, format="ppocr-rec", link=True)
        if init == "zero-shot":
            r = evaluate_model(ws, model_name="ocr", split="test")
            results[init] = {"test_accuracy": r["rec_line_accuracy"], "test_cer": r["rec_cer"]}
            continue
        trainer = Trainer(ws, TrainConfig(init=init, minutes=minutes, name=f"{kind}-{init}",
                                          patience=10**6, eval_every=10),
                          run_dir=root / "run")
        res = trainer.run()
        r = evaluate_model(ws, model_name=f"{kind}-{init}", split="test")
        results[init] = {"test_accuracy": r["rec_line_accuracy"], "test_cer": r["rec_cer"],
                         "history": res.history, "seconds": res.seconds, "steps": res.steps,
                         "peak_rss_mb": res.peak_rss_mb}
        ws.close()
    return results


def time_to_reach(history: list[dict[str, float]], target: float) -> float | None:
    for h in history:
        if h["val_accuracy"] >= target:
            return h["seconds"]
    return None


def peak_gb(run: dict[str, Any]) -> str:
    """The training process's peak resident memory (saved results from before it was
    measured have none)."""
    peak = run.get("peak_rss_mb")
    return f"{peak / 1024:.1f}" if peak else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--sets", default="plates,industrial")
    ap.add_argument("--report", action="store_true",
                    help="print the table from the last run's saved results, no training")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    sources = {"plates": SHARED / "datasets" / "lpr_plates",
               "industrial": OUT / "industrial-set"}
    table = {}
    for kind in args.sets.split(","):
        saved = OUT / f"finetune-{kind}.json"
        if args.report:
            table[kind] = json.loads(saved.read_text())
            continue
        if kind == "industrial":
            industrial(sources[kind])
        table[kind] = run_one(kind, sources[kind], args.minutes)
        saved.write_text(json.dumps(table[kind], indent=1))
    print(f"\nbudget {args.minutes:g} min of CPU training per run, {os.cpu_count()} cores")
    print(f"{'set':<12}{'zero-shot acc':>14}{'scratch acc':>13}{'pretrained acc':>16}"
          f"{'pretrained - scratch':>22}{'time to scratch final':>24}{'peak RSS (GB)':>15}")
    for kind, r in table.items():
        sc, pt = r["scratch"], r["pretrained"]
        final_scratch_val = sc["history"][-1]["val_accuracy"] if sc["history"] else 0.0
        t_pt = time_to_reach(pt["history"], final_scratch_val)
        t_sc = time_to_reach(sc["history"], final_scratch_val)
        if final_scratch_val <= 0:
            ratio = "scratch stays at 0"
        elif t_pt is not None and t_sc:
            ratio = f"{t_pt:.0f} s vs {t_sc:.0f} s ({100 * t_pt / t_sc:.0f}%)"
        else:
            ratio = "n/a"
        print(f"{kind:<12}{r['zero-shot']['test_accuracy']:>14.3f}{sc['test_accuracy']:>13.3f}"
              f"{pt['test_accuracy']:>16.3f}{100 * (pt['test_accuracy'] - sc['test_accuracy']):>+21.1f}p"
              f"{ratio:>24}{peak_gb(pt):>15}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(table), figsize=(6 * len(table), 3.5), squeeze=False)
        for ax, (kind, r) in zip(axes[0], table.items(), strict=True):
            for init in ("pretrained", "scratch"):
                h = r[init]["history"]
                ax.plot([p["seconds"] for p in h], [p["val_accuracy"] for p in h], label=init)
            ax.set_title(kind)
            ax.set_xlabel("training time (s)")
            ax.set_ylabel("validation line accuracy")
            ax.set_ylim(0, 1)
            ax.legend()
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(OUT / "finetune-curves.png", dpi=100)
        print(f"curves: {(OUT / 'finetune-curves.png').relative_to(ROOT)}")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
