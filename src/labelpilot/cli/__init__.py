"""The `labelpilot` command: one module per command group (`workspace`, `users`, `jobs`,
`serve`, `prelabel`, `train`, `models`), each a thin shell over the services; `common`
holds what they share, `main` puts them together. Nothing imports the CLI."""

from labelpilot.cli.main import app

__all__ = ["app"]
