"""Reviewing: images, their queue and claims, annotation edits with optimistic
concurrency, and the audit log. Keyword-only service functions the server and CLI share;
each takes a connection inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, case, delete, exists, func, insert, or_, select, update

from labelpilot.annotations import REVIEW_STATES, SPLITS, STATUSES, Annotation
from labelpilot.errors import ConflictError, ForbiddenError, LabelPilotError, NotFoundError
from labelpilot.store import repo
from labelpilot.store.tables import AuditEntry, table
from labelpilot.users import UserInfo

CLAIM_LEASE = timedelta(minutes=30)
# Proposals scored under this are 'low confidence' (the OCR model flags the same mark).
LOW_CONFIDENCE = 0.8

images_t = repo.images_t
annotations_t = repo.annotations_t
labels_t = repo.labels_t
audit_t = table(AuditEntry)


# --- images -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFilter:
    review_state: str | None = None
    split: str | None = None
    label: str | None = None
    source: str | None = None
    low_confidence: bool | None = None

    def check(self) -> None:
        if self.review_state is not None and self.review_state not in REVIEW_STATES:
            raise LabelPilotError(f"review_state must be one of {', '.join(REVIEW_STATES)}")
        if self.split is not None and self.split not in (*SPLITS, "unassigned"):
            raise LabelPilotError(f"split must be one of {', '.join(SPLITS)} or unassigned")


def _where(f: ImageFilter) -> list[Any]:
    conds: list[Any] = []
    if f.review_state:
        conds.append(images_t.c.review_state == f.review_state)
    if f.split == "unassigned":
        conds.append(images_t.c.split.is_(None))
    elif f.split:
        conds.append(images_t.c.split == f.split)
    ann = annotations_t
    if f.label:
        conds.append(exists().where(ann.c.image_id == images_t.c.id, ann.c.label_id == labels_t.c.id,
                                    labels_t.c.name == f.label))
    if f.source:
        conds.append(exists().where(ann.c.image_id == images_t.c.id, ann.c.source == f.source))
    if f.low_confidence is not None:
        low = exists().where(ann.c.image_id == images_t.c.id, ann.c.status == "predicted",
                             ann.c.score < LOW_CONFIDENCE)
        conds.append(low if f.low_confidence else ~low)
    return conds


SORTS = {"id": images_t.c.id, "file_name": images_t.c.file_name,
         "review_state": images_t.c.review_state}


def list_images(conn: Connection, *, filters: ImageFilter, offset: int = 0, limit: int = 100,
                sort: str = "id") -> tuple[list[Any], int]:
    filters.check()
    if sort not in SORTS:
        raise LabelPilotError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    conds = _where(filters)
    total = conn.execute(select(func.count()).select_from(images_t).where(*conds)).scalar_one()
    rows = conn.execute(select(images_t).where(*conds).order_by(SORTS[sort], images_t.c.id)
                        .offset(offset).limit(limit)).all()
    counts: dict[int, int] = dict(conn.execute(
        select(annotations_t.c.image_id, func.count())
        .where(annotations_t.c.image_id.in_([r.id for r in rows]),
               annotations_t.c.status != "rejected")
        .group_by(annotations_t.c.image_id)).all()) if rows else {}
    return [(r, counts.get(r.id, 0)) for r in rows], int(total)


def get_image(conn: Connection, image_id: int) -> Any:
    row = conn.execute(select(images_t).where(images_t.c.id == image_id)).first()
    if row is None:
        raise NotFoundError(f"no image {image_id}")
    return row


def claim_next(conn: Connection, *, user: UserInfo, lease: timedelta = CLAIM_LEASE,
               filters: ImageFilter | None = None) -> Any | None:
    """Hand the user the next image that is not done and not claimed by someone else.

    Two annotators asking at once never get the same image: the claim is one conditional
    UPDATE, re-checked against the row as it is when written (PostgreSQL also skips rows
    another transaction is claiming).
    """
    now = repo.now()
    free = or_(images_t.c.claimed_by.is_(None), images_t.c.claim_expires_at < now,
               images_t.c.claimed_by == user.username)
    mine = conn.execute(select(images_t).where(
        images_t.c.claimed_by == user.username, images_t.c.claim_expires_at >= now,
        images_t.c.review_state != "done").order_by(images_t.c.id).limit(1)).first()
    if mine is not None:
        return mine
    conds = [images_t.c.review_state != "done", free, *_where(filters or ImageFilter())]
    for _ in range(20):
        q = select(images_t.c.id).where(*conds).order_by(images_t.c.id).limit(1)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        image_id = conn.execute(q).scalar()
        if image_id is None:
            return None
        got = conn.execute(update(images_t).where(images_t.c.id == image_id, free).values(
            claimed_by=user.username, claim_expires_at=now + lease,
            review_state=case((images_t.c.review_state.in_(["new", "prelabeled"]), "in_review"),
                              else_=images_t.c.review_state))).rowcount
        if got:
            return get_image(conn, image_id)
    return None


def release(conn: Connection, *, image_id: int, user: UserInfo) -> None:
    row = get_image(conn, image_id)
    if row.claimed_by not in (None, user.username) and not user.can("reviewer"):
        raise ForbiddenError(f"image {image_id} is claimed by {row.claimed_by}")
    conn.execute(update(images_t).where(images_t.c.id == image_id)
                 .values(claimed_by=None, claim_expires_at=None))


def set_review_state(conn: Connection, *, image_id: int, state: str, user: UserInfo) -> Any:
    if state not in REVIEW_STATES:
        raise LabelPilotError(f"review_state must be one of {', '.join(REVIEW_STATES)}")
    if state == "done" and not user.can("reviewer"):
        raise ForbiddenError("only reviewers and admins can mark an image done")
    get_image(conn, image_id)
    values: dict[str, Any] = {"review_state": state}
    if state == "done":
        values.update(claimed_by=None, claim_expires_at=None)
    conn.execute(update(images_t).where(images_t.c.id == image_id).values(**values))
    return get_image(conn, image_id)


def set_split(conn: Connection, *, image_id: int, split: str | None) -> Any:
    if split is not None and split not in SPLITS:
        raise LabelPilotError(f"split must be one of {', '.join(SPLITS)} or null")
    get_image(conn, image_id)
    conn.execute(update(images_t).where(images_t.c.id == image_id).values(split=split))
    return get_image(conn, image_id)


# --- annotations --------------------------------------------------------------------


def list_annotations(conn: Connection, *, image_id: int) -> list[Annotation]:
    get_image(conn, image_id)
    return repo.annotations_for_images(conn, [image_id]).get(image_id, [])


def get_annotation(conn: Connection, annotation_id: int) -> tuple[int, Annotation]:
    found = repo.annotation_by_id(conn, annotation_id)
    if found is None:
        raise NotFoundError(f"no annotation {annotation_id}")
    return found


def _audit(conn: Connection, *, image_id: int, annotation_id: int | None, action: str,
           user: UserInfo, before: Annotation | None, after: Annotation | None) -> None:
    conn.execute(insert(audit_t).values(
        image_id=image_id, annotation_id=annotation_id, action=action, username=user.username,
        at=repo.now(), before=_dump(before), after=_dump(after)))


def _dump(a: Annotation | None) -> str | None:
    if a is None:
        return None
    return orjson.dumps({"label": a.label, "shape": a.shape.to_dict(), "text": a.text,
                         "attributes": a.attributes, "status": a.status,
                         "version": a.version}).decode()


def create_annotation(conn: Connection, *, image_id: int, annotation: Annotation,
                      user: UserInfo) -> Annotation:
    """Add a person's annotation (status `accepted` from a reviewer, else `edited`)."""
    img = get_image(conn, image_id)
    shape, _ = annotation.shape.clip(img.width, img.height)
    annotation.shape = shape
    if annotation.status in ("accepted", "rejected") and not user.can("reviewer"):
        annotation.status = "edited"
    ids = repo.ensure_labels(conn, [annotation.label])
    when = repo.now()
    label, *rest = repo.annotation_fragment(annotation)
    values = dict(zip(repo.ANNOTATION_COLUMNS,
                      (image_id, ids[label], *rest, 1, user.username, when, user.username, when),
                      strict=True))
    new_id = conn.execute(insert(annotations_t).values(values)
                          .returning(annotations_t.c.id)).scalar_one()
    _, created = get_annotation(conn, new_id)
    _audit(conn, image_id=image_id, annotation_id=new_id, action="create", user=user,
           before=None, after=created)
    return created


_EDIT_FIELDS = ("label", "shape", "text", "attributes", "group")


def update_annotation(conn: Connection, *, annotation_id: int, version: int,
                      changes: dict[str, Any], user: UserInfo) -> tuple[int, Annotation]:
    """Apply `changes` if the annotation is still at `version`; else raise ConflictError.

    A change to the label, shape, text or attributes makes the status `edited` unless the
    change sets a status itself; accepting or rejecting needs a reviewer.
    """
    image_id, before = get_annotation(conn, annotation_id)
    status = changes.get("status")
    if status is not None:
        if status not in STATUSES:
            raise LabelPilotError(f"status must be one of {', '.join(STATUSES)}")
        if status in ("accepted", "rejected") and not user.can("reviewer"):
            raise ForbiddenError("only reviewers and admins can accept or reject")
    edited = any(k in changes for k in _EDIT_FIELDS)
    after = Annotation(
        label=changes.get("label", before.label), shape=changes.get("shape", before.shape),
        text=changes.get("text", before.text),
        attributes=changes.get("attributes", before.attributes), score=before.score,
        source=before.source, status=status or ("edited" if edited else before.status),
        group=changes.get("group", before.group))
    if "shape" in changes:
        img = get_image(conn, image_id)
        after.shape, _ = after.shape.clip(img.width, img.height)
    if "label" in changes:
        label_id = repo.ensure_labels(conn, [after.label])[after.label]
    else:
        label_id = conn.execute(select(annotations_t.c.label_id).where(
            annotations_t.c.id == annotation_id)).scalar_one()
    _label, shape_type, geometry, x1, y1, x2, y2, text, attrs, _score, _src, st, group = \
        repo.annotation_fragment(after)
    when = repo.now()
    result = conn.execute(
        update(annotations_t)
        .where(annotations_t.c.id == annotation_id, annotations_t.c.version == version)
        .values(label_id=label_id, shape_type=shape_type, geometry=geometry, x1=x1, y1=y1,
                x2=x2, y2=y2, text=text, attributes=attrs, status=st, group_id=group,
                version=annotations_t.c.version + 1, updated_by=user.username,
                updated_at=when))
    if result.rowcount == 0:
        raise ConflictError(
            f"annotation {annotation_id} is at version {before.version}, not {version}: "
            f"{before.updated_by or 'someone'} changed it since you read it",
            current=before, image_id=image_id)
    # The row as written: what was read, plus this change (one fewer round-trip).
    after.id, after.version = annotation_id, version + 1
    after.created_by, after.created_at = before.created_by, before.created_at
    after.updated_by, after.updated_at = user.username, when
    _audit(conn, image_id=image_id, annotation_id=annotation_id, action="update", user=user,
           before=before, after=after)
    return image_id, after


def delete_annotation(conn: Connection, *, annotation_id: int, version: int,
                      user: UserInfo) -> None:
    image_id, before = get_annotation(conn, annotation_id)
    n = conn.execute(delete(annotations_t).where(
        annotations_t.c.id == annotation_id, annotations_t.c.version == version)).rowcount
    if n == 0:
        raise ConflictError(
            f"annotation {annotation_id} is at version {before.version}, not {version}",
            current=before, image_id=image_id)
    _audit(conn, image_id=image_id, annotation_id=annotation_id, action="delete", user=user,
           before=before, after=None)


def bulk_set_status(conn: Connection, *, image_id: int, status: str, user: UserInfo,
                    annotation_ids: list[int] | None = None, only_status: str | None = None
                    ) -> int:
    """Accept or reject many annotations of one image (all, or the given ids)."""
    if status not in ("accepted", "rejected"):
        raise LabelPilotError("bulk status must be accepted or rejected")
    if not user.can("reviewer"):
        raise ForbiddenError("only reviewers and admins can accept or reject")
    get_image(conn, image_id)
    conds = [annotations_t.c.image_id == image_id, annotations_t.c.status != status]
    if annotation_ids is not None:
        conds.append(annotations_t.c.id.in_(annotation_ids))
    if only_status is not None:
        conds.append(annotations_t.c.status == only_status)
    changed = conn.execute(select(annotations_t.c.id).where(and_(*conds))).scalars().all()
    if not changed:
        return 0
    conn.execute(update(annotations_t).where(annotations_t.c.id.in_(changed)).values(
        status=status, version=annotations_t.c.version + 1, updated_by=user.username,
        updated_at=repo.now()))
    conn.execute(insert(audit_t), [
        {"image_id": image_id, "annotation_id": i, "action": status, "username": user.username,
         "at": repo.now(), "before": None, "after": None} for i in changed])
    return len(changed)


def audit_for_image(conn: Connection, *, image_id: int) -> list[dict[str, Any]]:
    get_image(conn, image_id)
    rows = conn.execute(select(audit_t).where(audit_t.c.image_id == image_id)
                        .order_by(audit_t.c.id)).all()
    return [{"id": r.id, "annotation_id": r.annotation_id, "action": r.action,
             "username": r.username, "at": repo.as_utc(r.at),
             "before": orjson.loads(r.before) if r.before else None,
             "after": orjson.loads(r.after) if r.after else None} for r in rows]
