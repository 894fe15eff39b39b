"""The `labelpilot` command: thin shells over the same services the server uses."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from labelpilot import __version__
from labelpilot.errors import LabelPilotError
from labelpilot.formats.base import list_formats

app = typer.Typer(help="LabelPilot: smart labeling for computer vision.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
err = Console(stderr=True)
out = Console()


class Task(StrEnum):
    ocr = "ocr"
    detect = "detect"
    segment = "segment"
    classify = "classify"


class SplitOpt(StrEnum):
    train = "train"
    val = "val"
    test = "test"


class StatusOpt(StrEnum):
    accepted = "accepted"
    all = "all"


def _fail(e: LabelPilotError) -> None:
    err.print(f"[bold red]error:[/] {e.message}", highlight=False, markup=True, soft_wrap=True)
    if e.hint:
        err.print(f"[yellow]hint:[/] {e.hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except LabelPilotError as e:
        _fail(e)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _run_job(ws: Any, job_id: int, label: str, *, show: bool) -> Any:
    """Run (or resume) a job here, in a worker thread, with a progress bar from its row."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from labelpilot import jobs

    with _progress(show) as progress, ThreadPoolExecutor(1) as pool:
        future = pool.submit(jobs.run_job, ws, job_id)
        while not future.done():
            time.sleep(0.3)
            if progress:
                with ws.engine.connect() as conn:
                    j = jobs.get_job(conn, job_id)
                progress(label, j.done, max(j.total, 1))
        return future.result()


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def _open(directory: Path) -> Any:
    from labelpilot.workspace import Workspace

    return Workspace.open(directory)


def _version(value: bool) -> None:
    if value:
        out.print(f"labelpilot {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version,
                                               is_eager=True, help="Print the version.")] = False
         ) -> None:
    """LabelPilot: import, pre-label, review, fine-tune, optimize, serve."""


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="New workspace directory.")],
    task: Annotated[Task, typer.Option(help="What the project labels.")],
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's).")] = None,
    labels: Annotated[str, typer.Option(help="Label classes, comma-separated.")] = "",
    database_url: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL (e.g. postgresql://user@host/db); default: SQLite in DIR.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a workspace."""
    from labelpilot.workspace import Workspace

    with _user_errors():
        ws = Workspace.create(directory, name=name, task=task.value,
                              labels=labels.split(","), database_url=database_url)
        ws.close()
    if as_json:
        _print_json({"workspace": str(directory), "name": ws.config.name, "task": task.value,
                     "labels": ws.config.labels})
    else:
        out.print(f"Created workspace [bold]{ws.config.name}[/] ({task.value}) in {directory}")


@app.command("import")
def import_(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    source: Annotated[Path, typer.Argument(help="Folder, label file or archive to import.")],
    format: Annotated[str, typer.Option("--format", "-f",
                                        help=f"One of: {', '.join(list_formats())}.")],
    split: Annotated[SplitOpt | None, typer.Option(help="Put every image in this split.")] = None,
    strict: Annotated[bool, typer.Option(help="Refuse label classes the workspace lacks.")] = False,
    skip_invalid: Annotated[bool, typer.Option(help="Import the rest when images are bad.")] = False,
    images_dir: Annotated[Path | None, typer.Option(help="Where the images are, if not "
                                                    "beside the labels.")] = None,
    link: Annotated[bool, typer.Option(help="Hard-link images into the workspace instead of "
                                       "copying (fast; for read-only originals).")] = False,
    ignore_value: Annotated[int | None, typer.Option(
        help="masks format: the mask value of regions to ignore (128 GrabCut, 255 VOC).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Import images and labels."""
    from labelpilot.transfer import import_dataset

    with _user_errors():
        ws = _open(directory)
        with _progress(not as_json) as progress:
            report = import_dataset(ws, source, format=format,
                                    split=split.value if split else None, strict=strict,
                                    skip_invalid=skip_invalid, images_dir=images_dir,
                                    link=link, progress=progress,
                                    options={"ignore_value": ignore_value})
        ws.close()
    if as_json:
        _print_json(report.to_dict())
        return
    out.print(f"Imported {report.images_added} new image(s) "
              f"({report.images_already_present} already present) and "
              f"{report.annotations_added} annotation(s) "
              f"({report.annotations_already_present} already present) from {source}")
    if report.labels_added:
        out.print(f"New label classes: {', '.join(report.labels_added)}")
    for p in report.invalid_images:
        err.print(f"[yellow]skipped:[/] {p}", highlight=False)
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    dest: Annotated[Path, typer.Argument(help="New (or empty) folder to write.")],
    format: Annotated[str, typer.Option("--format", "-f",
                                        help=f"One of: {', '.join(list_formats())}.")],
    status: Annotated[StatusOpt, typer.Option(
        help="accepted: human-confirmed labels; all: also model proposals.")] = StatusOpt.accepted,
    split: Annotated[SplitOpt | None, typer.Option(help="Export only this split.")] = None,
    images: Annotated[bool, typer.Option(help="Also write the image files.")] = True,
    ignore_value: Annotated[int | None, typer.Option(
        help="masks format: the value written for ignore regions (default 255).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Export images and labels."""
    from labelpilot.transfer import export_dataset

    with _user_errors():
        ws = _open(directory)
        with _progress(not as_json) as progress:
            report = export_dataset(ws, dest, format=format, status=status.value,
                                    split=split.value if split else None,
                                    include_images=images, progress=progress,
                                    options={"ignore_value": ignore_value})
        ws.close()
    if as_json:
        _print_json(report.to_dict())
        return
    out.print(f"Exported {report.images} image(s) and {report.annotations} annotation(s) "
              f"to {dest} ({format})")
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


@app.command()
def stats(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counts of images and annotations by status, source, label, review state and split."""
    from labelpilot.transfer import workspace_stats

    with _user_errors():
        ws = _open(directory)
        s = workspace_stats(ws)
        ws.close()
    if as_json:
        _print_json(s)
        return
    out.print(f"[bold]{s['name']}[/] ({s['task']}): {s['images']} images, "
              f"{s['annotations']} annotations")
    table = Table("", "count", box=None, show_header=False, pad_edge=False)
    for key, title in (("annotations_by_status", "annotations by status"),
                       ("annotations_by_source", "annotations by source"),
                       ("annotations_by_label", "annotations by label"),
                       ("images_by_review_state", "images by review state"),
                       ("images_by_split", "images by split")):
        table.add_row(f"[bold]{title}[/]", "")
        for k, v in s[key].items():
            table.add_row(f"  {k}", str(v))
    out.print(table)


users_app = typer.Typer(help="Manage the workspace's users.", no_args_is_help=True)
app.add_typer(users_app, name="users")


class RoleOpt(StrEnum):
    annotator = "annotator"
    reviewer = "reviewer"
    admin = "admin"


@users_app.command("add")
def users_add(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    username: Annotated[str, typer.Option(help="The new user's name.")],
    role: Annotated[RoleOpt, typer.Option(help="annotator, reviewer or admin.")],
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard "
                                                 "input instead of a prompt.")] = False,
) -> None:
    """Add a user (the password is asked for, or read from stdin)."""
    from labelpilot import users

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _user_errors():
        ws = _open(directory)
        with ws.engine.begin() as conn:
            user = users.add_user(conn, username=username, password=password, role=role.value)
        ws.close()
    out.print(f"Added {user.username} ({user.role})")


@users_app.command("list")
def users_list(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the users and their roles."""
    from labelpilot import users

    with _user_errors():
        ws = _open(directory)
        with ws.engine.connect() as conn:
            rows = users.list_users(conn)
        ws.close()
    if as_json:
        _print_json([{"username": u.username, "role": u.role, "active": u.active} for u in rows])
        return
    table = Table("user", "role", "active")
    for u in rows:
        table.add_row(u.username, u.role, "yes" if u.active else "no")
    out.print(table)


jobs_app = typer.Typer(help="Background jobs (the same ones the server runs).",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the jobs, newest first."""
    from labelpilot import jobs

    with _user_errors():
        ws = _open(directory)
        with ws.engine.connect() as conn:
            rows = jobs.list_jobs(conn)
        ws.close()
    if as_json:
        _print_json([j.public() for j in rows])
        return
    table = Table("id", "kind", "status", "done", "total", "created by")
    for j in rows:
        table.add_row(str(j.id), j.kind, j.status, str(j.done), str(j.total), j.created_by or "")
    out.print(table)


@jobs_app.command("run")
def jobs_run(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    job_id: Annotated[int | None, typer.Argument(help="The job; default: every queued or "
                                                 "interrupted one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Run (or resume) jobs here, with a progress bar, instead of in a server."""

    from sqlalchemy import select

    from labelpilot import jobs

    with _user_errors():
        ws = _open(directory)
        with ws.engine.connect() as conn:
            if job_id is not None:
                ids = [jobs.get_job(conn, job_id).id]
            else:
                ids = list(conn.execute(select(jobs.jobs_t.c.id).where(
                    jobs.jobs_t.c.status.in_(["queued", "running"])).order_by(
                    jobs.jobs_t.c.id)).scalars())
        results = []
        for jid in ids:
            with ws.engine.connect() as conn:
                kind = jobs.get_job(conn, jid).kind
            results.append(_run_job(ws, jid, f"job {jid} ({kind})", show=not as_json))
        ws.close()
    if as_json:
        _print_json([j.public() for j in results])
        return
    for j in results:
        out.print(f"job {j.id} ({j.kind}): {j.status}" + (f": {j.error}" if j.error else ""))
    if not results:
        out.print("no queued or interrupted jobs")


@app.command()
def serve(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the workspace: the REST API (OpenAPI at /docs) and background jobs."""
    import uvicorn

    from labelpilot.server.app import create_app, ensure_admin

    with _user_errors():
        ws = _open(directory)
        first = ensure_admin(ws)
    if first:
        out.print(f"[bold]First start: created user [cyan]{first[0]}[/] with the one-time "
                  f"password [cyan]{first[1]}[/][/] (shown only now; change it after signing in)")
    out.print(f"Serving {ws.config.name} on http://{host}:{port}  (API docs: /docs)")
    uvicorn.run(create_app(ws), host=host, port=port, log_level="warning")


class ImagesOpt(StrEnum):
    new = "new"
    all = "all"


@app.command()
def autolabel(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    model: Annotated[str, typer.Option(help="Model name (see `labelpilot models list`).")] = "ocr",
    images: Annotated[ImagesOpt, typer.Option(help="new: images no model or person has "
                                              "touched; all: every image not done.")] = ImagesOpt.new,
    min_score: Annotated[float, typer.Option(help="Drop proposals scored lower.")] = 0.0,
    map_: MapOpt = None,
    unmapped: Annotated[str | None, typer.Option(
        help="Detectors: classes neither mapped nor named like a project label: drop or add "
             "(default: add when the project has no labels yet, else drop).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Pre-label images with a model (a resumable job; proposals are `predicted`)."""

    from labelpilot import jobs

    with _user_errors():
        ws = _open(directory)
        from labelpilot.prelabel import plan_autolabel

        pairs = _class_map(map_)
        kind, params = plan_autolabel(ws, model=model, images=images.value,
                                      min_score=min_score, mapping=pairs,
                                      unmapped=unmapped)
        with ws.transaction() as conn:
            job = jobs.submit(conn, kind=kind, user="cli", params=params)
        job = _run_job(ws, job.id, f"autolabel ({model})", show=not as_json)
        ws.close()
    if as_json:
        _print_json(job.public())
    elif job.status != "done":
        err.print(f"[red]autolabel {job.status}:[/] {job.error or ''}", highlight=False)
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
            err.print(f"[yellow]failed:[/] {f}", highlight=False)
    if job.status != "done":
        raise typer.Exit(1)


def _class_map(items: list[str] | None) -> dict[str, str] | None:
    """--map MODEL_CLASS=PROJECT_LABEL options as a dict (an empty label drops the class)."""
    pairs = {}
    for item in items or []:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip():
            raise LabelPilotError(f"--map {item!r} is not MODEL_CLASS=PROJECT_LABEL",
                                  hint="e.g. --map 'dining table=table' (or 'person=' to "
                                       "drop that class)")
        pairs[src.strip()] = dst.strip()
    return pairs or None


MapOpt = Annotated[list[str] | None, typer.Option(
    "--map", help="Detectors: model class = project label (repeat it), e.g. "
                  "--map 'dining table=table'; 'person=' drops a class.")]


@app.command("eval")
def eval_(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    model: Annotated[str, typer.Option(help="Model name.")] = "ocr",
    split: Annotated[SplitOpt | None, typer.Option(help="Evaluate on this split "
                                                   "(default: every image).")] = None,
    map_: MapOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Evaluate a model against the accepted labels: OCR detection P/R/H, recognition
    accuracy and CER on the true quads, end-to-end accept rate; detectors: mAP, per-class
    AP and accept rate (classes mapped as `autolabel --map` would)."""
    from labelpilot.prelabel import evaluate_model

    with _user_errors():
        ws = _open(directory)
        with _progress(not as_json) as progress:
            result = evaluate_model(ws, model_name=model, split=split.value if split else None,
                                    progress=progress, mapping=_class_map(map_))
        ws.close()
    if as_json:
        _print_json(result)
        return
    if "map50" in result:
        table = Table("class", "instances", "AP50", "AP50:95",
                      title=f"{result['model']} on {result['images']} images: mAP50 "
                            f"{result['map50']:.3f}, mAP50:95 {result['map50_95']:.3f}, accept "
                            f"rate {result['accept_rate']:.3f}")
        for name, c in sorted(result["per_class"].items()):
            table.add_row(name, str(c["instances"]), f"{c['ap50']:.3f}", f"{c['ap50_95']:.3f}")
        out.print(table)
        return
    table = Table("metric", "value", title=f"{result['model']} on {result['lines']} lines of "
                  f"{result['images']} images")
    for k in ("det_precision", "det_recall", "det_hmean", "rec_line_accuracy", "rec_cer",
              "e2e_accept_rate"):
        table.add_row(k, f"{result[k]:.3f}")
    out.print(table)


class InitOpt(StrEnum):
    pretrained = "pretrained"
    scratch = "scratch"


@app.command()
def train(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    task: Annotated[str, typer.Option(help="What to train: ocr-rec (the text recognizer) or "
                                      "detect (a detector: custom auto-label).")] = "ocr-rec",
    init: Annotated[InitOpt, typer.Option(help="Start from the pretrained weights or from "
                                          "scratch.")] = InitOpt.pretrained,
    epochs: Annotated[int | None, typer.Option(help="Passes over the train lines.")] = None,
    minutes: Annotated[float | None, typer.Option(help="A time budget instead.")] = None,
    name: Annotated[str | None, typer.Option(help="Name of the new model.")] = None,
    resume: Annotated[int | None, typer.Option(help="Resume the interrupted training job "
                                               "with this id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fine-tune on the accepted labels of the train split: the text recognizer
    (--task ocr-rec) or a detector (--task detect; evaluated on the test split)."""

    from labelpilot import jobs
    from labelpilot.train.job import ensure_no_other_training

    if task == "detect":
        _train_detector(directory, init.value, epochs, minutes, name, as_json)
        return
    if task != "ocr-rec":
        _fail(LabelPilotError(f"task {task!r} cannot be trained", hint="use ocr-rec or detect"))
    if epochs is None and minutes is None:
        epochs = 10
    with _user_errors():
        ws = _open(directory)
        from labelpilot.train import require_torch

        require_torch()
        with ws.transaction() as conn:
            if resume is not None:
                job = jobs.get_job(conn, resume)
                ensure_no_other_training(conn, job.id)
                job_id = job.id
            else:
                ensure_no_other_training(conn)
                job_id = jobs.submit(conn, kind="train-ocr-rec", user="cli", params={
                    "init": init.value, "epochs": epochs, "minutes": minutes,
                    "name": name}).id
        job = _run_job(ws, job_id, f"train ({init.value})", show=not as_json)
        ws.close()
    if as_json:
        _print_json({**(job.result or {}), "job": job.id, "status": job.status,
                     "error": job.error})
    elif job.status == "done" and job.result:
        r = job.result
        out.print(f"Trained [bold]{r['model']}[/]: validation line accuracy "
                  f"{r['val_accuracy']:.3f}, CER {r['val_cer']:.3f}, {r['steps']} steps in "
                  f"{r['seconds']:.0f} s")
        if r["new_characters"]:
            out.print(f"New characters: {''.join(r['new_characters'])}")
        for s in r["skipped"][:20]:
            err.print(f"[yellow]skipped:[/] {s}", highlight=False)
    else:
        err.print(f"[red]training {job.status}:[/] {job.error or ''}", highlight=False)
    if job.status != "done":
        raise typer.Exit(1)


def _train_detector(directory: Path, init: str, epochs: int | None, minutes: float | None,
                    name: str | None, as_json: bool) -> None:
    from labelpilot.train.detect import DetectTrainConfig, DetectTrainer, result_dict

    if epochs is None and minutes is None:
        minutes = 5.0
    with _user_errors():
        ws = _open(directory)
        from labelpilot.train import require_torch

        require_torch()
        cfg = DetectTrainConfig(init=init, minutes=minutes if epochs is None else None,
                                epochs=epochs, name=name or f"detector-{init}")
        with _progress(not as_json) as progress:
            from labelpilot.train import budget_progress

            report = budget_progress(cfg.minutes, lambda d, t: progress and progress("train", d, t))
            trainer = DetectTrainer(ws, cfg, progress=report,
                                    warn=lambda m: err.print(f"[yellow]warning:[/] {m}"))
            r = trainer.run()
        ws.close()
    if as_json:
        d = result_dict(r)
        d.pop("history")
        _print_json(d)
        return
    out.print(f"Trained [bold]{r.name}[/] ({init}) on {r.train_images} images / {r.train_boxes} "
              f"boxes of {', '.join(r.classes)}: {r.steps} steps in {r.seconds:.0f} s")
    moved = {c: b for c, b in r.base_classes.items() if b != [c]}
    for c, b in moved.items():
        out.print(f"{c} is said by the base model's {', '.join(b)} (found on the training "
                  f"boxes; {b[0]} trained)")
    if r.val_map50 >= 0:
        kept = (f"the weights of step {r.kept_step}" if r.kept_step else
                "the starting weights (training did not improve on them)")
        out.print(f"Kept {kept}: held-out mAP50 {r.val_map50:.3f}")
    if r.test:
        table = Table("class", "instances", "AP50", "AP50:95",
                      title=f"test split: mAP50 {r.test['map50']:.3f}, accept rate "
                            f"{r.test['accept_rate']:.3f}")
        for c, v in sorted(r.test["per_class"].items()):
            table.add_row(c, str(v["instances"]), f"{v['ap50']:.3f}", f"{v['ap50_95']:.3f}")
        out.print(table)
    out.print(f"Pre-label the rest with: labelpilot autolabel {directory} --model {r.name}")


models_app = typer.Typer(help="Models: built in and in the workspace.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the models this workspace can use."""
    from dataclasses import asdict

    from labelpilot.models.registry import list_models

    with _user_errors():
        ws = _open(directory)
        infos = list_models(ws.models_dir)
    if as_json:
        _print_json([asdict(i) for i in infos])
        return
    table = Table("name", "version", "task", "where", "description")
    for i in infos:
        table.add_row(i.name, i.version, i.task, "built in" if i.builtin else "workspace",
                      i.description)
    out.print(table)


@models_app.command("add")
def models_add(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    name: Annotated[str, typer.Argument(help="Catalogue name (see `labelpilot models "
                                        "catalogue`).")],
    source: Annotated[str | None, typer.Option(
        "--from", help="A local file or folder, or a URL, instead of the catalogue's URL "
                       "(checked against the catalogue's SHA-256 all the same).")] = None,
) -> None:
    """Install a catalogue model into the workspace (SHA-256 checked; nothing is left
    behind on failure)."""
    from labelpilot.models.catalogue import install

    with _user_errors():
        ws = _open(directory)
        m = install(ws.models_dir, name, source)
    out.print(f"Installed {m.name} ({m.kind}, {len(m.files)} file(s)) into {m.root}")


@models_app.command("catalogue")
def models_catalogue(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The models `models add` can install."""
    from labelpilot.models.catalogue import CATALOGUE

    if as_json:
        _print_json([{"name": e.name, "task": e.task, "kind": e.kind,
                      "description": e.description, "licence": e.licence,
                      "files": [{"role": f.role, "url": f.url, "sha256": f.sha256}
                                for f in e.files]} for e in CATALOGUE.values()])
        return
    table = Table("name", "task", "kind", "licence", "description")
    for e in CATALOGUE.values():
        table.add_row(e.name, e.task, e.kind, e.licence, e.description)
    out.print(table)


@models_app.command("convert")
def models_convert(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    name: Annotated[str, typer.Argument(help="Name to register the converted model as.")],
    arch: Annotated[str, typer.Option(help="sam_vit_b, sam_vit_l, sam_vit_h (or sam_tiny).")],
    checkpoint: Annotated[Path | None, typer.Option(
        help="The PyTorch checkpoint (.pth); without it, random weights (for trying the "
             "path out and measuring latency).")] = None,
    quantize: Annotated[bool, typer.Option(
        help="Store the decoder's weights as INT8 (faster clicks on a CPU; kept only if its "
             "masks agree with FP32 on 98% of the pixels).")] = False,
) -> None:
    """Export a PyTorch SAM checkpoint to an ONNX encoder/decoder pair (parity-checked)."""
    from labelpilot.segment.convert import convert_sam

    with _user_errors():
        ws = _open(directory)
        m = convert_sam(ws.models_dir, name, arch=arch, checkpoint=checkpoint, quantize=quantize)
    out.print(f"Converted {arch} to {m.root} (ONNX parity {m.metrics['onnx_parity']:.1e})")


@app.command("eval-interactive")
def eval_interactive(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    model: Annotated[str | None, typer.Option(
        help="An interactive segmenter (default: the best available offline).")] = None,
    split: Annotated[SplitOpt | None, typer.Option(help="Evaluate on this split "
                                                   "(default: every image).")] = None,
    first: Annotated[str, typer.Option(help="click: start from one positive click; box: from "
                                       "the object's bounding box.")] = "click",
    max_clicks: Annotated[int, typer.Option(help="Interactions per instance.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Simulated clicks (RITM's protocol) on the accepted masks: NoC@85/90, mIoU after
    1/3/5 interactions, latency per interaction."""
    from labelpilot.segment.evaluate import evaluate_interactive

    with _user_errors():
        ws = _open(directory)
        with _progress(not as_json) as progress:
            r = evaluate_interactive(ws, model_name=model, split=split.value if split else None,
                                     first=first, max_clicks=max_clicks, progress=progress)
        ws.close()
    if as_json:
        _print_json(r)
        return
    table = Table("metric", "value", title=f"{r['model']}, {r['instances']} instances, "
                  f"first: {r['first']}")
    for k in ("noc85", "noc90", "miou_at_1", "miou_at_3", "miou_at_5", "click_latency_p50_ms",
              "click_latency_p95_ms"):
        table.add_row(k, f"{r[k]:.3f}" if "miou" in k else f"{r[k]:.2f}")
    out.print(table)


@app.command()
def formats() -> None:
    """List the import/export formats."""
    from labelpilot.formats.base import get_format

    table = Table("format", "what")
    for name in list_formats():
        table.add_row(name, get_format(name).description)
    out.print(table)


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to build the demo workspace.")],
    force: Annotated[bool, typer.Option(help="Rebuild if it exists.")] = False,
) -> None:
    """Build a demo OCR workspace from the bundled sample images and print its stats."""
    from labelpilot.demo import build_demo

    with _user_errors():
        build_demo(directory, force=force)
    stats(directory, as_json=False)


if __name__ == "__main__":
    app()
