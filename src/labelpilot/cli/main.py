"""The `labelpilot` app: the command groups of this package put together."""

from __future__ import annotations

from typing import Annotated

import typer

from labelpilot import __version__
from labelpilot.cli import jobs, models, prelabel, serve, train, users, workspace
from labelpilot.cli.common import out

app = typer.Typer(help="LabelPilot: smart labeling for computer vision.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


def _version(value: bool) -> None:
    if value:
        out.print(f"labelpilot {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version,
                                               is_eager=True, help="Print the version.")] = False
         ) -> None:
    """LabelPilot: import, pre-label, review, fine-tune, optimize, serve."""


# Top-level commands, in the order `--help` lists them.
for group in (workspace, serve, prelabel, train):
    app.registered_commands.extend(group.commands.registered_commands)
app.add_typer(users.app, name="users")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
