from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter

from labelpilot import labels, splits
from labelpilot.errors import ValidationError
from labelpilot.formats import FORMATS, list_formats
from labelpilot.server.deps import CanEditProject, CurrentUser, SettingsDep, WorkspaceDep
from labelpilot.server.schemas import (
    FormatPublic,
    LabelChange,
    LoopSettings,
    ProjectPublic,
    ProjectUpdate,
    SplitAssign,
    SplitResult,
)
from labelpilot.store import repo
from labelpilot.workspace import LoopConfig, Workspace

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from labelpilot.settings import Settings

router = APIRouter(prefix="/api/project", tags=["project"])


def _project(ws: Workspace, conn: Connection, settings: Settings) -> ProjectPublic:
    ray = settings.executor == "ray" or settings.ray_address is not None
    return ProjectPublic(executors=["local", "ray"] if ray else ["local"],
                         executor=cast(Any, settings.executor),
                         name=ws.config.name, task=ws.config.task,
                         labels=repo.label_names(conn), label_colors=repo.label_colors(conn),
                         label_attributes=repo.label_attributes(conn),
                         label_keypoints=repo.label_keypoints(conn),
                         tags=repo.tags_in_use(conn), stats=repo.stats(conn),
                         prelabeler=ws.prelabeler,
                         loop=LoopSettings(**ws.config.loop.to_toml()),
                         text_lines=cast(Any, ws.config.text_lines))


@router.get("", response_model=ProjectPublic)
def get_project(user: CurrentUser, ws: WorkspaceDep, settings: SettingsDep) -> ProjectPublic:
    """Settings, label classes and progress (counts by status, label, review state, split)."""
    with ws.engine.connect() as conn:
        return _project(ws, conn, settings)


@router.get("/formats", response_model=list[FormatPublic])
def formats(user: CurrentUser) -> list[FormatPublic]:
    """The label formats imports read and exports write."""
    return [FormatPublic(name=n, description=FORMATS[n].description) for n in list_formats()]


@router.post("/splits", response_model=SplitResult)
def assign_splits(body: SplitAssign, user: CurrentUser, ws: WorkspaceDep) -> SplitResult:
    """Put images into splits: the chosen ones (`image_ids`, else all; `only_unassigned`
    keeps the splits already given) into one `split`, or shared out by `ratios`,
    stratified by class (each image counts as its rarest class) unless told not to."""
    with ws.transaction() as conn:
        return SplitResult.model_validate(splits.assign_splits(
            conn, user=user,
            ratios={str(k): v for k, v in body.ratios.items()} if body.ratios is not None else None,
            split=body.split, image_ids=body.image_ids,
            only_unassigned=body.only_unassigned, stratify=body.stratify, seed=body.seed))


@router.patch("/labels/{name}", response_model=ProjectPublic)
def change_label(name: str, body: LabelChange, admin: CanEditProject,
                 ws: WorkspaceDep, settings: SettingsDep) -> ProjectPublic:
    """Rename a label class, merge it into another (its annotations move there), give it a
    colour, or declare the attributes its shapes carry."""
    with ws.transaction() as conn:
        labels.change_label(ws, conn, name, user=admin, rename=body.name,
                            merge_into=body.merge_into, color=body.color,
                            attributes=body.attributes)
        return _project(ws, conn, settings)


@router.patch("", response_model=ProjectPublic)
def update_project(body: ProjectUpdate, admin: CanEditProject, ws: WorkspaceDep,
                   settings: SettingsDep) -> ProjectPublic:
    with ws.transaction() as conn:
        if body.add_labels:
            repo.ensure_labels(conn, [n.strip() for n in body.add_labels])
            ws.add_labels([n.strip() for n in body.add_labels])
        if body.name is not None and body.name != ws.config.name:
            ws.config.name = body.name
            ws.save_config()
        if body.prelabeler is not None:
            from labelpilot.models.registry import get_manifest

            kind = get_manifest(body.prelabeler, ws.models_dir).kind  # 404 if unknown
            if ws.config.task in ("ocr", "detect") and kind != ws.config.task:
                raise ValidationError(f"{body.prelabeler} is a {kind} model; this "
                                      f"{ws.config.task} project pre-labels with a "
                                      f"{ws.config.task} model")
            ws.config.prelabeler = body.prelabeler
            ws.save_config()
        if body.loop is not None:
            if body.loop.enabled and ws.config.task not in ("ocr", "detect"):
                raise ValidationError(f"the closed loop trains OCR recognizers and detectors; "
                                      f"this is a {ws.config.task} project")
            ws.config.loop = LoopConfig(body.loop.enabled, body.loop.every, body.loop.minutes)
            ws.save_config()
        if body.text_lines is not None:
            if ws.config.task != "ocr":
                raise ValidationError(f"text_lines is for OCR projects; this is a "
                                      f"{ws.config.task} project")
            ws.config.text_lines = body.text_lines
            ws.save_config()
        return _project(ws, conn, settings)
