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
