"""The rows the analytics read, column by column (no geometry JSON: bounding boxes only),
the data's version stamp (a report is cached until it changes) and perceptual hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, select

from labelpilot.store.audit import audit_t
from labelpilot.store.repo import annotations_t, as_utc, chunks, images_t, labels_t
from labelpilot.store.tables import ImageHash, table

hashes_t = table(ImageHash)

IMAGE_COLUMNS = ("id", "file_name", "sha256", "suffix", "width", "height", "split",
                 "review_state", "assignee", "created_at")
# (no times, no authors: the audit log says who did what when; SQLite's times are text,
# parsed row by row, and would double the read)
ANNOTATION_COLUMNS = ("id", "image_id", "label", "shape_type", "x1", "y1", "x2", "y2", "text",
                      "score", "source", "status")
AUDIT_COLUMNS = ("id", "image_id", "annotation_id", "action", "username", "at", "before",
                 "after")


def stamp(conn: Connection) -> str:
    """A digest that changes whenever anything a report shows changes: annotations (count,
    newest id and edit), images (count, newest id, images per split and review state),
    the audit log's newest entry and the label classes."""
    parts: list[Any] = [
        conn.execute(select(func.count(), func.max(annotations_t.c.id),
                            func.max(annotations_t.c.updated_at))).one(),
        conn.execute(select(func.count(), func.max(images_t.c.id))).one(),
        list(conn.execute(select(images_t.c.split, images_t.c.review_state, func.count())
                          .group_by(images_t.c.split, images_t.c.review_state)
                          .order_by(images_t.c.split, images_t.c.review_state))),
        conn.execute(select(func.max(audit_t.c.id))).scalar(),
        list(conn.execute(select(labels_t.c.id, labels_t.c.name).order_by(labels_t.c.id))),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


def image_table(conn: Connection) -> list[tuple[Any, ...]]:
    """Every image as a tuple in IMAGE_COLUMNS' order, by id."""
    cols = [images_t.c[name] for name in IMAGE_COLUMNS]
    return [_utc(tuple(r), 9) for r in conn.execute(select(*cols).order_by(images_t.c.id)).all()]


def annotation_table(conn: Connection) -> list[tuple[Any, ...]]:
    """Every annotation as a tuple in ANNOTATION_COLUMNS' order (its class by name), by id."""
    a = annotations_t.c
    q = (select(a.id, a.image_id, labels_t.c.name, a.shape_type, a.x1, a.y1, a.x2, a.y2,
                a.text, a.score, a.source, a.status)
         .select_from(annotations_t.join(labels_t, labels_t.c.id == a.label_id))
         .order_by(a.id))
    # plain values, as the driver gives them (no column types to apply): 200,000 rows in
    # half the time
    return [tuple(r) for r in conn.exec_driver_sql(str(q.compile(dialect=conn.dialect))).all()]


def audit_table(conn: Connection) -> list[tuple[Any, ...]]:
    """The audit log as tuples in AUDIT_COLUMNS' order, oldest first (comments left out:
    they change nothing)."""
    c = audit_t.c
    q = select(c.id, c.image_id, c.annotation_id, c.action, c.username, c.at, c.before,
               c.after).where(c.action != "comment").order_by(c.id)
    return [_utc(tuple(r), 5) for r in conn.execute(q).all()]


def _utc(row: tuple[Any, ...], i: int) -> tuple[Any, ...]:
    return (*row[:i], as_utc(row[i]), *row[i + 1:])


def hashes(conn: Connection) -> dict[str, str]:
    """The perceptual hash of every image content hashed so far, by SHA-256."""
    return dict(conn.execute(select(hashes_t.c.sha256, hashes_t.c.dhash)).all())


def save_hashes(conn: Connection, found: dict[str, str]) -> None:
    """Record new perceptual hashes (contents already recorded are left as they are)."""
    known = set(hashes(conn))
    rows: Sequence[dict[str, str]] = [{"sha256": k, "dhash": v} for k, v in found.items()
                                      if k not in known]
    for part in chunks(list(rows), 500):
        conn.execute(insert(hashes_t), part)
