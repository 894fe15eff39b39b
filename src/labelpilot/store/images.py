"""Queries on the images table: filtered pages, the labeling queue's claims, per-image
updates (the rules live in `labelpilot.review`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, case, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from labelpilot.store.names import natural_key
from labelpilot.store.repo import annotations_t, chunks, images_t, labels_t, now

# file names in their natural order (img_2 before img_10)
SORTS = {"queue": images_t.c.queue_rank, "id": images_t.c.id,
         "file_name": images_t.c.name_key, "review_state": images_t.c.review_state}


@dataclass(frozen=True)
class ImageQuery:
    """Which images: each field set narrows the set. `split` "unassigned" means no split;
    `low_confidence` asks for images with (or without) a predicted annotation scored under
    `low_score`."""
    review_state: str | None = None
    split: str | None = None
    label: str | None = None
    source: str | None = None
    low_confidence: bool | None = None
    low_score: float = 0.8
    exclude_states: tuple[str, ...] = ()
    # words in the file name or in a transcription (case-insensitive)
    text: str | None = None
    # the person the images are assigned to; UNASSIGNED for none
    assignee: str | None = None
    # a tag the image carries
    tag: str | None = None


# `assignee` for images assigned to no one (no username starts with "@")
UNASSIGNED = "@unassigned"


def _where(f: ImageQuery) -> list[Any]:
    conds: list[Any] = []
    if f.review_state:
        conds.append(images_t.c.review_state == f.review_state)
    if f.exclude_states:
        conds.append(images_t.c.review_state.not_in(f.exclude_states))
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
    if f.text:
        needle = f.text.lower()
        conds.append(or_(
            func.lower(images_t.c.file_name).contains(needle, autoescape=True),
            exists().where(ann.c.image_id == images_t.c.id, ann.c.status != "rejected",
                           func.lower(ann.c.text).contains(needle, autoescape=True))))
    if f.assignee == UNASSIGNED:
        conds.append(images_t.c.assignee.is_(None))
    elif f.assignee:
        conds.append(images_t.c.assignee == f.assignee)
    if f.tag:
        # tags are a JSON list: the tag as a JSON string, quotes included, is one element
        conds.append(images_t.c.tags.contains(orjson.dumps(f.tag).decode(), autoescape=True))
    if f.low_confidence is not None:
        low = exists().where(ann.c.image_id == images_t.c.id, ann.c.status == "predicted",
                             ann.c.score < f.low_score)
        conds.append(low if f.low_confidence else ~low)
    return conds


def page(conn: Connection, query: ImageQuery, *, sort: str, offset: int, limit: int
         ) -> tuple[list[tuple[Any, int, str]], int]:
    """One page of image rows, each with its count of annotations not rejected and a
    stamp that changes whenever one of its annotations does (count and last change), and
    the number of images the query matches. `sort` is a key of SORTS."""
    conds = _where(query)
    total = conn.execute(select(func.count()).select_from(images_t).where(*conds)).scalar_one()
    rows = conn.execute(select(images_t).where(*conds).order_by(SORTS[sort], images_t.c.id)
                        .offset(offset).limit(limit)).all()
    ann = annotations_t
    counts: dict[int, tuple[int, Any, int]] = {
        i: (n, last, every) for i, n, last, every in conn.execute(
            select(ann.c.image_id, func.count().filter(ann.c.status != "rejected"),
                   func.max(ann.c.updated_at), func.count())
            .where(ann.c.image_id.in_([r.id for r in rows]))
            .group_by(ann.c.image_id))} if rows else {}
    out = []
    for r in rows:
        n, last, every = counts.get(r.id, (0, None, 0))
        out.append((r, n, hashlib.sha1(f"{n}.{every}.{last}".encode()).hexdigest()[:12]))
    return out, int(total)


def neighbours(conn: Connection, query: ImageQuery, *, sort: str, row: Any
               ) -> tuple[int | None, int, int | None, int | None]:
    """Where image `row` stands in the list `query` sorted by `sort` (then id): its
    1-based position (None when it does not match the query, e.g. its state changed since
    the list was read), the list's length, and the images before and after it in that
    order (the place an image that left the list had is kept)."""
    conds = _where(query)
    key = SORTS[sort]
    value = row._mapping[key.name]
    before = or_(key < value, (key == value) & (images_t.c.id < row.id))
    after = or_(key > value, (key == value) & (images_t.c.id > row.id))
    total = conn.execute(select(func.count()).select_from(images_t).where(*conds)).scalar_one()
    prev_id = conn.execute(select(images_t.c.id).where(*conds, before)
                           .order_by(key.desc(), images_t.c.id.desc()).limit(1)).scalar()
    next_id = conn.execute(select(images_t.c.id).where(*conds, after)
                           .order_by(key, images_t.c.id).limit(1)).scalar()
    inside = conn.execute(select(func.count()).select_from(images_t).where(
        *conds, images_t.c.id == row.id)).scalar_one()
    position = None
    if inside:
        position = 1 + conn.execute(select(func.count()).select_from(images_t)
                                    .where(*conds, before)).scalar_one()
    return position, int(total), prev_id, next_id


def ids_for_split(conn: Connection, ids: list[int] | None, *, only_unassigned: bool
                  ) -> list[int]:
    """The ids, in order, of the images `ids` that exist (all images when None), those
    without a split only if asked."""
    q = select(images_t.c.id)
    if only_unassigned:
        q = q.where(images_t.c.split.is_(None))
    if ids is None:
        return list(conn.execute(q.order_by(images_t.c.id)).scalars())
    found: list[int] = []
    for chunk in chunks(ids):
        found += conn.execute(q.where(images_t.c.id.in_(chunk))).scalars()
    return sorted(found)


def image_classes(conn: Connection, ids: list[int]) -> dict[int, set[str]]:
    """Each image's classes: the labels of its annotations not rejected."""
    out: dict[int, set[str]] = {}
    for chunk in chunks(ids):
        rows = conn.execute(
            select(annotations_t.c.image_id, labels_t.c.name)
            .join(labels_t, labels_t.c.id == annotations_t.c.label_id)
            .where(annotations_t.c.image_id.in_(chunk),
                   annotations_t.c.status != "rejected").distinct())
        for image_id, name in rows:
            out.setdefault(image_id, set()).add(name)
    return out


def set_splits(conn: Connection, chosen: dict[int, str | None]) -> None:
    """Image id -> split (None: no split), in one statement per split and chunk of ids."""
    for split in set(chosen.values()):
        for chunk in chunks([i for i, s in chosen.items() if s == split]):
            conn.execute(update(images_t).where(images_t.c.id.in_(chunk)).values(split=split))


def image_row(conn: Connection, image_id: int) -> Any | None:
    return conn.execute(select(images_t).where(images_t.c.id == image_id)).first()


def image_rows_by_id(conn: Connection, ids: list[int]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for chunk in chunks(ids):
        out.update((r.id, r) for r in conn.execute(select(images_t).where(
            images_t.c.id.in_(chunk))))
    return out


def set_states(conn: Connection, ids: list[int], state: str) -> None:
    for chunk in chunks(ids):
        conn.execute(update(images_t).where(images_t.c.id.in_(chunk)).values(
            review_state=state))


def count_in_states(conn: Connection, states: list[str]) -> int:
    return int(conn.execute(select(func.count()).select_from(images_t)
                            .where(images_t.c.review_state.in_(states))).scalar_one())


def in_states(conn: Connection, states: list[str]) -> list[Any]:
    """The image rows in one of the review `states`, by id."""
    return list(conn.execute(select(images_t).where(images_t.c.review_state.in_(states))
                             .order_by(images_t.c.id)))


def set_image(conn: Connection, image_id: int, **values: Any) -> None:
    conn.execute(update(images_t).where(images_t.c.id == image_id).values(**values))


def claimed_by(conn: Connection, username: str, when: datetime,
               query: ImageQuery | None = None) -> Any | None:
    """The user's unexpired claim on an image not done yet (and in `query`), if any."""
    return conn.execute(select(images_t).where(
        images_t.c.claimed_by == username, images_t.c.claim_expires_at >= when,
        images_t.c.review_state != "done", *_where(query or ImageQuery()))
        .order_by(images_t.c.id).limit(1)).first()


def claim_first(conn: Connection, *, username: str, lease: timedelta, query: ImageQuery,
                assigned: bool = False, attempts: int = 20) -> int | None:
    """Claim the first image not done and free (unclaimed, expired, or the user's own) for
    `username`, in the labeling queue's order (a selection's rank, then id); its state
    goes from new/prelabeled to in_review. With `assigned`, images assigned to someone
    else are not handed out and the user's own come first. Two callers never get the same
    image: the claim is one conditional UPDATE, re-checked against the row as written
    (PostgreSQL also skips rows another transaction is claiming)."""
    when = now()
    free = or_(images_t.c.claimed_by.is_(None), images_t.c.claim_expires_at < when,
               images_t.c.claimed_by == username)
    conds = [images_t.c.review_state != "done", free, *_where(query)]
    # an active-learning selection's images first, in its order (see store.scores)
    order: list[Any] = [images_t.c.queue_rank, images_t.c.id]
    if assigned:
        mine = images_t.c.assignee == username
        conds.append(or_(images_t.c.assignee.is_(None), mine))
        order = [case((mine, 0), else_=1), *order]
    for _ in range(attempts):
        q = select(images_t.c.id).where(*conds).order_by(*order).limit(1)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        image_id = conn.execute(q).scalar()
        if image_id is None:
            return None
        got = conn.execute(update(images_t).where(images_t.c.id == image_id, free).values(
            claimed_by=username, claim_expires_at=when + lease,
            review_state=case((images_t.c.review_state.in_(["new", "prelabeled"]), "in_review"),
                              else_=images_t.c.review_state))).rowcount
        if got:
            return int(image_id)
    return None


def try_insert(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert one image row; None (and nothing written) when a unique column clashes with
    a row another writer committed first (the same file name)."""
    try:
        with conn.begin_nested():
            values = {**values, "name_key": natural_key(values["file_name"])}
            return int(conn.execute(insert(images_t).values(values)
                                    .returning(images_t.c.id)).scalar_one())
    except IntegrityError:
        return None


def set_assignees(conn: Connection, chosen: dict[int, str | None]) -> None:
    """Image id -> assignee (None: no one), in one statement per assignee and chunk; a
    claim someone else holds on a re-assigned image is let go."""
    for who in set(chosen.values()):
        for chunk in chunks([i for i, a in chosen.items() if a == who]):
            conn.execute(update(images_t).where(images_t.c.id.in_(chunk)).values(assignee=who))
            conn.execute(update(images_t).where(
                images_t.c.id.in_(chunk), images_t.c.claimed_by.is_not(None),
                images_t.c.claimed_by != (who or "")).values(claimed_by=None,
                                                            claim_expires_at=None))


def assignees_of(conn: Connection, ids: list[int]) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for chunk in chunks(ids):
        out.update((i, a) for i, a in conn.execute(
            select(images_t.c.id, images_t.c.assignee).where(images_t.c.id.in_(chunk))))
    return out


def blob_keys(conn: Connection) -> list[tuple[str, str]]:
    """(sha256, suffix) of every stored image: the blobs rows refer to."""
    return [(sha, suffix) for sha, suffix in conn.execute(
        select(images_t.c.sha256, images_t.c.suffix))]
