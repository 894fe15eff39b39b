"""Re-recognize: read one text box (drawn or moved by a person) with an OCR model. Nothing
is stored and no other annotation changes; the client saves the text if it wants it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labelpilot.models.registry import load_ocr
from labelpilot.workspace import Workspace


def recognize_quad(ws: Workspace, row: Any, points: Sequence[Sequence[float]], *,
                   model: str = "ocr") -> tuple[str, float, str]:
    """(text, score, the model's source) for the quad `points` on the stored image `row`."""
    ocr = load_ocr(model, ws.models_dir)
    corners = [(float(p[0]), float(p[1])) for p in points]
    text, score = ocr.recognize_quad(ws.blobs.load_image(row), corners)
    return text, score, ocr.spec.source
