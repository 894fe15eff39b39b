"""Bulk reads and writes. Every function takes a connection inside the caller's transaction
and does a bounded number of round-trips (never one per annotation)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select

from labelpilot.annotations import Annotation, trusted_annotation, trusted_shape
from labelpilot.store.tables import AnnotationRow, ImageRow, LabelClass

_CHUNK = 500

labels_t = LabelClass.__table__
images_t = ImageRow.__table__
annotations_t = AnnotationRow.__table__


def now() -> datetime:
    return datetime.now(UTC)


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def label_ids(conn: Connection) -> dict[str, int]:
    return {name: id_ for id_, name in conn.execute(select(labels_t.c.id, labels_t.c.name))}


def ensure_labels(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """Label name -> id, adding the names not there yet (in the given order)."""
    ids = label_ids(conn)
    new = [n for n in dict.fromkeys(names) if n not in ids]
    if new:
        start = conn.execute(select(func.coalesce(func.max(labels_t.c.position), -1))).scalar_one()
        conn.execute(insert(labels_t), [
            {"name": n, "position": start + 1 + i} for i, n in enumerate(new)
        ])
        ids = label_ids(conn)
    return ids


def label_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(labels_t.c.name).order_by(labels_t.c.position)).scalars())


def images_by_sha(conn: Connection, shas: Sequence[str]) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(list(shas)):
        q = select(images_t.c.sha256, images_t.c.id, images_t.c.file_name).where(
            images_t.c.sha256.in_(chunk))
        out.update({sha: (id_, name) for sha, id_, name in conn.execute(q)})
    return out


def taken_file_names(conn: Connection, names: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for chunk in _chunks(list(names)):
        out.update(conn.execute(
            select(images_t.c.file_name).where(images_t.c.file_name.in_(chunk))).scalars())
    return out


def insert_images(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert image rows; returns their ids in the order given."""
    if not rows:
        return []
    result = conn.execute(
        insert(images_t).returning(images_t.c.id, sort_by_parameter_order=True), rows)
    return [r[0] for r in result]


def annotation_row(ann: Annotation, *, image_id: int, label_id: int, when: datetime,
                   user: str | None) -> dict[str, Any]:
    x1, y1, x2, y2 = ann.shape.bbox()
    return {
        "image_id": image_id, "label_id": label_id, "shape_type": ann.shape.type,
        "geometry": orjson.dumps(ann.shape.to_dict()).decode(),
        "x1": x1, "y1": y1, "x2": x2, "y2": y2,
        "text": ann.text,
        "attributes": orjson.dumps(ann.attributes).decode() if ann.attributes else None,
        "score": ann.score, "source": ann.source, "status": ann.status,
        "group_id": ann.group, "version": 1,
        "created_by": ann.created_by or user, "created_at": ann.created_at or when,
        "updated_by": ann.updated_by or ann.created_by or user,
        "updated_at": ann.updated_at or ann.created_at or when,
    }


def insert_annotations(conn: Connection, rows: list[dict[str, Any]]) -> int:
    for chunk in _chunks(rows, 20_000):
        conn.execute(insert(annotations_t), list(chunk))
    return len(rows)


_ANN_COLS = (annotations_t.c.id, annotations_t.c.image_id, labels_t.c.name,
             annotations_t.c.geometry, annotations_t.c.text, annotations_t.c.attributes,
             annotations_t.c.score, annotations_t.c.source, annotations_t.c.status,
             annotations_t.c.group_id, annotations_t.c.version, annotations_t.c.created_by,
             annotations_t.c.created_at, annotations_t.c.updated_by, annotations_t.c.updated_at)


def _row_to_annotation(r: Sequence[Any]) -> Annotation:
    return trusted_annotation(
        id=r[0], label=r[2], shape=trusted_shape(orjson.loads(r[3])), text=r[4],
        attributes=orjson.loads(r[5]) if r[5] else {}, score=r[6], source=r[7], status=r[8],
        group=r[9], version=r[10], created_by=r[11], created_at=r[12], updated_by=r[13],
        updated_at=r[14])


def annotations_for_images(conn: Connection, image_ids: Sequence[int],
                           statuses: Sequence[str] | None = None) -> dict[int, list[Annotation]]:
    """Annotations of the given images, by image id, in creation order."""
    out: dict[int, list[Annotation]] = {}
    for chunk in _chunks(list(image_ids)):
        q = (select(*_ANN_COLS).join(labels_t, labels_t.c.id == annotations_t.c.label_id)
             .where(annotations_t.c.image_id.in_(chunk)).order_by(annotations_t.c.id))
        if statuses is not None:
            q = q.where(annotations_t.c.status.in_(list(statuses)))
        for r in conn.execute(q):
            out.setdefault(r[1], []).append(_row_to_annotation(r))
    return out


def iter_annotations(conn: Connection, statuses: Sequence[str],
                     split: str | None = None) -> Iterator[tuple[int, Annotation]]:
    """(image_id, annotation) for the whole workspace in one streamed query."""
    q = (select(*_ANN_COLS).join(labels_t, labels_t.c.id == annotations_t.c.label_id)
         .where(annotations_t.c.status.in_(list(statuses))).order_by(annotations_t.c.id))
    if split is not None:
        q = q.join(images_t, images_t.c.id == annotations_t.c.image_id).where(
            images_t.c.split == split)
    for r in conn.execution_options(yield_per=10_000).execute(q):
        yield r[1], _row_to_annotation(r)


def list_images(conn: Connection, split: str | None = None) -> list[Any]:
    q = select(images_t).order_by(images_t.c.id)
    if split is not None:
        q = q.where(images_t.c.split == split)
    return list(conn.execute(q))


def stats(conn: Connection) -> dict[str, Any]:
    def grouped(col: Any, table: Any = annotations_t) -> dict[str, int]:
        return {str(k): v for k, v in conn.execute(
            select(col, func.count()).select_from(table).group_by(col).order_by(col))}

    by_label = {name: n for name, n in conn.execute(
        select(labels_t.c.name, func.count(annotations_t.c.id))
        .select_from(labels_t.outerjoin(annotations_t, annotations_t.c.label_id == labels_t.c.id))
        .group_by(labels_t.c.name, labels_t.c.position).order_by(labels_t.c.position))}
    return {
        "images": conn.execute(select(func.count()).select_from(images_t)).scalar_one(),
        "annotations": conn.execute(select(func.count()).select_from(annotations_t)).scalar_one(),
        "annotations_by_status": grouped(annotations_t.c.status),
        "annotations_by_source": grouped(annotations_t.c.source),
        "annotations_by_label": by_label,
        "annotations_by_shape": grouped(annotations_t.c.shape_type),
        "images_by_review_state": grouped(images_t.c.review_state, images_t),
        "images_by_split": {("unassigned" if k == "None" else k): v
                            for k, v in grouped(images_t.c.split, images_t).items()},
    }
