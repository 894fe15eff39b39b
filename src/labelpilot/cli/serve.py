"""`serve`: the label server on one workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from labelpilot.cli.common import open_workspace, out, user_errors

commands = typer.Typer()

@commands.command()
def serve(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the workspace: the REST API (OpenAPI at /docs) and background jobs."""
    import uvicorn

    from labelpilot.server.app import create_app, ensure_admin

    with user_errors():
        ws = open_workspace(directory)
        first = ensure_admin(ws)
    if first:
        out.print(f"[bold]First start: created user [cyan]{first[0]}[/] with the one-time "
                  f"password [cyan]{first[1]}[/][/] (shown only now; change it after signing in)")
    out.print(f"Serving {escape(ws.config.name)} on http://{host}:{port}  (API docs: /docs)")
    uvicorn.run(create_app(ws), host=host, port=port, log_level="warning")


@commands.command("serve-models")
def serve_models(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    models: Annotated[str | None, typer.Option(help="Comma-separated model names (default: "
                                               "every OCR model and detector, new ones "
                                               "included as they are registered).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
    max_batch: Annotated[int, typer.Option(min=1, max=256, help="Most requests run as one "
                                           "batch (on a CPU 4 serves as fast as 16 with "
                                           "less memory; raise it on a GPU).")] = 4,
    max_wait_ms: Annotated[float, typer.Option(min=0, max=1000, help="How long a batch waits "
                                               "for more requests after its first.")] = 5.0,
    queue_size: Annotated[int, typer.Option(min=1, max=100_000, help="Requests waiting per "
                                            "model; past it, 503 with Retry-After.")] = 64,
    timeout_s: Annotated[float, typer.Option(min=0.1, max=3600, help="A request's deadline "
                                             "(503 past it).")] = 30.0,
    device: Annotated[str, typer.Option(help="cpu (cuda and tensorrt: the optimization "
                                        "issue's GPU variants, not built yet).")] = "cpu",
    workers: Annotated[int | None, typer.Option(min=1, max=256, help="Batches of one model "
                                                "run at once (default: one per core).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="ONNX Runtime threads per batch "
                                                "(default: the cores shared among the "
                                                "workers).")] = None,
    no_batch_axis: Annotated[bool, typer.Option("--no-batch-axis", help="Run single-image "
                                                "graphs one image at a time.")] = False,
    watch_s: Annotated[float, typer.Option(min=0, help="How often to look for new versions "
                                           "(0: never).")] = 2.0,
    label_studio_url: Annotated[str | None, typer.Option(
        envvar="LABEL_STUDIO_URL", help="The Label Studio whose images the ML backend reads "
        "(default: the address each project gives at /setup).")] = None,
    label_studio_key: Annotated[str | None, typer.Option(
        envvar="LABEL_STUDIO_API_KEY", help="Its access token (default: the one /setup "
        "gives).")] = None,
) -> None:
    """Serve the workspace's models over HTTP (/v1/models, /v1/models/NAME/predict,
    /healthz, /readyz, /metrics) with dynamic batching, and as Label Studio ML backends
    (/labelstudio/NAME); clients sign in with a user's token or a key from `labelpilot
    users add-key`."""
    import os

    import uvicorn

    from labelpilot.errors import ValidationError
    from labelpilot.serving.app import create_model_server
    from labelpilot.serving.workers import ServingConfig

    with user_errors():
        if device != "cpu":
            raise ValidationError(f"--device {device}: only cpu is served so far",
                                  hint="GPU variants come with TensorRT/CUDA optimization")
        ws = open_workspace(directory)
        names = [n.strip() for n in models.split(",") if n.strip()] if models else None
        cores = os.cpu_count() or 1
        workers = workers or cores
        config = ServingConfig(max_batch=max_batch, max_wait_s=max_wait_ms / 1000,
                               queue_size=queue_size, timeout_s=timeout_s, workers=workers,
                               threads=threads or max(1, cores // workers),
                               batching=not no_batch_axis, watch_s=watch_s)
        app = create_model_server(ws, names, config, label_studio_url=label_studio_url,
                                  label_studio_key=label_studio_key)
    out.print(f"Serving the models of {escape(ws.config.name)} on http://{host}:{port}  "
              "(API docs: /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
