"""`models list|add|catalogue|convert`: built-in and workspace models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from labelpilot.cli.common import JsonOpt, open_workspace, out, print_json, user_errors

app = typer.Typer(help="Models: built in and in the workspace.", no_args_is_help=True)


@app.command("list")
def models_list(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    as_json: JsonOpt = False,
) -> None:
    """List the models this workspace can use."""
    from dataclasses import asdict

    from labelpilot.models.registry import list_models

    with user_errors():
        ws = open_workspace(directory)
        infos = list_models(ws.models_dir)
    if as_json:
        print_json([asdict(i) for i in infos])
        return
    table = Table("name", "version", "task", "where", "description")
    for i in infos:
        table.add_row(escape(i.name), i.version, i.task, "built in" if i.builtin else "workspace",
                      i.description)
    out.print(table)


@app.command("add")
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

    with user_errors():
        ws = open_workspace(directory)
        m = install(ws.models_dir, name, source)
    out.print(f"Installed {m.name} ({m.kind}, {len(m.files)} file(s)) into {m.root}")


@app.command("catalogue")
def models_catalogue(
    as_json: JsonOpt = False,
) -> None:
    """The models `models add` can install."""
    from labelpilot.models.catalogue import CATALOGUE

    if as_json:
        print_json([{"name": e.name, "task": e.task, "kind": e.kind,
                      "description": e.description, "licence": e.licence,
                      "files": [{"role": f.role, "url": f.url, "sha256": f.sha256}
                                for f in e.files]} for e in CATALOGUE.values()])
        return
    table = Table("name", "task", "kind", "licence", "description")
    for e in CATALOGUE.values():
        table.add_row(e.name, e.task, e.kind, e.licence, e.description)
    out.print(table)


@app.command("convert")
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
    from labelpilot.models.convert.sam import convert_sam

    with user_errors():
        ws = open_workspace(directory)
        m = convert_sam(ws.models_dir, name, arch=arch, checkpoint=checkpoint, quantize=quantize)
    out.print(f"Converted {arch} to {m.root} (ONNX parity {m.metrics['onnx_parity']:.1e})")
