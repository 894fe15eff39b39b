"""Queries on the annotations table for one image or one annotation at a time: versioned
writes for the editor, status changes, a model's proposals replaced. (Bulk reads and
writes for imports and exports are in `repo`.)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from labelpilot.annotations import Annotation
from labelpilot.store.repo import (
    ANNOTATION_COLUMNS,
    annotation_fragment,
    annotations_t,
    chunks,
    ensure_labels,
)


def insert_one(conn: Connection, *, image_id: int, annotation: Annotation, username: str,
               when: datetime) -> int:
    """A person's new annotation at version 1 (its label added if new); returns its id."""
    ids = ensure_labels(conn, [annotation.label])
    label, *rest = annotation_fragment(annotation)
    values = dict(zip(ANNOTATION_COLUMNS,
                      (image_id, ids[label], *rest, 1, username, when, username, when),
                      strict=True))
    return int(conn.execute(insert(annotations_t).values(values)
                            .returning(annotations_t.c.id)).scalar_one())


def update_versioned(conn: Connection, *, annotation_id: int, version: int, after: Annotation,
                     new_label: bool, username: str, when: datetime) -> bool:
    """Write `after` over the annotation if it is still at `version` (then version + 1);
    False when someone changed it first. `new_label`: the label may not exist yet."""
    _label, shape_type, geometry, x1, y1, x2, y2, text, attrs, score, _src, status, group = \
        annotation_fragment(after)
    values = dict(shape_type=shape_type, geometry=geometry, x1=x1, y1=y1, x2=x2, y2=y2,
                  text=text, attributes=attrs, score=score, status=status, group_id=group,
                  version=annotations_t.c.version + 1, updated_by=username, updated_at=when)
    if new_label:
        values["label_id"] = ensure_labels(conn, [after.label])[after.label]
    result = conn.execute(update(annotations_t).where(
        annotations_t.c.id == annotation_id, annotations_t.c.version == version).values(values))
    return bool(result.rowcount)


def delete_versioned(conn: Connection, *, annotation_id: int, version: int) -> bool:
    """Delete the annotation if it is still at `version`; False when someone changed it."""
    return bool(conn.execute(delete(annotations_t).where(
        annotations_t.c.id == annotation_id, annotations_t.c.version == version)).rowcount)


def ids_to_set(conn: Connection, *, image_id: int, status: str,
               ids: Sequence[int] | None = None, only_status: str | None = None) -> list[int]:
    """The image's annotations not yet at `status` (of `ids`, of status `only_status`)."""
    conds = [annotations_t.c.image_id == image_id, annotations_t.c.status != status]
    if ids is not None:
        conds.append(annotations_t.c.id.in_(list(ids)))
    if only_status is not None:
        conds.append(annotations_t.c.status == only_status)
    return list(conn.execute(select(annotations_t.c.id).where(*conds)).scalars())


def set_status(conn: Connection, ids: Sequence[int], *, status: str, username: str,
               when: datetime) -> None:
    conn.execute(update(annotations_t).where(annotations_t.c.id.in_(list(ids))).values(
        status=status, version=annotations_t.c.version + 1, updated_by=username,
        updated_at=when))


def delete_predicted_of(conn: Connection, image_ids: list[int]) -> None:
    """Remove the `predicted` annotations of several images."""
    for chunk in chunks(image_ids):
        conn.execute(delete(annotations_t).where(annotations_t.c.image_id.in_(chunk),
                                                 annotations_t.c.status == "predicted"))
