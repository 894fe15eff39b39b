"""`autolabel`, `eval`, `eval-interactive`: pre-labeling and measuring models."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from labelpilot.cli.common import (
    BlobsOpt,
    ExecutorKind,
    ExecutorOpt,
    GpusOpt,
    ImagesOpt,
    JsonOpt,
    MapOpt,
    RayAddressOpt,
    S3EndpointOpt,
    SplitOpt,
    WorkersOpt,
    class_map,
    err,
    executor_spec,
    finish_job,
    open_workspace,
    out,
    print_json,
    progress_bar,
    run_job,
    user_errors,
)

commands = typer.Typer()

TileOpt = Annotated[int | None, typer.Option(
    "--tile", help="Detectors: tiles of this many pixels (with --overlap) for large images "
                   "with small objects; boxes merged across the seams.")]
OverlapOpt = Annotated[float, typer.Option(help="With --tile: the tiles' overlap, a share.")]



@commands.command()
def autolabel(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    model: Annotated[str | None, typer.Option(help=(
        "Model name (see `labelpilot models list`) [default: the project's pre-labeler: "
        "the built-in OCR model in OCR projects, or the one the closed loop promoted]"))
    ] = None,
    images: Annotated[ImagesOpt, typer.Option(help="new: images no model or person has "
                                              "touched; all: every image not done.")] = ImagesOpt.new,
    min_score: Annotated[float, typer.Option(help="Drop proposals scored lower.")] = 0.0,
    map_: MapOpt = None,
    unmapped: Annotated[str | None, typer.Option(
        help="Detectors: classes neither mapped nor named like a project label: drop or add "
             "(default: add when the project has no labels yet, else drop).")] = None,
    tile: TileOpt = None,
    overlap: OverlapOpt = 0.2,
    lines: Annotated[str | None, typer.Option(help=(
        "OCR models: detect (find the text lines) or whole-image (each image is one cropped "
        "line: the recognizer reads it whole) [default: the project's text_lines]"))] = None,
    executor: ExecutorOpt = ExecutorKind.local,
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = 0.0,
    blobs: BlobsOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pre-label images with a model (a resumable job; proposals are `predicted`)."""

    from labelpilot.jobs import kinds
    from labelpilot.jobs.autolabel import plan_autolabel

    with user_errors():
        ws = open_workspace(directory)
        spec = executor_spec(executor, ray_address, workers, gpus_per_worker, blobs,
                             s3_endpoint)
        pairs = class_map(map_)
        kind, params = plan_autolabel(ws, model=model, images=images.value,
                                      min_score=min_score, mapping=pairs,
                                      unmapped=unmapped, tile=tile, overlap=overlap,
                                      lines=lines, executor=spec)
        with ws.transaction() as conn:
            job = kinds.submit(conn, kind=kind, user="cli", params=params)
        job = run_job(ws, job.id, f"autolabel ({params['model']})", show=not as_json)
        ws.close()
    if as_json:
        print_json(job.public())
    elif job.status != "done":
        err.print(f"[red]autolabel {job.status}:[/] {escape(job.error or '')}", highlight=False)
    else:
        r = job.result or {}
        if not r.get("images"):
            out.print(f"Nothing to do: no {images.value} images (images marked done are never "
                      "touched).")
        else:
            out.print(f"Pre-labeled {r['images']} image(s) with {r['model']}: {r['added']} "
                      f"proposal(s), {r['replaced']} earlier proposal(s) replaced, "
                      f"{r['covered']} left out where a person's label is")
        for f in r.get("failed_images", []):
            err.print(f"[yellow]failed:[/] {escape(str(f))}", highlight=False)
    if job.status != "done":
        raise typer.Exit(1)


@commands.command("eval")
def eval_(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    model: Annotated[str, typer.Option(help="Model name.")] = "ocr",
    split: Annotated[SplitOpt | None, typer.Option(help="Evaluate on this split "
                                                   "(default: every image).")] = None,
    map_: MapOpt = None,
    tile: TileOpt = None,
    overlap: OverlapOpt = 0.2,
    executor: ExecutorOpt = ExecutorKind.local,
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = 0.0,
    blobs: BlobsOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a model against the accepted labels: OCR detection P/R/H, recognition
    accuracy and CER on the true quads, end-to-end accept rate; detectors: mAP, per-class
    AP and accept rate (classes mapped as `autolabel --map` would)."""
    from labelpilot.evaluation.run import evaluate_model

    with user_errors():
        ws = open_workspace(directory)
        spec = executor_spec(executor, ray_address, workers, gpus_per_worker, blobs,
                             s3_endpoint)
        with progress_bar(not as_json) as progress:
            result = evaluate_model(ws, model_name=model, split=split.value if split else None,
                                    progress=progress, mapping=class_map(map_),
                                    tile=tile, overlap=overlap, executor=spec)
        ws.close()
    if as_json:
        print_json(result)
        return
    if "map50" in result:
        table = Table("class", "instances", "AP50", "AP50:95",
                      title=f"{result['model']} on {result['images']} images: mAP50 "
                            f"{result['map50']:.3f}, mAP50:95 {result['map50_95']:.3f}, accept "
                            f"rate {result['accept_rate']:.3f}, precision of the proposals "
                            f"shown {result['precision']:.3f}")
        for name, c in sorted(result["per_class"].items()):
            table.add_row(escape(name), str(c["instances"]), f"{c['ap50']:.3f}", f"{c['ap50_95']:.3f}")
        out.print(table)
        return
    table = Table("metric", "value", title=f"{result['model']} on {result['lines']} lines of "
                  f"{result['images']} images")
    for k in ("det_precision", "det_recall", "det_hmean", "rec_line_accuracy", "rec_cer",
              "e2e_accept_rate"):
        table.add_row(k, f"{result[k]:.3f}")
    out.print(table)


@commands.command("eval-interactive")
def eval_interactive(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    model: Annotated[str | None, typer.Option(
        help="An interactive segmenter (default: the best available offline).")] = None,
    split: Annotated[SplitOpt | None, typer.Option(help="Evaluate on this split "
                                                   "(default: every image).")] = None,
    first: Annotated[str, typer.Option(help="click: start from one positive click; box: from "
                                       "the object's bounding box.")] = "click",
    max_clicks: Annotated[int, typer.Option(help="Interactions per instance.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Simulated clicks (RITM's protocol) on the accepted masks: NoC@85/90, mIoU after
    1/3/5 interactions, latency per interaction."""
    from labelpilot.evaluation.interactive import evaluate_interactive

    with user_errors():
        ws = open_workspace(directory)
        with progress_bar(not as_json) as progress:
            r = evaluate_interactive(ws, model_name=model, split=split.value if split else None,
                                     first=first, max_clicks=max_clicks, progress=progress)
        ws.close()
    if as_json:
        print_json(r)
        return
    table = Table("metric", "value", title=f"{r['model']}, {r['instances']} instances, "
                  f"first: {r['first']}")
    for k in ("noc85", "noc90", "miou_at_1", "miou_at_3", "miou_at_5", "click_latency_p50_ms",
              "click_latency_p95_ms"):
        table.add_row(k, f"{r[k]:.3f}" if "miou" in k else f"{r[k]:.2f}")
    out.print(table)


class StrategyOpt(StrEnum):
    uncertainty = "uncertainty"
    diversity = "diversity"
    hybrid = "hybrid"
    random = "random"


@commands.command("select")
def select_(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    budget: Annotated[int, typer.Option(help="How many images to put first in the queue.")],
    strategy: Annotated[StrategyOpt, typer.Option(
        help="uncertainty: where the model is least sure; diversity: the images least like "
             "those labeled (k-center greedy on the model's backbone features); hybrid: the "
             "most uncertain three times the budget, spread out; random: a seeded draw."
    )] = StrategyOpt.hybrid,
    model: Annotated[str | None, typer.Option(
        help="The model that scores (default: the project's pre-labeler: the built-in OCR "
             "model in OCR projects, or the one the closed loop promoted).")
    ] = None,
    split: Annotated[SplitOpt | None, typer.Option(
        help="Choose among this split's images only (default: every split).")] = None,
    seed: Annotated[int, typer.Option(help="random: the draw; diversity with nothing "
                                           "labeled: 0 starts from a typical image.")] = 0,
    executor: ExecutorOpt = ExecutorKind.local,
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = 0.0,
    blobs: BlobsOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Choose what to label next (active learning): the chosen images become the labeling
    queue's first, each with its score and the reason (a resumable job)."""

    from labelpilot.active.select import plan_select
    from labelpilot.jobs import kinds

    with user_errors():
        ws = open_workspace(directory)
        spec = executor_spec(executor, ray_address, workers, gpus_per_worker, blobs,
                             s3_endpoint)
        params = plan_select(ws, strategy=strategy.value, budget=budget, model=model,
                             split=split.value if split else None, seed=seed,
                             executor=spec)
        with ws.transaction() as conn:
            job = kinds.submit(conn, kind="select", user="cli", params=params.public())
        job = run_job(ws, job.id, f"select ({strategy.value})", show=not as_json)
        ws.close()

    def show(j: Any) -> None:
        r = j.result
        table = Table("#", "image", "score", "why", title=(
            f"{len(r['selected'])} of {r['pool']} image(s) first in the queue "
            f"({r['strategy']}{', ' + r['model'] if r['model'] else ''})"))
        for k, s in enumerate(r["selected"], start=1):
            table.add_row(str(k), escape(s["file_name"]),
                          "" if s["score"] is None else f"{s['score']:.3f}", escape(s["reason"]))
        out.print(table)

    finish_job(job, "select", as_json=as_json, show=show)
