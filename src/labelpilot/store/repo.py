"""Bulk reads and writes. Every function takes a connection inside the caller's transaction
and does a bounded number of round-trips (never one per annotation)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update

from labelpilot.annotations import NO_AREA, Annotation, trusted_annotation, trusted_shape
from labelpilot.store.names import natural_key
from labelpilot.store.tables import AnnotationRow, ImageRow, LabelClass, table

_CHUNK = 500

labels_t = table(LabelClass)
images_t = table(ImageRow)
annotations_t = table(AnnotationRow)


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones)."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterator[Sequence[Any]]:
    """`seq` in slices of `n` (IN lists and bulk inserts stay within the databases' limits)."""
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


def label_colors(conn: Connection) -> dict[str, str]:
    """Label name -> its colour (#rrggbb), for the classes that have one."""
    return dict(conn.execute(select(labels_t.c.name, labels_t.c.color)
                             .where(labels_t.c.color.is_not(None))).all())


def update_label(conn: Connection, label: str, values: dict[str, Any]) -> None:
    conn.execute(update(labels_t).where(labels_t.c.name == label).values(**values))


def merge_label(conn: Connection, source: str, into: str) -> int:
    """Every annotation of class `source` becomes one of `into`, and `source` is gone;
    returns how many annotations moved."""
    ids = label_ids(conn)
    moved = conn.execute(update(annotations_t).where(annotations_t.c.label_id == ids[source])
                         .values(label_id=ids[into])).rowcount
    conn.execute(delete(labels_t).where(labels_t.c.id == ids[source]))
    return int(moved)


def label_attributes(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Label name -> its attribute schema (see labelpilot.attributes), for the classes
    that have one."""
    rows = conn.execute(select(labels_t.c.name, labels_t.c.attributes)
                        .where(labels_t.c.attributes.is_not(None)))
    return {name: orjson.loads(a) for name, a in rows}


def label_keypoints(conn: Connection) -> dict[str, dict[str, Any]]:
    """Label name -> keypoint schema ({"keypoints": [...], "skeleton": [...]}), for the
    classes that have one."""
    rows = conn.execute(select(labels_t.c.name, labels_t.c.keypoints)
                        .where(labels_t.c.keypoints.is_not(None)))
    return {name: orjson.loads(kp) for name, kp in rows}


def set_label_keypoints(conn: Connection, schemas: dict[str, dict[str, Any]]) -> list[str]:
    """Give classes without a keypoint schema the one `schemas` holds; returns the names
    whose stored schema differs from the one given (kept as stored)."""
    stored = label_keypoints(conn)
    differ = []
    for name, schema in schemas.items():
        if name in stored:
            if stored[name] != schema:
                differ.append(name)
            continue
        conn.execute(update(labels_t).where(labels_t.c.name == name)
                     .values(keypoints=orjson.dumps(schema).decode()))
    return differ


def label_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(labels_t.c.name).order_by(labels_t.c.position)).scalars())


def images_by_sha(conn: Connection, shas: Sequence[str]
                  ) -> dict[str, list[tuple[int, str]]]:
    """Per content hash, the images (id, file name) holding those bytes: several images
    may share one blob."""
    out: dict[str, list[tuple[int, str]]] = {}
    for chunk in chunks(list(dict.fromkeys(shas))):
        q = select(images_t.c.sha256, images_t.c.id, images_t.c.file_name).where(
            images_t.c.sha256.in_(chunk)).order_by(images_t.c.id)
        for sha, id_, name in conn.execute(q):
            out.setdefault(sha, []).append((id_, name))
    return out


def taken_file_names(conn: Connection, names: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for chunk in chunks(list(names)):
        out.update(conn.execute(
            select(images_t.c.file_name).where(images_t.c.file_name.in_(chunk))).scalars())
    return out


def insert_images(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert image rows; returns their ids in the order given."""
    if not rows:
        return []
    rows = [{**r, "name_key": natural_key(r["file_name"])} for r in rows]
    result = conn.execute(
        insert(images_t).returning(images_t.c.id, sort_by_parameter_order=True), rows)
    return [r[0] for r in result]


ANNOTATION_COLUMNS = ("image_id", "label_id", "shape_type", "geometry", "x1", "y1", "x2", "y2",
                      "text", "attributes", "score", "source", "status", "group_id", "version",
                      "created_by", "created_at", "updated_by", "updated_at")


def annotation_fragment(ann: Annotation, bbox: tuple[float, float, float, float] | None = None
                        ) -> tuple[Any, ...]:
    """The columns of `ANNOTATION_COLUMNS` from `shape_type` to `group_id`, with the label
    name (not yet its id) first. The import adds image id, label id and the bookkeeping."""
    shape = ann.shape
    x1, y1, x2, y2 = bbox or shape.bbox()
    return (ann.label, shape.type, orjson.dumps(shape.to_dict()).decode(),
            x1, y1, x2, y2, ann.text,
            orjson.dumps(ann.attributes).decode() if ann.attributes else None,
            ann.score, ann.source, ann.status, ann.group)


def db_time(conn: Connection, when: datetime) -> Any:
    """`when` as the driver wants it (SQLite stores text; PostgreSQL takes datetimes)."""
    proc = annotations_t.c.created_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return proc(when) if proc else when


def insert_annotations(conn: Connection, rows: list[tuple[Any, ...]]) -> int:
    """Insert many annotation rows at the driver's full speed: SQLite's executemany, or
    PostgreSQL's COPY, inside the caller's transaction."""
    if not rows:
        return 0
    cols = ", ".join(ANNOTATION_COLUMNS)
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cur, cur.copy(f"COPY annotations ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO annotations ({cols}) VALUES ({', '.join([mark] * len(ANNOTATION_COLUMNS))})"
    for chunk in chunks(rows, 50_000):
        conn.exec_driver_sql(sql, list(chunk))
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


def annotation_by_id(conn: Connection, annotation_id: int) -> tuple[int, Annotation] | None:
    """(image id, annotation) for one annotation, in one query; None if it does not exist."""
    r = conn.execute(select(*_ANN_COLS).join(labels_t, labels_t.c.id == annotations_t.c.label_id)
                     .where(annotations_t.c.id == annotation_id)).first()
    return (r[1], _row_to_annotation(r)) if r is not None else None


def annotations_for_images(conn: Connection, image_ids: Sequence[int],
                           statuses: Sequence[str] | None = None) -> dict[int, list[Annotation]]:
    """Annotations of the given images, by image id, in creation order."""
    out: dict[int, list[Annotation]] = {}
    for chunk in chunks(list(image_ids)):
        q = (select(*_ANN_COLS).join(labels_t, labels_t.c.id == annotations_t.c.label_id)
             .where(annotations_t.c.image_id.in_(chunk)).order_by(annotations_t.c.id))
        if statuses is not None:
            q = q.where(annotations_t.c.status.in_(list(statuses)))
        for r in conn.execute(q):
            out.setdefault(r[1], []).append(_row_to_annotation(r))
    return out


_EXPORT_COLS = _ANN_COLS[:11]


def _row_to_export(r: Sequence[Any]) -> Annotation:
    a = object.__new__(Annotation)  # trusted: validated when written (see trusted_annotation)
    a.id, a.label, a.text, a.score = r[0], r[2], r[4], r[6]
    a.shape = trusted_shape(orjson.loads(r[3]))
    a.attributes = orjson.loads(r[5]) if r[5] else {}
    a.source, a.status, a.group, a.version = r[7], r[8], r[9], r[10]
    a.created_by = a.created_at = a.updated_by = a.updated_at = None
    return a


def iter_annotations(conn: Connection, statuses: Sequence[str],
                     split: str | None = None) -> Iterator[tuple[int, Annotation]]:
    """(image_id, annotation) for the whole workspace in one streamed query.

    For exports: the who/when bookkeeping is left out, and rows are fetched straight from
    the driver (the SQLAlchemy row layer costs more than the rows themselves here).
    """
    q = (select(*_EXPORT_COLS).join(labels_t, labels_t.c.id == annotations_t.c.label_id)
         .where(annotations_t.c.status.in_(list(statuses))).order_by(annotations_t.c.id))
    if split is not None:
        q = q.join(images_t, images_t.c.id == annotations_t.c.image_id).where(
            images_t.c.split == split)
    compiled = q.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        if compiled.positiontup is not None:
            cursor.execute(str(compiled), tuple(params[k] for k in compiled.positiontup))
        else:
            cursor.execute(str(compiled), params)
        while rows := cursor.fetchmany(10_000):
            for r in rows:
                yield r[1], _row_to_export(r)
    finally:
        cursor.close()


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
        "images_by_assignee": {("nobody" if k == "None" else k): v
                               for k, v in grouped(images_t.c.assignee, images_t).items()},
    }


def tags_in_use(conn: Connection) -> list[str]:
    """Every tag some image carries, sorted."""
    found: set[str] = set()
    for (tags,) in conn.execute(select(images_t.c.tags).where(images_t.c.tags.is_not(None))
                                .distinct()):
        found.update(orjson.loads(tags))
    return sorted(found)


def _confirmed_regions(split: str, *columns: Any) -> Any:
    """SELECT `columns` over a split's accepted/edited regions (shapes with an area), their
    class joined."""
    return (select(*columns).select_from(annotations_t.join(
        images_t, images_t.c.id == annotations_t.c.image_id).join(
        labels_t, labels_t.c.id == annotations_t.c.label_id)).where(
        images_t.c.split == split, annotations_t.c.status.in_(("accepted", "edited")),
        annotations_t.c.shape_type.not_in(NO_AREA)))


def confirmed_regions_by_label(conn: Connection, split: str) -> dict[str, int]:
    """In a split: the accepted/edited regions (shapes with an area) of each class."""
    q = _confirmed_regions(split, labels_t.c.name, func.count()).group_by(labels_t.c.name)
    return {name: int(n) for name, n in conn.execute(q)}


def confirmed_counts(conn: Connection, split: str) -> tuple[int, int]:
    """In a split: the accepted/edited regions (shapes with an area), and the text lines
    among them with a transcription (not empty, not `###`)."""
    base = _confirmed_regions(split, func.count())
    regions = conn.execute(base).scalar_one()
    lines = conn.execute(base.where(annotations_t.c.text.is_not(None),
                                    annotations_t.c.text.not_in(("", "###")))).scalar_one()
    return int(regions), int(lines)


def confirmed_labels(conn: Connection, split: str | None
                     ) -> tuple[list[Any], dict[int, list[Annotation]]]:
    """The images of a split (all when None) and their accepted/edited annotations: the
    ground truth every evaluation and training reads."""
    rows = list_images(conn, split)
    return rows, annotations_for_images(conn, [r.id for r in rows], ("accepted", "edited"))
