"""Error types.

User errors (bad input, a missing workspace, a malformed label file) are kept apart from
plug-in contract errors and from bugs: the CLI and the server print a `LabelPilotError`
as a plain message with a hint, never as a traceback.
"""

from __future__ import annotations


class LabelPilotError(Exception):
    """An error the user can fix: says what was wrong, where, and what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ValidationError(LabelPilotError, ValueError):
    """A value that breaks the annotation model (names the field and why)."""


class FormatError(LabelPilotError):
    """A label file that is not what its format says.

    Args:
        message: what is wrong.
        path: the file.
        line: 1-based line number, for text formats.
        where: a JSON path or XML element, for structured formats.
    """

    def __init__(
        self,
        message: str,
        *,
        path: object = None,
        line: int | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        location = ""
        if path is not None:
            location = str(path)
            if line is not None:
                location += f", line {line}"
            if where:
                location += f", at {where}"
            location += ": "
        super().__init__(location + message, hint=hint)
        self.path = path
        self.line = line
        self.where = where


class ImageError(LabelPilotError):
    """An image that cannot be used: corrupt, truncated, too large, of an unknown type."""


class UnsafePathError(LabelPilotError):
    """A path or archive member that would escape the folder it belongs to."""


class WorkspaceError(LabelPilotError):
    """A workspace that does not exist, is not a workspace, or cannot be opened."""
