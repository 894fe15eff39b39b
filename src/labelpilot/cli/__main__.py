"""`python -m labelpilot.cli`: the same as the `labelpilot` command."""

from labelpilot.cli.main import app

app()
