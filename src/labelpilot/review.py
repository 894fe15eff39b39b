"""Reviewing: images, their queue and claims, annotation edits with optimistic
concurrency, and the audit log. Keyword-only service functions the server and CLI share;
each takes a connection inside the caller's transaction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from labelpilot import users
from labelpilot.annotations import REVIEW_STATES, SPLITS, STATUSES, Annotation
from labelpilot.attributes import check_tags, check_values
from labelpilot.errors import ConflictError, LabelPilotError, NotFoundError, UndecidedError
from labelpilot.shapeops import combine
from labelpilot.store import annotations as annotation_rows
from labelpilot.store import audit, repo
from labelpilot.store import images as image_rows
from labelpilot.store.images import UNASSIGNED
from labelpilot.users import UserInfo

if TYPE_CHECKING:
    from sqlalchemy import Connection

CLAIM_LEASE = timedelta(minutes=30)
# Proposals scored under this are 'low confidence' (the OCR model flags the same mark).
LOW_CONFIDENCE = 0.8
SORTS = tuple(image_rows.SORTS)


# --- images -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFilter:
    review_state: str | None = None
    split: str | None = None
    label: str | None = None
    source: str | None = None
    low_confidence: bool | None = None
    text: str | None = None
    # a username, or UNASSIGNED for images assigned to no one
    assignee: str | None = None
    tag: str | None = None

    def check(self) -> None:
        if self.review_state is not None and self.review_state not in REVIEW_STATES:
            raise LabelPilotError(f"review_state must be one of {', '.join(REVIEW_STATES)}")
        if self.split is not None and self.split not in (*SPLITS, "unassigned"):
            raise LabelPilotError(f"split must be one of {', '.join(SPLITS)} or unassigned")

    def query(self) -> image_rows.ImageQuery:
        return image_rows.ImageQuery(self.review_state, self.split, self.label, self.source,
                                     self.low_confidence, LOW_CONFIDENCE,
                                     text=(self.text or "").strip() or None,
                                     assignee=self.assignee or None,
                                     tag=(self.tag or "").strip() or None)


def _list_query(filters: ImageFilter, sort: str) -> image_rows.ImageQuery:
    """The query of a list of images (filters and sort), checked."""
    filters.check()
    if sort not in SORTS:
        raise LabelPilotError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    return filters.query()


def list_images(conn: Connection, *, filters: ImageFilter, offset: int = 0, limit: int = 100,
                sort: str = "queue") -> tuple[list[Any], int]:
    return image_rows.page(conn, _list_query(filters, sort), sort=sort, offset=offset,
                           limit=limit)


def neighbours(conn: Connection, *, image_id: int, filters: ImageFilter, sort: str = "queue"
               ) -> dict[str, int | None]:
    """The image's place in a list (filters and sort, as `list_images` takes them) and the
    images before and after it: what next / previous in the editor walk."""
    query = _list_query(filters, sort)
    row = get_image(conn, image_id)
    position, count, previous, following = image_rows.neighbours(
        conn, query, sort=sort, row=row)
    return {"position": position, "count": count, "previous": previous, "next": following}


def get_image(conn: Connection, image_id: int) -> Any:
    row = image_rows.image_row(conn, image_id)
    if row is None:
        raise NotFoundError(f"no image {image_id}")
    return row


QUEUES = ("label", "review")


def claim_next(conn: Connection, *, user: UserInfo, lease: timedelta = CLAIM_LEASE,
               filters: ImageFilter | None = None, queue: str = "label") -> Any | None:
    """Hand the user the image they hold, else the next one that is not done and not
    claimed by someone else (two people asking at once never get the same image).

    - `label`: images assigned to the user first, then those assigned to no one (never
      someone else's); annotators are not handed images submitted for review.
    - `review` (reviewers): the images submitted for review, oldest first.
    """
    if queue not in QUEUES:
        raise LabelPilotError(f"queue must be one of {', '.join(QUEUES)}, not {queue!r}")
    query = (filters or ImageFilter()).query()
    if queue == "review":
        user.require("set_review_state")
        query = dataclasses.replace(query, review_state="submitted")
    elif not user.may("review"):
        query = dataclasses.replace(query, exclude_states=("submitted",))
    mine = image_rows.claimed_by(conn, user.username, repo.now(), query)
    if mine is not None:
        return mine
    image_id = image_rows.claim_first(conn, username=user.username, lease=lease, query=query,
                                      assigned=queue == "label")
    return None if image_id is None else get_image(conn, image_id)


def assign(conn: Connection, *, user: UserInfo, image_ids: list[int], assignees: list[str]
           ) -> dict[str, int]:
    """Assign images to people: the images, in the order given, are shared out in turn
    among `assignees` (one name: all to them; none: assigned to no one). A claim someone
    else holds on an image is let go. Returns how many each person got."""
    user.require("assign")
    names = list(dict.fromkeys(a.strip() for a in assignees))
    known = {u.username: u for u in users.list_users(conn)}
    for name in names:
        if name not in known:
            raise NotFoundError(f"no user {name!r} to assign images to")
        if not known[name].active:
            raise LabelPilotError(f"{name} is deactivated and cannot be assigned images",
                                  hint="activate them on the Users page first")
    before = image_rows.assignees_of(conn, image_ids)
    missing = [i for i in image_ids if i not in before]
    if missing:
        raise NotFoundError(f"no image {missing[0]}" + (
            f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    ordered = list(dict.fromkeys(image_ids))
    chosen: dict[int, str | None] = {
        i: names[k % len(names)] if names else None for k, i in enumerate(ordered)}
    image_rows.set_assignees(conn, chosen)
    audit.record(conn, [_entry(i, None, "assign", user, {"assignee": before[i]}, {"assignee": a})
                        for i, a in chosen.items() if before[i] != a])
    counts: dict[str, int] = {}
    for a in chosen.values():
        counts[a or UNASSIGNED] = counts.get(a or UNASSIGNED, 0) + 1
    return counts


def set_tags(conn: Connection, *, image_id: int, tags: list[str], user: UserInfo) -> Any:
    """Give the image its classification tags (the whole list); kept in its history."""
    img = get_image(conn, image_id)
    user.require("annotate")
    if img.review_state == "done":
        user.require("edit_done_image")
    tags = check_tags(tags)
    old = orjson.loads(img.tags) if img.tags else []
    if old != tags:
        image_rows.set_image(conn, image_id, tags=orjson.dumps(tags).decode() if tags else None)
        audit.record(conn, [_entry(image_id, None, "tags", user, {"tags": old}, {"tags": tags})])
    return get_image(conn, image_id)


def release(conn: Connection, *, image_id: int, user: UserInfo) -> None:
    row = get_image(conn, image_id)
    if row.claimed_by not in (None, user.username):
        user.require("release_claim")
    image_rows.set_image(conn, image_id, claimed_by=None, claim_expires_at=None)


def set_review_state(conn: Connection, *, image_id: int, state: str, user: UserInfo,
                     pending: str | None = None, comment: str | None = None) -> Any:
    """Move an image through review; every change goes to the audit log with its comment.

    - `submitted`: its annotator hands it to review (from new, prelabeled or in_review).
    - `done` (a reviewer): every proposal on it must be decided first; `pending`
      ("accept" / "reject") decides the ones left in the same transaction, else the
      request is refused with their count (UndecidedError).
    - `in_review` from `submitted` (a reviewer): sent back to the annotator, with a
      `comment` saying why.
    - any other change: a reviewer's (re-open, reset).
    """
    if state not in REVIEW_STATES:
        raise LabelPilotError(f"review_state must be one of {', '.join(REVIEW_STATES)}")
    img = get_image(conn, image_id)
    before = img.review_state
    comment = (comment or "").strip() or None
    if state == "submitted":
        user.require("submit")
        if before == "done":
            user.require("set_review_state")
    else:
        user.require("set_review_state")
    if state == "in_review" and before == "submitted" and comment is None:
        raise LabelPilotError("sending an image back needs a comment that says what to change",
                              hint="add a comment")
    values: dict[str, Any] = {"review_state": state}
    if state == "done":
        left = annotation_rows.ids_to_set(conn, image_id=image_id, status="accepted",
                                          only_status="predicted")
        if left and pending is None:
            raise UndecidedError(
                f"{len(left)} proposal(s) on this image are still undecided", pending=len(left),
                hint="accept or reject them, or mark the image done with pending=accept "
                     "(or reject) to decide them all")
        if left:
            bulk_set_status(conn, image_id=image_id, user=user, annotation_ids=left,
                            status="accepted" if pending == "accept" else "rejected")
    if state in ("done", "submitted"):
        values.update(claimed_by=None, claim_expires_at=None)
    image_rows.set_image(conn, image_id, **values)
    audit.record(conn, [_entry(image_id, None, "review_state", user,
                               {"review_state": before},
                               {"review_state": state, "comment": comment, "pending": pending})])
    return get_image(conn, image_id)


def set_split(conn: Connection, *, image_id: int, split: str | None, user: UserInfo) -> Any:
    if split is not None and split not in SPLITS:
        raise LabelPilotError(f"split must be one of {', '.join(SPLITS)} or null")
    user.require("set_split")
    get_image(conn, image_id)
    image_rows.set_image(conn, image_id, split=split)
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


def _entry(image_id: int, annotation_id: int | None, action: str, user: UserInfo,
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """One audit-log row: who did what to which image (and annotation), with the state
    before and after as JSON."""
    return {"image_id": image_id, "annotation_id": annotation_id, "action": action,
            "username": user.username, "at": repo.now(),
            "before": None if before is None else orjson.dumps(before).decode(),
            "after": None if after is None else orjson.dumps(after).decode()}


def _audit(conn: Connection, *, image_id: int, annotation_id: int | None, action: str,
           user: UserInfo, before: Annotation | None, after: Annotation | None) -> None:
    audit.record(conn, [_entry(image_id, annotation_id, action, user, _fields(before),
                               _fields(after))])


def _fields(a: Annotation | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"label": a.label, "shape": a.shape.to_dict(), "text": a.text,
            "attributes": a.attributes, "status": a.status, "version": a.version,
            "source": a.source, "score": a.score}


def _may_change(conn: Connection, user: UserInfo, img: Any, *, before: Annotation | None,
                label: str | None) -> None:
    """The role matrix for a change to an annotation of image `img`: `before` is the
    annotation as it is (None for a new one), `label` the label it gets (None: unchanged)."""
    user.require("annotate")
    if img.review_state == "done":
        user.require("edit_done_image")
    if before is not None and before.status in ("accepted", "rejected"):
        user.require("edit_reviewed")
    if label is not None and not user.may("add_label_class") \
            and label not in repo.label_ids(conn):
        user.require("add_label_class")


def _check_attributes(conn: Connection, a: Annotation) -> None:
    """A person's shape carries attributes its class's schema allows (labelpilot.attributes)."""
    schema = repo.label_attributes(conn).get(a.label)
    if schema and a.attributes:
        check_values(schema, a.attributes, a.label)


def create_annotation(conn: Connection, *, image_id: int, annotation: Annotation,
                      user: UserInfo) -> Annotation:
    """Add a person's annotation (status `accepted` from a reviewer, else `edited`)."""
    img = get_image(conn, image_id)
    _may_change(conn, user, img, before=None, label=annotation.label)
    _check_attributes(conn, annotation)
    shape, _ = annotation.shape.clip(img.width, img.height)
    annotation.shape = shape
    if annotation.status in ("accepted", "rejected") and not user.may("review"):
        annotation.status = "edited"
    new_id = annotation_rows.insert_one(conn, image_id=image_id, annotation=annotation,
                                        username=user.username, when=repo.now())
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
        if status in ("accepted", "rejected"):
            user.require("review")
    img = get_image(conn, image_id)
    _may_change(conn, user, img, before=before, label=changes.get("label"))
    edited = any(k in changes for k in _EDIT_FIELDS)
    after = Annotation(
        label=changes.get("label", before.label), shape=changes.get("shape", before.shape),
        text=changes.get("text", before.text),
        attributes=changes.get("attributes", before.attributes),
        score=changes.get("score", before.score),
        source=before.source, status=status or ("edited" if edited else before.status),
        group=changes.get("group", before.group))
    if "attributes" in changes or "label" in changes:
        _check_attributes(conn, after)
    if "shape" in changes:
        after.shape, _ = after.shape.clip(img.width, img.height)
    when = repo.now()
    if not annotation_rows.update_versioned(
            conn, annotation_id=annotation_id, version=version, after=after,
            new_label="label" in changes, username=user.username, when=when):
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
    _may_change(conn, user, get_image(conn, image_id), before=before, label=None)
    if not annotation_rows.delete_versioned(conn, annotation_id=annotation_id, version=version):
        raise ConflictError(
            f"annotation {annotation_id} is at version {before.version}, not {version}",
            current=before, image_id=image_id)
    _audit(conn, image_id=image_id, annotation_id=annotation_id, action="delete", user=user,
           before=before, after=None)


def combine_annotations(conn: Connection, *, annotation_id: int, version: int, other_id: int,
                        other_version: int, op: str, user: UserInfo) -> tuple[int, Annotation]:
    """Merge annotation `other_id` into `annotation_id` (union: the other is deleted) or
    cut it out of it (subtract: the other stays), in one transaction; both versions must
    be the ones read (else ConflictError), and both changes are in the audit log."""
    image_id, a = get_annotation(conn, annotation_id)
    other_image, b = get_annotation(conn, other_id)
    if other_image != image_id:
        raise LabelPilotError(f"annotations {annotation_id} and {other_id} are on different images")
    if other_id == annotation_id:
        raise LabelPilotError("a shape cannot be combined with itself")
    if b.version != other_version:
        raise ConflictError(f"annotation {other_id} is at version {b.version}, not {other_version}",
                            current=b, image_id=image_id)
    img = get_image(conn, image_id)
    shape = combine(a.shape, b.shape, op, width=img.width, height=img.height)
    result = update_annotation(conn, annotation_id=annotation_id, version=version,
                               changes={"shape": shape}, user=user)
    if op == "union":
        delete_annotation(conn, annotation_id=other_id, version=other_version, user=user)
    return result


def bulk_set_status(conn: Connection, *, image_id: int, status: str, user: UserInfo,
                    annotation_ids: list[int] | None = None, only_status: str | None = None
                    ) -> int:
    """Accept or reject many annotations of one image (all, or the given ids)."""
    if status not in ("accepted", "rejected"):
        raise LabelPilotError("bulk status must be accepted or rejected")
    user.require("review")
    get_image(conn, image_id)
    changed = annotation_rows.ids_to_set(conn, image_id=image_id, status=status,
                                         ids=annotation_ids, only_status=only_status)
    if not changed:
        return 0
    annotation_rows.set_status(conn, changed, status=status, username=user.username,
                               when=repo.now())
    audit.record(conn, [_entry(image_id, i, status, user, None, None) for i in changed])
    return len(changed)


def add_comment(conn: Connection, *, image_id: int, text: str, user: UserInfo,
                annotation_id: int | None = None) -> dict[str, Any]:
    """A comment on an image, or on one of its annotations: kept in the image's history
    (the audit log), which every role reads."""
    get_image(conn, image_id)
    text = text.strip()
    if not text:
        raise LabelPilotError("a comment needs some text")
    if annotation_id is not None:
        owner, _ = get_annotation(conn, annotation_id)
        if owner != image_id:
            raise LabelPilotError(f"annotation {annotation_id} is not on image {image_id}")
    audit.record(conn, [_entry(image_id, annotation_id, "comment", user, None, {"text": text})])
    return audit_for_image(conn, image_id=image_id)[-1]


def audit_for_image(conn: Connection, *, image_id: int) -> list[dict[str, Any]]:
    get_image(conn, image_id)
    rows = audit.for_image(conn, image_id)
    return [{"id": r.id, "annotation_id": r.annotation_id, "action": r.action,
             "username": r.username, "at": repo.as_utc(r.at),
             "before": orjson.loads(r.before) if r.before else None,
             "after": orjson.loads(r.after) if r.after else None} for r in rows]
