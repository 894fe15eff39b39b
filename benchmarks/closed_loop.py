"""The closed loop on the licence plates: from the pretrained recognizer and 50 reviewed
lines, a simulated reviewer works through the queue (the ground truth as the oracle) while
LabelPilot's loop trains after every 50 accepted lines, promotes a better model, pre-labels
the rest again and re-selects; per round, the test accuracy of the model trained and of
the pre-labeler, whether it was promoted, and the share of the next reviews whose proposal
was accepted unchanged.

Data: shared/datasets/lpr_plates: the 700 train crops imported unlabeled (split train),
their transcriptions kept aside as the oracle; the 300 test crops with their labels
(split test, what the loop's verdicts are scored on).

Usage:
    python benchmarks/closed_loop.py [--reviews 300] [--every 50] [--minutes 1.5]
                                     [--select uncertainty|none]
Prints a table, saves benchmarks/out/closed_loop.json and closed_loop.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT / "src"))

from labelpilot import review  # noqa: E402
from labelpilot.annotations import Annotation, Quad  # noqa: E402
from labelpilot.jobs import engine, kinds  # noqa: E402
from labelpilot.jobs.loop import start_if_due  # noqa: E402
from labelpilot.store import repo  # noqa: E402
from labelpilot.transfer import import_dataset  # noqa: E402
from labelpilot.users import UserInfo  # noqa: E402
from labelpilot.workspace import LoopConfig, Workspace  # noqa: E402

REVIEWER = UserInfo(1, "rita", "reviewer", True)


def build(root: Path, n_train: int, n_test: int) -> tuple[Workspace, dict[str, str]]:
    """The workspace (train unlabeled, test labeled and marked done) and the oracle: file
    name -> text."""
    lpr = SHARED / "datasets" / "lpr_plates"
    ws = Workspace.create(root / "ws", task="ocr", labels=["text"])
    train = root / "train"
    (train / "images").mkdir(parents=True)
    truth = {}
    for ln in (lpr / "train_rec_gt.txt").read_text(encoding="utf-8").splitlines()[:n_train]:
        name, text = ln.split("\t")
        shutil.copy(lpr / name, train / name)
        truth[Path(name).name] = text
    import_dataset(ws, train / "images", format="images", split="train")
    test = root / "test"
    (test / "images").mkdir(parents=True)
    lines = (lpr / "test_rec_gt.txt").read_text(encoding="utf-8").splitlines()[:n_test]
    for ln in lines:
        shutil.copy(lpr / ln.split("\t")[0], test / ln.split("\t")[0])
    (test / "test_rec_gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    import_dataset(ws, test, format="ppocr-rec")
    with ws.transaction() as conn:  # ground truth: never handed out, never pre-labeled
        for row in repo.list_images(conn, "test"):
            review.set_review_state(conn, image_id=row.id, state="done", user=REVIEWER)
    return ws, truth


def review_one(ws: Workspace, row: Any, text: str) -> bool:
    """Review an image as a person would: a proposal read right is accepted, a wrong one
    corrected, a missing one drawn (the whole crop); the image is marked done. True when
    the proposal was accepted unchanged."""
    with ws.transaction() as conn:
        anns = repo.annotations_for_images(conn, [row.id]).get(row.id, [])
        props = [a for a in anns if a.status == "predicted"]
        right = next((a for a in props if a.text == text), None)
        keep = right or (props[0] if props else None)
        for a in props:
            if a is not keep and a.id is not None:
                review.update_annotation(conn, annotation_id=a.id, version=a.version,
                                         changes={"status": "rejected"}, user=REVIEWER)
        if keep is not None and keep.id is not None:
            changes: dict[str, Any] = {"status": "accepted"}
            if keep.text != text:
                changes["text"] = text
            review.update_annotation(conn, annotation_id=keep.id, version=keep.version,
                                     changes=changes, user=REVIEWER)
        else:
            w, h = float(row.width), float(row.height)
            review.create_annotation(conn, image_id=row.id, user=REVIEWER, annotation=Annotation(
                label="text", shape=Quad(((0, 0), (w, 0), (w, h), (0, h))), text=text,
                source="human", status="accepted"))
        review.set_review_state(conn, image_id=row.id, state="done", user=REVIEWER)
    return right is not None


def run_queued(ws: Workspace) -> list[Any]:
    """Run every queued job here, in order (the server's runner would)."""
    done: list[Any] = []
    while True:
        with ws.engine.connect() as conn:
            queued = [j for j in engine.list_jobs(conn) if j.status == "queued"]
        if not queued:
            return done
        done.append(engine.run_job(ws, min(j.id for j in queued), kinds.HANDLERS))


def submit(ws: Workspace, kind: str, params: dict[str, Any]) -> Any:
    with ws.transaction() as conn:
        job = kinds.submit(conn, kind=kind, params=params, user="bench")
    return engine.run_job(ws, job.id, kinds.HANDLERS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reviews", type=int, default=300)
    ap.add_argument("--start", type=int, default=50, help="lines reviewed before the loop")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=1.5)
    ap.add_argument("--select", default="uncertainty", choices=["uncertainty", "none"])
    ap.add_argument("--train-images", type=int, default=700)
    ap.add_argument("--test-images", type=int, default=300)
    args = ap.parse_args()
    t_start = time.monotonic()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ws, truth = build(Path(tmp), args.train_images, args.test_images)
        submit(ws, "autolabel", {"model": "ocr", "images": "all"})
        ws.config.loop = LoopConfig(enabled=True, every=args.every, minutes=args.minutes)
        reviewed = 0
        batch = args.start
        while True:
            if args.select != "none":
                from labelpilot.active.select import plan_select, pool_size

                n = min(batch, pool_size(ws, "train"))
                if n:
                    params = plan_select(ws, strategy=args.select, budget=n,
                                         model=ws.prelabeler, split="train")
                    submit(ws, "select", params.public())
            unchanged = 0
            for _ in range(batch):
                with ws.transaction() as conn:
                    row = review.claim_next(conn, user=REVIEWER,
                                            filters=review.ImageFilter(split="train"))
                if row is None:
                    break
                unchanged += review_one(ws, row, truth[Path(row.file_name).name])
                reviewed += 1
            if rounds:
                rounds[-1]["next_reviews"] = batch
                rounds[-1]["accepted_unchanged"] = round(unchanged / max(1, batch), 3)
            else:
                first = {"round": 0, "model": ws.prelabeler, "reviewed": reviewed,
                         "accepted_unchanged": round(unchanged / max(1, batch), 3)}
                rounds.append(first)
            if reviewed >= args.start + args.reviews:
                break
            job_id = start_if_due(ws)
            if job_id is None:
                raise SystemExit(f"no loop round was due after {reviewed} reviews")
            job = engine.run_job(ws, job_id, kinds.HANDLERS)
            if job.status != "done":
                raise SystemExit(f"round failed: {job.error}")
            result = job.result or {}
            verdict = result["loop"]
            run_queued(ws)  # the re-pre-labeling and re-selection a promotion queued
            rounds.append({"round": verdict["round"], "model": verdict["model"],
                           "reviewed": reviewed, "trained_on": job.params["loop"]["accepted"],
                           "test_accuracy": verdict.get("new"),
                           "prelabeler_accuracy": verdict.get("current"),
                           "promoted": verdict["promoted"], "prelabeler_after": ws.prelabeler,
                           "train_s": round(result.get("seconds", 0.0), 1)})
            batch = args.every
        ws.close()
    print(f"{'round':>5} {'reviewed':>8} {'trained on':>10} {'test acc':>8} {'was':>6} "
          f"{'promoted':>8} {'next reviews accepted unchanged':>32}")
    for r in rounds:
        acc = "" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.3f}"
        was = "" if r.get("prelabeler_accuracy") is None else f"{r['prelabeler_accuracy']:.3f}"
        print(f"{r['round']:>5} {r['reviewed']:>8} {r.get('trained_on', ''):>10} {acc:>8} "
              f"{was:>6} {r.get('promoted', '')!s:>8} {r.get('accepted_unchanged', ''):>32}")
    print(f"total {time.monotonic() - t_start:.0f} s")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "closed_loop.json").write_text(json.dumps({"args": vars(args), "rounds": rounds},
                                                     indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [r["reviewed"] for r in rounds if r.get("test_accuracy") is not None]
    ax.plot(xs, [r["test_accuracy"] for r in rounds if r.get("test_accuracy") is not None],
            marker="o", label="model trained this round: test line accuracy")
    ax.plot([r["reviewed"] for r in rounds],
            [r.get("accepted_unchanged", 0) for r in rounds], marker="s",
            label="next reviews: proposals accepted unchanged")
    ax.set_xlabel("lines reviewed")
    ax.set_ylim(0, 1)
    ax.set_title("Closed loop on the licence plates")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "closed_loop.png", dpi=100)


if __name__ == "__main__":
    main()
