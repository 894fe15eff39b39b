"""Active learning's rows: informativeness scores per image and model version, image
embeddings per content and backbone, and the labeling queue's order (`images.queue_rank`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, update

from labelpilot.store.repo import annotations_t, chunks, images_t, now
from labelpilot.store.tables import UNRANKED, Embedding, ImageScore, table

scores_t = table(ImageScore)
embeddings_t = table(Embedding)

# states of images nobody has reviewed yet: the pool a selection chooses from
POOL_STATES = ("new", "prelabeled")


def _touched() -> Any:
    """The ids of images holding a label a person made or confirmed."""
    return select(annotations_t.c.image_id).where(
        annotations_t.c.status.in_(["accepted", "edited"]))


def pool(conn: Connection, split: str | None) -> list[Any]:
    """The images nobody has reviewed yet (new or pre-labeled, unclaimed or whose claim
    expired, holding no label a person made or confirmed), in `split` if given, by id."""
    when = now()
    q = select(images_t).where(
        images_t.c.review_state.in_(POOL_STATES), images_t.c.id.not_in(_touched()),
        or_(images_t.c.claimed_by.is_(None), images_t.c.claim_expires_at < when))
    if split == "unassigned":
        q = q.where(images_t.c.split.is_(None))
    elif split:
        q = q.where(images_t.c.split == split)
    return list(conn.execute(q.order_by(images_t.c.id)))


def labeled(conn: Connection) -> list[Any]:
    """The images people have labeled or are labeling (not new or pre-labeled, or holding
    an accepted or edited label): what a diversity selection keeps away from."""
    return list(conn.execute(select(images_t).where(
        or_(images_t.c.review_state.not_in(POOL_STATES), images_t.c.id.in_(_touched())))
        .order_by(images_t.c.id)))


def scores_for(conn: Connection, model: str, image_ids: Sequence[int]
               ) -> dict[int, tuple[float, dict[str, Any], str]]:
    """The stored (score, parts, reason) of the images under `model` (a source string)."""
    out: dict[int, tuple[float, dict[str, Any], str]] = {}
    for chunk in chunks(list(image_ids)):
        for r in conn.execute(select(scores_t).where(scores_t.c.model == model,
                                                     scores_t.c.image_id.in_(chunk))):
            out[r.image_id] = (r.score, orjson.loads(r.parts), r.reason)
    return out


def save_scores(conn: Connection, model: str,
                rows: Sequence[tuple[int, float, dict[str, Any], str]]) -> None:
    """Store (image id, score, parts, reason) under `model`, replacing earlier ones."""
    if not rows:
        return
    ids = [r[0] for r in rows]
    for chunk in chunks(ids):
        conn.execute(delete(scores_t).where(scores_t.c.model == model,
                                            scores_t.c.image_id.in_(chunk)))
    when = now()
    conn.execute(insert(scores_t), [
        {"image_id": i, "model": model, "score": float(s), "parts": orjson.dumps(p).decode(),
         "reason": reason, "computed_at": when} for i, s, p, reason in rows])


def embeddings_for(conn: Connection, model: str, shas: Sequence[str]) -> dict[str, bytes]:
    """The stored vectors (float32 bytes) of the image contents `shas` under `model`."""
    out: dict[str, bytes] = {}
    for chunk in chunks(list(dict.fromkeys(shas))):
        out.update((sha, vec) for sha, vec in conn.execute(
            select(embeddings_t.c.sha256, embeddings_t.c.vector).where(
                embeddings_t.c.model == model, embeddings_t.c.sha256.in_(chunk))))
    return out


def save_embeddings(conn: Connection, model: str, vectors: dict[str, bytes]) -> None:
    """Store vectors by image content; contents already stored under `model` are kept."""
    have = embeddings_for(conn, model, list(vectors))
    new = [{"sha256": sha, "model": model, "vector": v} for sha, v in vectors.items()
           if sha not in have]
    if new:
        conn.execute(insert(embeddings_t), new)


def set_queue(conn: Connection, ranked: Sequence[tuple[int, dict[str, Any]]]) -> int:
    """Make `ranked` (image id, why) the labeling queue's order, first first; the images
    an earlier selection ranked go back to the plain order. Returns how many were unranked."""
    cleared = conn.execute(update(images_t).where(images_t.c.queue_rank != UNRANKED)
                           .values(queue_rank=UNRANKED, queue_reason=None)).rowcount
    if ranked:
        conn.execute(update(images_t).where(images_t.c.id == bindparam("b_id")).values(
            queue_rank=bindparam("b_rank"), queue_reason=bindparam("b_why")),
            [{"b_id": image_id, "b_rank": rank, "b_why": orjson.dumps(why).decode()}
             for rank, (image_id, why) in enumerate(ranked, start=1)])
    return int(cleared or 0)


def queue_size(conn: Connection) -> int:
    """How many images a selection ranks now."""
    return int(conn.execute(select(func.count()).select_from(images_t)
                            .where(images_t.c.queue_rank != UNRANKED)).scalar_one())
