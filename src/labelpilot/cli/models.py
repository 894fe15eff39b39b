"""`models list|add|catalogue|convert`: built-in and workspace models."""

from __future__ import annotations

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
    JsonOpt,
    RayAddressOpt,
    S3EndpointOpt,
    WorkersOpt,
    executor_spec,
    finish_job,
    open_workspace,
    out,
    print_json,
    run_job,
    user_errors,
)

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
    table = Table("name", "version", "task", "where", "variants", "description")
    for i in infos:
        variants = ", ".join(f"{k} ({v.get('speedup', 0):.1f}x, {v['metric']['value']:.3f} "
                             f"{v['metric']['name']})" for k, v in i.variants.items())
        table.add_row(escape(i.name), i.version, i.task, "built in" if i.builtin else "workspace",
                      escape(variants), i.description)
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


@app.command("optimize")
def models_optimize(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    name: Annotated[str, typer.Argument(
        help="The model to optimize: a workspace detector or OCR model, or the built-in OCR "
             "model.")],
    int8: Annotated[bool, typer.Option(help="Make a static INT8 variant for the CPU, "
                                       "calibrated on the workspace's images.")] = True,
    fp16: Annotated[bool, typer.Option(help="Make an FP16 variant (GPUs).")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or tensorrt.")] = "cpu",
    calibrate_on: Annotated[str, typer.Option(help="The split whose accepted images "
                                              "calibrate INT8: train or val (never the one "
                                              "scored).")] = "train",
    images: Annotated[int, typer.Option(help="Calibration images, at most.")] = 64,
    method: Annotated[str, typer.Option(help="Calibration: minmax, entropy or "
                                        "percentile.")] = "percentile",
    max_loss: Annotated[float, typer.Option(help="Points of the metric a variant may "
                                            "lose (mAP50 x 100).")] = 1.0,
    min_speedup: Annotated[float, typer.Option(help="How many times faster a variant must "
                                               "be.")] = 1.5,
    prune: Annotated[bool, typer.Option(help="OCR: also try the recognizer with its output "
                                        "layer pruned to the characters of the calibration "
                                        "split's labels.")] = True,
    only: Annotated[str | None, typer.Option(help="Try one file only: det or rec (OCR), "
                                             "model (detectors).")] = None,
    executor: ExecutorOpt = ExecutorKind.local,
    ray_address: RayAddressOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = 0.0,
    blobs: BlobsOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a faster variant of a model and keep it only if it is as accurate: scored with
    the original on the test split (else val; on the executor asked for), timed on the
    same images here; the kept variant is what pre-labeling, the smart tools and serving
    then run."""
    from labelpilot.jobs import kinds
    from labelpilot.jobs.optimize import plan_optimize

    with user_errors():
        params = plan_optimize(name, int8=int8, fp16=fp16, device=device,
                               calibrate_on=calibrate_on, images=images, method=method,
                               max_loss=max_loss, min_speedup=min_speedup, prune=prune,
                               only=only, executor=executor_spec(
                                   executor, ray_address, workers, gpus_per_worker, blobs,
                                   s3_endpoint))
        ws = open_workspace(directory)
        with ws.transaction() as conn:
            job_id = kinds.submit(conn, kind="optimize", user="cli", params=params).id
        job = run_job(ws, job_id, f"optimize {name}", show=not as_json)
        ws.close()
    finish_job(job, "optimize", as_json=as_json, show=lambda j: _print_optimized(j.result or {}))


def _print_optimized(r: dict[str, Any]) -> None:
    fp32 = r["fp32"]
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in fp32.items() if k != "size_bytes")
    table = Table("try", "metric", "loss (points)", "ms/image", "speed-up", "size (MB)",
                  "kept", "why", title=f"{escape(r['model'])} on the {r['split']} split "
                  f"({r['scored_images']} images: {metrics}; timed on {r['timed_images']}), "
                  f"calibrated on {r['calibration']['images']} {r['calibration']['split']} "
                  f"images")
    table.add_row("fp32 (original)", "", "", "", "1.00x", f"{fp32['size_bytes'] / 1e6:.1f}",
                  "", "")
    for t in r["tries"]:
        table.add_row(f"{t['role']} {t['try']}: {escape(t['quantized'])}",
                      f"{t['metric']} {t['value']:.3f}" if "value" in t else "",
                      f"{t['loss_points']:.1f}" if "loss_points" in t else "",
                      f"{t['ms_per_image']:.1f}" if "ms_per_image" in t else "",
                      f"{t['speedup']:.2f}x" if "speedup" in t else "",
                      f"{t['size_bytes'] / 1e6:.1f}", "yes" if t["kept"] else "no",
                      escape(t["reason"]))
    out.print(table)
    v = r.get("variant")
    if v:
        out.print(f"Kept ({escape(v['quantized'])}): the whole pre-labeling path is "
                  f"{v['speedup']:.2f}x as fast ({v['fp32_ms_per_image']:.1f} -> "
                  f"{v['ms_per_image']:.1f} ms an image); pre-labeling runs this variant on "
                  "the CPU from now on.")
    else:
        out.print("No variant kept: the model runs as it was.")


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
