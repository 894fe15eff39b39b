"""The models this workspace can use (built in and installed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from labelpilot.models.registry import SEGMENTER_KINDS, default_segmenter, list_models
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
                        classes=list(i.classes), metrics=_jsonable(i.metrics))
            for i in list_models(ws.models_dir) if i.kind != "?"]  # "?": unavailable
