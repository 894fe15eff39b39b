"""The models this workspace can use (built in and installed)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter

from labelpilot.errors import NotFoundError
from labelpilot.models.registry import SEGMENTER_KINDS, default_segmenter, get_manifest, list_models
from labelpilot.server.deps import CurrentUser, WorkspaceDep
from labelpilot.server.schemas import ModelPublic

router = APIRouter(prefix="/api/models", tags=["models"])


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    """The manifest's figures without training curves (they can be long)."""
    return {k: v for k, v in metrics.items() if k != "history"}


@router.get("", response_model=list[ModelPublic])
def models(user: CurrentUser, ws: WorkspaceDep) -> list[ModelPublic]:
    """Every model with its task and kind; `default` marks the interactive segmenter used
    when a request names none."""
    best = default_segmenter(ws.models_dir)
    return [ModelPublic(name=i.name, version=i.version, task=i.task, kind=i.kind,
                        builtin=i.builtin, description=i.description,
                        interactive=i.kind in SEGMENTER_KINDS, default=i.name == best,
                        classes=list(i.classes), metrics=_jsonable(i.metrics),
                        trainable=i.trainable, variants=i.variants)
            for i in list_models(ws.models_dir) if i.kind != "?"]  # "?": unavailable


@router.get("/{name}/history", response_model=list[dict[str, float]])
def training_history(name: str, user: CurrentUser, ws: WorkspaceDep) -> list[dict[str, float]]:
    """A trained model's learning curve, as its trainer recorded it: one point per logged
    step (`step`, `seconds`, `loss`, and the held-out figure when measured: `val_map50`
    for detectors, `val_accuracy` and `val_cer` for recognizers)."""
    manifest = get_manifest(name, ws.models_dir)
    path = manifest.root / "history.json" if manifest.root is not None else None
    if path is None or not path.is_file():
        raise NotFoundError(f"{name} has no training history (it was not trained here)")
    points = orjson.loads(path.read_bytes())
    return [{k: float(v) for k, v in p.items() if isinstance(v, int | float)} for p in points
            if isinstance(p, dict)]
