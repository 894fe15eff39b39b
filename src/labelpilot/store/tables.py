"""Database tables. Every change here comes with an Alembic migration in `migrations/`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# `ImageRow.queue_rank` of the images no selection ranked: after every ranked one
UNRANKED = 2_000_000_000
# The largest value of an Integer column (ids, versions, counts): 32 bits on PostgreSQL.
# The API refuses larger numbers (422) instead of the database failing on them.
MAX_INT = 2**31 - 1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class LabelClass(Base):
    __tablename__ = "label_classes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    position: Mapped[int] = mapped_column(Integer)
    color: Mapped[str | None] = mapped_column(String(16))
    # A keypoint class's schema as JSON, COCO's way: {"keypoints": [names],
    # "skeleton": [[i, j], ...] (1-based indices into keypoints)}.
    keypoints: Mapped[str | None] = mapped_column(Text)
    # The attributes a shape of this class carries, as JSON: [{"name", "type" (checkbox,
    # select, text, number), "values" (a select's choices), "default"}], CVAT's way.
    attributes: Mapped[str | None] = mapped_column(Text)


class ImageRow(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # several images may share their bytes (one blob): an image is a named item
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    file_name: Mapped[str] = mapped_column(String(1000), unique=True)
    # the name as people sort it (img_2 before img_10): lower case, digit runs padded
    name_key: Mapped[str | None] = mapped_column(String(1000), index=True)
    suffix: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    split: Mapped[str | None] = mapped_column(String(8), index=True)
    review_state: Mapped[str] = mapped_column(String(16), index=True, default="new")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A lease: the annotator the queue handed this image to, until when.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claim_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The person this image is for (the queue hands it to them, and to no one else).
    assignee: Mapped[str | None] = mapped_column(String(100), index=True)
    # Classification tags of the whole image, as a JSON list of strings.
    tags: Mapped[str | None] = mapped_column(Text)
    # The labeling queue's order: an active-learning selection's rank (1 first), else
    # UNRANKED; and why it was chosen, as JSON ({"strategy", "score", "reason", "model"}).
    queue_rank: Mapped[int] = mapped_column(Integer, index=True, default=UNRANKED,
                                            server_default=str(UNRANKED))
    queue_reason: Mapped[str | None] = mapped_column(Text)


class AnnotationRow(Base):
    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_image_id_status", "image_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    label_id: Mapped[int] = mapped_column(ForeignKey("label_classes.id"), index=True)
    shape_type: Mapped[str] = mapped_column(String(16))
    # The shape as JSON (`Shape.to_dict()`); the bounding box is kept beside it for queries.
    geometry: Mapped[str] = mapped_column(Text)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    # No index of their own on source and status: a handful of distinct values each, so
    # an index would cost every bulk insert more than it saves; (image_id, status) serves
    # the per-image queries.
    source: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # set by a password someone else chose (the first start's one-time password, an
    # admin's reset): the user changes it before anything else
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())


class Token(Base):
    """Bearer tokens, stored as SHA-256 of the token: revocable, expiring."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who changed which annotation, when, and what it was before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(Integer, index=True)
    annotation_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    username: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The runner running it ("host:pid:nonce") and when it last said it is alive.
    owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobItem(Base):
    """A unit of a job's work that is finished: a restarted job skips these."""

    __tablename__ = "job_items"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)


class ImageScore(Base):
    """How much an image would teach one model version (active learning's uncertainty):
    the score in [0, 1], its parts as JSON and the reason in words."""

    __tablename__ = "image_scores"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"),
                                          primary_key=True)
    # the model version that made it: `model:<name>@<version>`, as proposals' sources
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    parts: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Embedding(Base):
    """An image's feature vector under one model's backbone (float32, unit length), kept
    per image content: computed once, for diversity sampling."""

    __tablename__ = "embeddings"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    # the model version and the feature tensor: `model:<name>@<version>#<tensor>`
    model: Mapped[str] = mapped_column(String(300), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class ImageHash(Base):
    """A perceptual hash of an image's content (64-bit difference hash, as 16 hex digits),
    computed once per blob: near-duplicate images in the analytics."""

    __tablename__ = "image_hashes"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    dhash: Mapped[str] = mapped_column(String(16))


def table(model: type[Base]) -> Table:
    """The Core table of a model, typed as one (for bulk statements)."""
    return model.__table__  # type: ignore[return-value]
