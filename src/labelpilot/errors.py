"""Every error type LabelPilot raises on purpose, each with the HTTP status it means.

User errors (bad input, a missing workspace, a malformed label file) are kept apart from
plug-in contract errors and from bugs: the CLI and the server print a `LabelPilotError`
as a plain message with a hint, never as a traceback. The server answers with the
error's `http_status`; it never reads the message to choose one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labelpilot.annotations import Annotation


class LabelPilotError(Exception):
    """An error the user can fix: says what was wrong, where, and what to do."""

    http_status = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ValidationError(LabelPilotError, ValueError):
    """A value that breaks the annotation model (names the field and why)."""

    http_status = 422


class FormatError(LabelPilotError):
    """A label file that is not what its format says.

    Args:
        message: what is wrong.
        path: the file.
        line: 1-based line number, for text formats.
        where: a JSON path or XML element, for structured formats.
    """

    http_status = 422

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
    """An image that cannot be used (the subclasses say why)."""

    http_status = 422


class UnsupportedImageError(ImageError):
    """Not an image LabelPilot reads: empty, unreadable, or of an unsupported type."""

    http_status = 415


class ImageTooLargeError(ImageError):
    """An image over the workspace's pixel limit."""

    http_status = 413


class PayloadTooLargeError(LabelPilotError):
    """A request body over the server's upload limit."""

    http_status = 413


class UnsafePathError(LabelPilotError):
    """A path or archive member that would escape the folder it belongs to."""


class WorkspaceError(LabelPilotError):
    """A workspace that does not exist, is not a workspace, or cannot be opened."""


class AuthError(LabelPilotError):
    """Wrong credentials, or a token that is unknown, expired or revoked."""

    http_status = 401


class TooManyAttemptsError(AuthError):
    """Sign-in refused for a while after repeated failures; `retry_after` in seconds."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, hint=f"wait {retry_after} s before trying again")
        self.retry_after = retry_after


class UnavailableError(LabelPilotError):
    """The service cannot take the request now (a full queue, a deadline passed, shutting
    down); `retry_after` in seconds."""

    http_status = 503

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or f"retry in {retry_after} s")
        self.retry_after = retry_after


class ForbiddenError(LabelPilotError):
    """The user's role does not allow this."""

    http_status = 403


class NotFoundError(LabelPilotError):
    """The image, annotation, job, user or model does not exist."""

    http_status = 404


class StateError(LabelPilotError):
    """The request is well formed but the current state does not allow it (the last
    active admin demoting itself)."""

    http_status = 409


class UndecidedError(StateError):
    """An image marked done while proposals on it are still undecided; `pending` counts
    them."""

    def __init__(self, message: str, *, pending: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.pending = pending


class ConflictError(LabelPilotError):
    """A stale edit: someone changed the annotation since the client read it.

    `current` holds the annotation as it is now (None if it was deleted); the server
    sends it back so the client can re-apply its change.
    """

    http_status = 409

    def __init__(self, message: str, *, current: Annotation | None, image_id: int) -> None:
        super().__init__(message, hint="reload the annotation, re-apply your change, send again")
        self.current = current
        self.image_id = image_id


class ModelError(LabelPilotError):
    """A model file that is missing, corrupt, or not the one its manifest names."""


class ModelNotFoundError(ModelError):
    """No model of that name in the workspace or built in."""

    http_status = 404


class PromptError(LabelPilotError):
    """A prompt for a smart tool (clicks, a box) that cannot be answered."""

    http_status = 422
