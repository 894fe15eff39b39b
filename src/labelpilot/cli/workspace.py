"""`init`, `import`, `export`, `split`, `stats`, `report`, `gc`, `formats`, `demo`: the
workspace and its data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from labelpilot.cli.common import (
    JsonOpt,
    SplitOpt,
    StatusOpt,
    Task,
    err,
    open_workspace,
    out,
    print_json,
    progress_bar,
    user_errors,
)
from labelpilot.errors import LabelPilotError
from labelpilot.formats import list_formats

commands = typer.Typer()

@commands.command()
def init(
    directory: Annotated[Path, typer.Argument(help="New workspace directory.")],
    task: Annotated[Task, typer.Option(help="What the project labels.")],
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's).")] = None,
    labels: Annotated[str, typer.Option(help="Label classes, comma-separated.")] = "",
    database_url: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL (e.g. postgresql://user@host/db); default: SQLite in DIR.")] = None,
    text_lines: Annotated[str, typer.Option(help=(
        "OCR: how pre-labeling finds text lines: detect, or whole-image (each image is one "
        "cropped line, as in recognition data sets)."))] = "detect",
    as_json: JsonOpt = False,
) -> None:
    """Create a workspace."""
    from labelpilot.workspace import Workspace

    with user_errors():
        ws = Workspace.create(directory, name=name, task=task.value,
                              labels=labels.split(","), database_url=database_url,
                              text_lines=text_lines)
        ws.close()
    if as_json:
        print_json({"workspace": str(directory), "name": ws.config.name, "task": task.value,
                     "labels": ws.config.labels})
    else:
        out.print(f"Created workspace [bold]{ws.config.name}[/] ({task.value}) in {directory}")


@commands.command("import")
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
    as_json: JsonOpt = False,
) -> None:
    """Import images and labels."""
    from labelpilot.transfer import import_dataset

    with user_errors():
        ws = open_workspace(directory)
        with progress_bar(not as_json) as progress:
            report = import_dataset(ws, source, format=format,
                                    split=split.value if split else None, strict=strict,
                                    skip_invalid=skip_invalid, images_dir=images_dir,
                                    link=link, progress=progress,
                                    options={"ignore_value": ignore_value})
        ws.close()
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"Imported {report.images_added} new image(s) "
              f"({report.images_already_present} already present) and "
              f"{report.annotations_added} annotation(s) "
              f"({report.annotations_already_present} already present) from {escape(str(source))}")
    if report.labels_added:
        out.print(f"New label classes: {escape(', '.join(report.labels_added))}")
    for p in report.invalid_images:
        err.print(f"[yellow]skipped:[/] {escape(p)}", highlight=False)
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)


@commands.command()
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
    as_json: JsonOpt = False,
) -> None:
    """Export images and labels."""
    from labelpilot.transfer import export_dataset

    with user_errors():
        ws = open_workspace(directory)
        with progress_bar(not as_json) as progress:
            report = export_dataset(ws, dest, format=format, status=status.value,
                                    split=split.value if split else None,
                                    include_images=images, progress=progress,
                                    options={"ignore_value": ignore_value})
        ws.close()
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"Exported {report.images} image(s) and {report.annotations} annotation(s) "
              f"to {escape(str(dest))} ({format})")
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)


@commands.command()
def split(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    train: Annotated[float, typer.Option(help="Share of the images for train.")] = 0.8,
    val: Annotated[float, typer.Option(help="Share for val.")] = 0.1,
    test: Annotated[float, typer.Option(help="Share for test.")] = 0.1,
    stratify: Annotated[bool, typer.Option(help="Each split sees every class (an image "
                                           "counts as its rarest class).")] = True,
    unassigned_only: Annotated[bool, typer.Option(help="Keep the splits already given.")] = False,
    seed: Annotated[int, typer.Option(help="The same seed gives the same split.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Share the images out into train, val and test by ratio, stratified by class."""
    from labelpilot.splits import assign_splits

    with user_errors():
        ws = open_workspace(directory)
        with ws.transaction() as conn:
            result = assign_splits(conn, user=None, ratios={"train": train, "val": val,
                                                            "test": test},
                                   only_unassigned=unassigned_only, stratify=stratify,
                                   seed=seed)
        ws.close()
    if as_json:
        print_json(result)
        return
    out.print(f"assigned {result['assigned']} images: " + ", ".join(
        f"{k} {v}" for k, v in result["by_split"].items()))
    table = Table("class", *sorted(result["by_split"]), box=None, pad_edge=False)
    for cls, counts in result["by_class"].items():
        table.add_row(escape(cls), *(str(counts.get(k, 0)) for k in sorted(result["by_split"])))
    out.print(table)


@commands.command()
def stats(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    as_json: JsonOpt = False,
) -> None:
    """Counts of images and annotations by status, source, label, review state and split."""
    from labelpilot.transfer import workspace_stats

    with user_errors():
        ws = open_workspace(directory)
        s = workspace_stats(ws)
        ws.close()
    if as_json:
        print_json(s)
        return
    out.print(f"[bold]{escape(s['name'])}[/] ({s['task']}): {s['images']} images, "
              f"{s['annotations']} annotations")
    table = Table("", "count", box=None, show_header=False, pad_edge=False)
    for key, title in (("annotations_by_status", "annotations by status"),
                       ("annotations_by_source", "annotations by source"),
                       ("annotations_by_label", "annotations by label"),
                       ("images_by_review_state", "images by review state"),
                       ("images_by_split", "images by split")):
        table.add_row(f"[bold]{title}[/]", "")
        for k, v in s[key].items():
            table.add_row(f"  {escape(str(k))}", str(v))
    out.print(table)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise LabelPilotError(f"--since {text!r} is not a date",
                              hint="give it as YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@commands.command()
def report(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    out_path: Annotated[Path, typer.Option("--out", help="The HTML file to write (the "
                                           "figures' data go beside it as .json).")
                        ] = Path("report.html"),
    since: Annotated[str | None, typer.Option(
        help="Progress and throughput from this date on (YYYY-MM-DD); the dataset as a "
             "whole either way.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Analytics: dataset health, labeling progress and model quality as one self-contained
    HTML file of figures (and their data as JSON)."""
    from labelpilot.analytics.report import build, write

    with user_errors():
        when = _since(since)
        ws = open_workspace(directory)
        try:
            r = build(ws, since=when)
        finally:
            ws.close()
        html_path, json_path = write(r, out_path)
    if as_json:
        print_json({**r.to_dict(), "html": str(html_path), "json": str(json_path)})
        return
    drawn = sum(p.why_not is None for p in r.panels)
    out.print(f"wrote {escape(str(html_path))} ({drawn} of {len(r.panels)} figures and tables"
              f" drawn, {r.seconds:.1f} s) and its data {escape(str(json_path))}")
    for p in r.panels:
        if p.why_not is not None:
            out.print(f"  not drawn: {escape(p.title)}: {escape(p.why_not)}")


@commands.command()
def gc(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    wait: Annotated[bool, typer.Option(help="Wait for running imports and uploads.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove stored image files no image refers to (left by a failed or killed import)."""
    from labelpilot.transfer import collect_garbage

    with user_errors():
        ws = open_workspace(directory)
        done = collect_garbage(ws, wait=wait)
        ws.close()
    if done is None:
        err.print("an import or upload is storing images now; nothing was removed "
                  "(run again later, or with --wait)")
        raise typer.Exit(1)
    if as_json:
        print_json(done)
        return
    out.print(f"removed {done['blobs']} unreferenced image files and {done['temporary']} "
              f"temporary files ({done['bytes']:,} bytes)")


@commands.command()
def formats() -> None:
    """List the import/export formats."""
    from labelpilot.formats import get_format

    table = Table("format", "what")
    for name in list_formats():
        table.add_row(name, get_format(name).description)
    out.print(table)


@commands.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Where to build the demo workspace.")],
    force: Annotated[bool, typer.Option(help="Rebuild if it exists.")] = False,
    project: Annotated[str, typer.Option(help=(
        "ocr: labels with text lines (OCR proposals); segment: machine parts outlined "
        "as polygons and masks (graph-cut proposals); detect: the parts as boxes (click-to-"
        "box proposals)"))] = "ocr",
) -> None:
    """Build a demo workspace (generated images, half reviewed, a quarter with a model's
    proposals to review) and print its stats."""
    from labelpilot.demo import build_demo

    with user_errors():
        build_demo(directory, force=force, project=project)
    stats(directory, as_json=False)

