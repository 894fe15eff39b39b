from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from labelpilot import labels, splits
from labelpilot.formats import FORMATS, list_formats
from labelpilot.server.deps import CanEditProject, CurrentUser, WorkspaceDep
from labelpilot.server.schemas import (
    FormatPublic,
    LabelChange,
    ProjectPublic,
    ProjectUpdate,
    SplitAssign,
    SplitResult,
)
from labelpilot.store import repo
from labelpilot.workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy import Connection

router = APIRouter(prefix="/api/project", tags=["project"])


def _project(ws: Workspace, conn: Connection) -> ProjectPublic:
    return ProjectPublic(name=ws.config.name, task=ws.config.task,
                         labels=repo.label_names(conn), label_colors=repo.label_colors(conn),
                         label_attributes=repo.label_attributes(conn),
                         label_keypoints=repo.label_keypoints(conn),
                         tags=repo.tags_in_use(conn), stats=repo.stats(conn))


@router.get("", response_model=ProjectPublic)
def get_project(user: CurrentUser, ws: WorkspaceDep) -> ProjectPublic:
    """Settings, label classes and progress (counts by status, label, review state, split)."""
    with ws.engine.connect() as conn:
        return _project(ws, conn)


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
                 ws: WorkspaceDep) -> ProjectPublic:
    """Rename a label class, merge it into another (its annotations move there), give it a
    colour, or declare the attributes its shapes carry."""
    with ws.transaction() as conn:
        labels.change_label(ws, conn, name, user=admin, rename=body.name,
                            merge_into=body.merge_into, color=body.color,
                            attributes=body.attributes)
        return _project(ws, conn)


@router.patch("", response_model=ProjectPublic)
def update_project(body: ProjectUpdate, admin: CanEditProject, ws: WorkspaceDep) -> ProjectPublic:
    with ws.transaction() as conn:
        if body.add_labels:
            repo.ensure_labels(conn, [n.strip() for n in body.add_labels])
            ws.add_labels([n.strip() for n in body.add_labels])
        if body.name is not None and body.name != ws.config.name:
            ws.config.name = body.name
            ws.save_config()
        return _project(ws, conn)
