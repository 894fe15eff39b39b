"""Active-learning curves: rounds of labeling with retraining between them, random sampling
against LabelPilot's uncertainty, diversity and hybrid selection, over several seeds; the
test figure against the number of labels, with the spread across seeds.

Each run starts from a copy of one workspace (the pool unlabeled in the train split, the
test set labeled and done) and repeats: `select` (round 0: a random draw, the same for
every strategy of a seed), a simulated reviewer labels the chosen images with the ground
truth (the oracle), `train` from the pretrained model on everything labeled so far, the
new model scored on the test split and used for the next selection. Everything runs
through LabelPilot's own jobs (select, train-ocr-rec, train-detect), in this process.

Sets:
- plates: shared/datasets/lpr_plates, the 700 train crops as the pool (a `text_lines =
  "whole-image"` project: each crop one line), the 300 test crops as the test set; the
  recognizer fine-tuned for `--epochs` each round; figure: test line accuracy
  (exact) of the recognizer on the crops.
- detect: a Pascal VOC set with a class COCO lacks (`--data raccoon=XML_DIR:IMAGES_DIR`,
  github.com/datitran/raccoon_dataset; not shipped): `--test` images labeled as the test
  set, the rest the pool; yolox-nano fine-tuned for `--epochs` each round (its class
  layer learns the new class); figure: test mAP50 by the COCO protocol.

Usage:
    python benchmarks/al_curves.py plates [--seeds 0,1,2] [--start 20 --step 20 --rounds 5]
                                          [--epochs 15] [--pool 700] [--test-images 300]
    python benchmarks/al_curves.py detect --data raccoon=DIR/annotations:DIR/images
                                          [--start 8 --step 8 --rounds 3 --epochs 30]
Prints a table (mean and spread per strategy and label count; the labels each strategy
needs to reach random sampling's final figure), saves benchmarks/out/al_curves_<set>.json
and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT / "src"))

from labelpilot import review  # noqa: E402
from labelpilot.active.select import plan_select  # noqa: E402
from labelpilot.annotations import Annotation, Box, Quad  # noqa: E402
from labelpilot.jobs import engine, kinds  # noqa: E402
from labelpilot.jobs.train import plan_training  # noqa: E402
from labelpilot.store import repo  # noqa: E402
from labelpilot.transfer import import_dataset  # noqa: E402
from labelpilot.users import UserInfo  # noqa: E402
from labelpilot.workspace import Workspace  # noqa: E402

REVIEWER = UserInfo(1, "rita", "reviewer", True)
STRATEGIES = ["random", "uncertainty", "diversity", "hybrid"]

# the oracle: file name -> what a person labels (plates: the text; detect: boxes)
Oracle = dict[str, Any]


def submit(ws: Workspace, kind: str, params: dict[str, Any]) -> Any:
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind=kind, params=params, user="bench")
    job = engine.run_job(ws, job.id, kinds.HANDLERS)
    if job.status != "done":
        raise SystemExit(f"{kind} failed: {job.error}")
    return job


def label(ws: Workspace, names: list[str], oracle: Oracle, task: str) -> None:
    """The simulated reviewer: each chosen image labeled with the truth and marked done."""
    with ws.transaction() as conn:
        by_name = {Path(r.file_name).name: r for r in repo.list_images(conn, "train")}
        for name in names:
            row = by_name[Path(name).name]
            w, h = float(row.width), float(row.height)
            truth = oracle[Path(name).name]
            shapes: list[tuple[Any, str, str | None]] = (
                [(Quad(((0, 0), (w, 0), (w, h), (0, h))), "text", truth)] if task == "plates"
                else [(Box(*b), cls, None) for b, cls in truth])
            for shape, cls, text in shapes:
                review.create_annotation(conn, image_id=row.id, user=REVIEWER, annotation=(
                    Annotation(label=cls, shape=shape, text=text, source="human",
                               status="accepted")))
            review.set_review_state(conn, image_id=row.id, state="done", user=REVIEWER)


# --- the sets --------------------------------------------------------------------------

def plates_template(root: Path, pool: int, n_test: int) -> tuple[Workspace, Oracle, Any]:
    lpr = SHARED / "datasets" / "lpr_plates"
    ws = Workspace.create(root / "ws", task="ocr", labels=["text"], text_lines="whole-image")
    folder = root / "pool"
    folder.mkdir()
    oracle: Oracle = {}
    for ln in (lpr / "train_rec_gt.txt").read_text(encoding="utf-8").splitlines()[:pool]:
        name, text = ln.split("\t")
        shutil.copy(lpr / name, folder / Path(name).name)
        oracle[Path(name).name] = text
    import_dataset(ws, folder, format="images", split="train")
    test = []
    for ln in (lpr / "test_rec_gt.txt").read_text(encoding="utf-8").splitlines()[:n_test]:
        name, text = ln.split("\t")
        test.append((cv2.imdecode(np.fromfile(str(lpr / name), np.uint8), cv2.IMREAD_COLOR),
                     text))
    return ws, oracle, test


def plates_score(ws: Workspace, model: str, test: Any) -> float:
    """Line accuracy (exact) of the model's recognizer on the test crops."""
    from labelpilot.models.registry import load_ocr

    ocr = load_ocr(model, ws.models_dir, threads=2)
    read = ocr.recognize([im for im, _ in test])
    return sum(t == truth for (t, _), (_, truth) in zip(read, test, strict=True)) / len(test)


def voc_boxes(xml: Path) -> tuple[str, list[tuple[tuple[float, float, float, float], str]]]:
    root = ET.parse(xml).getroot()
    out = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        assert bb is not None
        out.append((tuple(float(bb.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")),
                    (obj.findtext("name") or "").strip()))
    return (root.findtext("filename") or xml.stem + ".jpg").strip(), out  # type: ignore[return-value]


def detect_template(root: Path, data: str, n_test: int, seed: int = 0
                    ) -> tuple[Workspace, Oracle, Any]:
    """The VOC set's images: `n_test` (a fixed random draw) imported with their labels as
    the test split and marked done, the rest imported unlabeled as the pool."""
    from labelpilot.models.catalogue import install

    _, _, dirs = data.partition("=")
    xml_dir, _, images = dirs.partition(":")
    items = []
    for xml in sorted(Path(xml_dir).glob("*.xml")):
        name, boxes = voc_boxes(xml)
        if (Path(images) / name).is_file() and boxes:
            items.append((xml, name, boxes))
    order = np.random.default_rng(seed).permutation(len(items))
    test = [items[int(i)] for i in order[:n_test]]
    rest = [items[int(i)] for i in order[n_test:]]
    classes = sorted({c for _, _, bs in items for _, c in bs})
    ws = Workspace.create(root / "ws", task="detect", labels=classes)
    tdir = root / "test"
    (tdir / "ann").mkdir(parents=True)
    (tdir / "img").mkdir()
    for xml, name, _ in test:
        shutil.copy(xml, tdir / "ann" / xml.name)
        shutil.copy(Path(images) / name, tdir / "img" / name)
    import_dataset(ws, tdir / "ann", format="voc", images_dir=tdir / "img", split="test")
    with ws.transaction() as conn:
        for row in repo.list_images(conn, "test"):
            review.set_review_state(conn, image_id=row.id, state="done", user=REVIEWER)
    pdir = root / "pool"
    pdir.mkdir()
    oracle: Oracle = {}
    for _, name, boxes in rest:
        shutil.copy(Path(images) / name, pdir / name)
        oracle[name] = boxes
    import_dataset(ws, pdir, format="images", split="train")
    install(ws.models_dir, "yolox-nano", str(SHARED / "models"))
    return ws, oracle, None


def detect_score(ws: Workspace, model: str, test: Any) -> float:
    from labelpilot.evaluation.run import evaluate_model

    return float(evaluate_model(ws, model_name=model, split="test")["map50"])


# --- a run -----------------------------------------------------------------------------

def run(template: Path, task: str, strategy: str, seed: int, args: argparse.Namespace,
        oracle: Oracle, test: Any, score: Callable[[Workspace, str, Any], float],
        base: str) -> list[dict[str, Any]]:
    """One strategy and seed: start + (rounds - 1) x step labels, the test figure after
    each round's training."""
    work = template.parent / f"run-{strategy}-{seed}"
    shutil.rmtree(work, ignore_errors=True)
    # round 0 (a random draw and its training) is the same for every strategy of a seed:
    # run once, its workspace kept and copied
    first = template.parent / f"round0-{seed}"
    done_first = (first / "point.json").is_file()
    shutil.copytree(first if done_first else template, work)
    ws = Workspace.open(work)
    points = []
    model = base
    labeled = 0
    if done_first:
        points.append({**json.loads((first / "point.json").read_text()), "strategy": strategy})
        labeled, model = points[0]["labels"], "al-1"
        print(json.dumps(points[-1]), flush=True)
    try:
        for k in range(1 if done_first else 0, args.rounds):
            budget = args.start if k == 0 else args.step
            how = "random" if k == 0 else strategy
            p = plan_select(ws, strategy=how, budget=budget,
                            model=None if how == "random" else model, split="train",
                            seed=seed)
            t0 = time.monotonic()
            chosen = submit(ws, "select", p.public()).result["selected"]
            select_s = time.monotonic() - t0
            label(ws, [c["file_name"] for c in chosen], oracle, task)
            labeled += len(chosen)
            name = f"al-{k + 1}"
            if task == "plates":
                kind, params = plan_training(task="ocr-rec", epochs=args.epochs, name=name)
            else:
                kind, params = plan_training(task="detect", epochs=args.epochs, name=name,
                                             base="yolox-nano")
            if task == "plates":
                params["seed"] = seed
            t0 = time.monotonic()
            trained = submit(ws, kind, params).result or {}
            train_s = time.monotonic() - t0
            model = name
            figure = score(ws, model, test)
            points.append({"strategy": strategy, "seed": seed, "round": k, "labels": labeled,
                           "score": round(figure, 4), "steps": trained.get("steps"),
                           "kept_step": trained.get("kept_step"),
                           "select_s": round(select_s, 1),
                           "train_s": round(train_s, 1)})
            print(json.dumps(points[-1]), flush=True)
            if k == 0:
                ws.close()
                shutil.copytree(work, first)
                (first / "point.json").write_text(json.dumps(points[-1]))
                ws = Workspace.open(work)
    finally:
        ws.close()
        shutil.rmtree(work, ignore_errors=True)
    return points


def summarize(points: list[dict[str, Any]], strategies: list[str]) -> dict[str, Any]:
    """Mean and spread per strategy and label count; the labels each strategy needs (mean
    curve, linearly interpolated) to reach random sampling's final mean figure."""
    table: dict[str, dict[int, list[float]]] = {}
    for p in points:
        table.setdefault(p["strategy"], {}).setdefault(p["labels"], []).append(p["score"])
    curves = {s: {n: (float(np.mean(v)), float(np.std(v)), len(v))
                  for n, v in sorted(table.get(s, {}).items())} for s in strategies}
    rand = curves.get("random") or {}
    target = rand[max(rand)][0] if rand else None
    need: dict[str, float | None] = {}
    for s, c in curves.items():
        need[s] = None
        if target is None or not c:
            continue
        prev = None
        for n, (m, _, _) in c.items():
            if m >= target:
                if prev is None or prev[1] >= target:
                    need[s] = float(n)
                else:  # between the two rounds
                    n0, m0 = prev
                    need[s] = n0 + (n - n0) * (target - m0) / max(1e-9, m - m0)
                break
            prev = (n, m)
    final = max(rand) if rand else None
    return {"curves": {s: {str(n): v for n, v in c.items()} for s, c in curves.items()},
            "random_final": target, "random_final_labels": final,
            "labels_to_reach_random_final": need,
            "share_of_random_labels": {s: (None if v is None or not final else round(v / final, 3))
                                       for s, v in need.items()}}


def plot(summary: dict[str, Any], title: str, ylabel: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for s, c in summary["curves"].items():
        if not c:
            continue
        xs = [int(n) for n in c]
        mean = np.array([v[0] for v in c.values()])
        sd = np.array([v[1] for v in c.values()])
        ax.plot(xs, mean, marker="o", label=s)
        ax.fill_between(xs, mean - sd, mean + sd, alpha=0.15)
    if summary["random_final"] is not None:
        ax.axhline(summary["random_final"], color="grey", ls=":", lw=1,
                   label="random's final figure")
    ax.set_xlabel("images labeled")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("set", choices=["plates", "detect"])
    ap.add_argument("--data", help="detect: NAME=XML_DIR:IMAGES_DIR (Pascal VOC)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--start", type=int, default=None)
    ap.add_argument("--step", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=30,
                    help="epochs per round (by epochs, not minutes: a busy machine changes "
                         "the time a round takes, not what it learns)")
    ap.add_argument("--pool", type=int, default=700, help="plates: pool size")
    ap.add_argument("--test-images", type=int, default=None)
    args = ap.parse_args()
    plates = args.set == "plates"
    args.start = args.start or (20 if plates else 8)
    args.step = args.step or (20 if plates else 8)
    args.rounds = args.rounds or (5 if plates else 3)
    args.test_images = args.test_images or (300 if plates else 100)
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = args.strategies.split(",")
    t_start = time.monotonic()
    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lp-al-") as tmp:
        if plates:
            ws, oracle, test = plates_template(Path(tmp), args.pool, args.test_images)
            score, base, name = plates_score, "ocr", "licence plates (recognizer)"
        else:
            if not args.data:
                raise SystemExit("detect needs --data NAME=XML_DIR:IMAGES_DIR")
            ws, oracle, test = detect_template(Path(tmp), args.data, args.test_images)
            score, base = detect_score, "yolox-nano"
            name = f"{args.data.partition('=')[0]} (detector, a class COCO lacks)"
        template = ws.root
        ws.close()
        for seed in seeds:
            for strategy in strategies:
                points += run(template, args.set, strategy, seed, args, oracle, test, score,
                              base)
    summary = summarize(points, strategies)
    metric = "test line accuracy" if plates else "test mAP50"
    print(f"\n{args.set}: {metric}, mean ± sd over seeds {seeds} "
          f"({time.monotonic() - t_start:.0f} s)")
    counts = sorted({p["labels"] for p in points})
    print("| strategy | " + " | ".join(f"{n} labels" for n in counts) +
          " | labels to reach random's final | share |")
    print("|---|" + "---:|" * (len(counts) + 2))
    for s in strategies:
        c = summary["curves"][s]
        cells = [f"{c[str(n)][0]:.3f} ± {c[str(n)][1]:.3f}" if str(n) in c else ""
                 for n in counts]
        need = summary["labels_to_reach_random_final"][s]
        share = summary["share_of_random_labels"][s]
        print(f"| {s} | " + " | ".join(cells) +
              f" | {'not reached' if need is None else f'{need:.0f}'} | "
              f"{'' if share is None else f'{share:.0%}'} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"al_curves_{args.set}.json").write_text(json.dumps(
        {"args": vars(args), "points": points, "summary": summary}, indent=1))
    plot(summary, f"Active learning: {name}", metric, OUT / f"al_curves_{args.set}.png")


if __name__ == "__main__":
    main()
