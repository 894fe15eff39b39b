"""`train`: fine-tune the recognizer or a detector on the reviewed labels, as a job (one
training at a time per workspace; an interrupted one resumes with --resume)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from labelpilot.cli.common import (
    InitOpt,
    JsonOpt,
    err,
    finish_job,
    open_workspace,
    out,
    run_job,
    user_errors,
)
from labelpilot.errors import LabelPilotError

commands = typer.Typer()


@commands.command()
def train(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    task: Annotated[str, typer.Option(help="What to train: ocr-rec (the text recognizer) or "
                                      "detect (a detector: custom auto-label).")] = "ocr-rec",
    init: Annotated[InitOpt, typer.Option(help="Start from the pretrained weights or from "
                                          "scratch.")] = InitOpt.pretrained,
    epochs: Annotated[int | None, typer.Option(help="Passes over the train split.")] = None,
    minutes: Annotated[float | None, typer.Option(help="A time budget instead.")] = None,
    name: Annotated[str | None, typer.Option(help="Name of the new model.")] = None,
    base: Annotated[str | None, typer.Option(help="The model to start from. ocr-rec: a "
                                             "workspace OCR model trained before [default: "
                                             "the shipped one]. detect: an installed model "
                                             "with a YOLOX head "
                                             "[default: yolox-nano]; several, comma-separated "
                                             "(yolox-nano,person-detector): each is trained "
                                             "for the whole budget and the best on held-out "
                                             "images kept.")] = None,
    tile: Annotated[str | None, typer.Option(help="Detectors, large images with small "
                                             "objects: learn in tiles of this many pixels "
                                             "(the model then pre-labels in them too), or "
                                             "auto: chosen from the boxes' sizes.")] = None,
    overlap: Annotated[float, typer.Option(help="With --tile: the tiles' overlap, a "
                                           "share.")] = 0.2,
    resume: Annotated[int | None, typer.Option(help="Resume the interrupted training job "
                                               "with this id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune on the accepted labels of the train split: the text recognizer
    (--task ocr-rec) or a detector (--task detect; evaluated on the test split)."""
    from labelpilot.extras import require_torch
    from labelpilot.jobs import engine, kinds
    from labelpilot.jobs.train import TRAINING_KINDS, ensure_no_other_training, plan_training

    with user_errors():
        kind, params = plan_training(task=task, init=init.value, epochs=epochs,
                                     minutes=minutes, name=name, base=base, tile=tile,
                                     overlap=overlap)
        ws = open_workspace(directory)
        require_torch()
        with ws.transaction() as conn:
            if resume is not None:
                job = engine.get_job(conn, resume)
                if job.kind not in TRAINING_KINDS.values():
                    raise LabelPilotError(f"job {resume} is a {job.kind} job, not a training")
                ensure_no_other_training(conn, job.id)
                job_id = job.id
            else:
                ensure_no_other_training(conn)
                job_id = kinds.submit(conn, kind=kind, user="cli", params=params).id
        job = run_job(ws, job_id, f"train {task} ({init.value})", show=not as_json)
        ws.close()
    def show(job: Any) -> None:
        if job.kind == "train-detect":
            _print_detector(job.result, directory, job.params.get("init", "pretrained"))
        else:
            _print_recognizer(job.result)

    finish_job(job, "training", as_json=as_json, show=show, omit=("history",))


def _print_recognizer(r: dict[str, Any]) -> None:
    out.print(f"Trained [bold]{r['model']}[/]: validation line accuracy "
              f"{r['val_accuracy']:.3f}, CER {r['val_cer']:.3f}, {r['steps']} steps in "
              f"{r['seconds']:.0f} s")
    if r["new_characters"]:
        out.print(f"New characters: {escape(''.join(r['new_characters']))}")
    for s in r["skipped"][:20]:
        err.print(f"[yellow]skipped:[/] {escape(s)}", highlight=False)


def _print_detector(r: dict[str, Any], directory: Path, init: str) -> None:
    for w in r.get("warnings", []):
        err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    out.print(f"Trained [bold]{r['name']}[/] ({init}) on {r['train_images']} images / "
              f"{r['train_boxes']} boxes of {', '.join(r['classes'])}: {r['steps']} steps in "
              f"{r['seconds']:.0f} s")
    new = [c for c, b in r["base_classes"].items() if not b]
    if new and init == "pretrained":
        out.print(f"New to {escape(r.get('base') or 'the base model')} (learnt in channels of "
                  f"their own): {escape(', '.join(new))}")
    if r.get("seconds_per_step"):
        parts = ", ".join(f"{k} {v:.2f}" for k, v in r["seconds_per_step"].items())
        out.print(f"Seconds a training step (body unfrozen): {parts}")
    if r["val_map50"] >= 0:
        kept = (f"the weights of step {r['kept_step']}" if r["kept_step"] else
                "the starting weights (training did not improve on them)")
        out.print(f"Kept {kept}: held-out mAP50 {r['val_map50']:.3f}")
    if len(r.get("bases") or []) > 1:
        table = Table("base", "held-out mAP50", "steps", "ms/image", "test mAP50",
                      "test accept rate", title=f"Base models compared: {escape(r['base'])} "
                      "kept (the best on the held-out images)")
        for b in r["bases"]:
            table.add_row(escape(b["base"]), f"{b['val_map50']:.3f}", str(b["steps"]),
                          "" if b["ms_per_image"] is None else f"{b['ms_per_image']:.0f}",
                          "" if b["test_map50"] is None else f"{b['test_map50']:.3f}",
                          "" if b["test_accept_rate"] is None else f"{b['test_accept_rate']:.3f}")
        out.print(table)
    tiles = r.get("tiling")
    if tiles:
        out.print(f"Trained on {tiles['train_tiles']} tiles of {tiles['tile']} px (overlap "
                  f"{tiles['overlap']:g}) from {tiles['train_images']} images; it pre-labels "
                  "large images in such tiles")
    t = r.get("thresholds")
    if t:
        per_class = "".join(f", {escape(c)} {v:.2f} (F1 {t['f1'][c]:.2f})"
                            for c, v in sorted(t["class_thresholds"].items()))
        out.print(f"Display thresholds chosen on the {t['images']} held-out images: "
                  f"{t['score_threshold']:.2f} (F1 {t['f1']['all']:.2f}){per_class}")
    test = r.get("test")
    if test:
        table = Table("class", "instances", "AP50", "AP50:95",
                      title=f"test split: mAP50 {test['map50']:.3f}, accept rate "
                            f"{test['accept_rate']:.3f}, precision of the proposals shown "
                            f"{test.get('precision', 0):.3f}")
        for c, v in sorted(test["per_class"].items()):
            table.add_row(escape(c), str(v["instances"]), f"{v['ap50']:.3f}", f"{v['ap50_95']:.3f}")
        out.print(table)
        for e in test.get("examples", [])[:5]:
            what = [f"missed {len(e['misses'])}"] if e["misses"] else []
            what += [f"{len(e['false_alarms'])} false alarm"
                     f"{'s' if len(e['false_alarms']) != 1 else ''}"] if e["false_alarms"] else []
            out.print(f"  to fix in {escape(e['file_name'])}: {', '.join(what)}")
    out.print(f"Pre-label the rest with: labelpilot autolabel {directory} --model {r['name']}")
