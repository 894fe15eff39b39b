"""`jobs list|run`: background jobs, run here instead of in a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from labelpilot.cli.common import JsonOpt, open_workspace, out, print_json, run_job, user_errors
from labelpilot.jobs import engine

app = typer.Typer(help="Background jobs (the same ones the server runs).",
                  no_args_is_help=True)


@app.command("list")
def jobs_list(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    as_json: JsonOpt = False,
) -> None:
    """List the jobs, newest first."""
    with user_errors():
        ws = open_workspace(directory)
        with ws.engine.connect() as conn:
            rows = engine.list_jobs(conn)
        ws.close()
    if as_json:
        print_json([j.public() for j in rows])
        return
    table = Table("id", "kind", "status", "done", "total", "created by")
    for j in rows:
        table.add_row(str(j.id), j.kind, j.status, str(j.done), str(j.total), j.created_by or "")
    out.print(table)


@app.command("run")
def jobs_run(
    directory: Annotated[Path, typer.Argument(help="Workspace directory.")],
    job_id: Annotated[int | None, typer.Argument(help="The job; default: every queued or "
                                                 "interrupted one.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run (or resume) jobs here, with a progress bar, instead of in a server."""

    with user_errors():
        ws = open_workspace(directory)
        with ws.engine.connect() as conn:
            ids = ([engine.get_job(conn, job_id).id] if job_id is not None
                   else engine.runnable_job_ids(conn))
        results = []
        for jid in ids:
            with ws.engine.connect() as conn:
                kind = engine.get_job(conn, jid).kind
            results.append(run_job(ws, jid, f"job {jid} ({kind})", show=not as_json))
        ws.close()
    if as_json:
        print_json([j.public() for j in results])
        return
    for j in results:
        out.print(f"job {j.id} ({j.kind}): {j.status}" + (f": {escape(j.error)}" if j.error else ""))
    if not results:
        out.print("no queued or interrupted jobs")
