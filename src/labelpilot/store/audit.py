"""Queries on the audit table: who changed which annotation, when, from what to what."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select

from labelpilot.store.tables import AuditEntry, table

audit_t = table(AuditEntry)


def record(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Append entries (image_id, annotation_id, action, username, at, before, after)."""
    if entries:
        conn.execute(insert(audit_t), entries)


def for_image(conn: Connection, image_id: int) -> list[Any]:
    return list(conn.execute(select(audit_t).where(audit_t.c.image_id == image_id)
                             .order_by(audit_t.c.id)))
