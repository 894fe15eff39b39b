"""Import and export: the services behind `labelpilot import/export/stats` (and the server).

An import checks everything first (label files, every image) and then writes in one
transaction: it either lands whole or leaves the workspace as it was.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from labelpilot.annotations import SPLITS, Annotation
from labelpilot.archives import is_archive, unpack
from labelpilot.attributes import check_tags
from labelpilot.errors import ImageError, LabelPilotError, ValidationError
from labelpilot.formats import configured, get_format
from labelpilot.formats.base import Dataset, DatasetItem
from labelpilot.imageio import probe_image
from labelpilot.store import images as image_rows
from labelpilot.store import repo
from labelpilot.store.blobs import BlobStore
from labelpilot.workspace import Workspace

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total)"""

EXPORT_STATUSES = {"accepted": ("accepted", "edited"),
                   "all": ("predicted", "accepted", "edited")}
_MAX_LISTED = 20


@dataclass
class ImportReport:
    source: str
    format: str
    images_added: int = 0
    images_already_present: int = 0
    annotations_added: int = 0
    annotations_already_present: int = 0
    labels_added: list[str] = field(default_factory=list)
    clipped: int = 0
    invalid_images: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ExportReport:
    dest: str
    format: str
    images: int = 0
    annotations: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Checked:
    item: DatasetItem
    sha256: str
    suffix: str
    width: int
    height: int
    new_blob: bool


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during bulk work.

    Building hundreds of thousands of small containers makes the collector run over and
    over while nothing is garbage yet; pausing it made a 200,000-annotation import about
    twice as fast. Reference counting still frees memory as usual.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _listing(problems: list[str]) -> str:
    # one line each: a file name from a label file may hold line breaks
    head = "\n  ".join(p.replace("\r", "\\r").replace("\n", "\\n")
                       for p in problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    return f"\n  {head}{more}"


def import_dataset(ws: Workspace, source: Path | str, *, format: str, split: str | None = None,
                   strict: bool = False, skip_invalid: bool = False,
                   images_dir: Path | None = None, link: bool = False,
                   user: str | None = None, progress: Progress | None = None,
                   options: dict[str, Any] | None = None) -> ImportReport:
    """Import images and labels from `source` (a folder, file or archive) in `format`.

    Args:
        split: put every imported image in this split (else the format's own split, if any).
        strict: refuse label classes the workspace does not have (else they are added).
        skip_invalid: import the rest when some images are unreadable (else refuse all).
        link: hard-link image files into the store instead of copying them, where the file
            system allows (much faster for large sets; an original edited in place then
            changes the stored image too, so use it for read-only datasets).

    Raises:
        LabelPilotError: with the file, line or field at fault; nothing was written.
    """
    source = Path(source)
    if not source.exists():
        raise LabelPilotError(f"{source} does not exist")
    if split is not None and split not in SPLITS:
        raise LabelPilotError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    fmt = configured(get_format(format), options)
    with gc_paused(), tempfile.TemporaryDirectory(prefix="labelpilot-import-") as tmp:
        if is_archive(source):
            unpack(source, Path(tmp))
            load_from = Path(tmp)
            inner = list(load_from.iterdir())
            if len(inner) == 1 and inner[0].is_dir():  # archives often wrap one folder
                load_from = inner[0]
        else:
            load_from = source
        ds = fmt.load(load_from, images_dir=images_dir)
        report = ImportReport(str(source), format, warnings=list(ds.warnings))
        return _import(ws, ds, report, split=split, strict=strict, skip_invalid=skip_invalid,
                       link=link and not is_archive(source), user=user, progress=progress)


_STORES: dict[str, BlobStore] = {}


def check_image(path: str | None, data: bytes | None, name: str, max_pixels: int,
                blob_root: str, link: bool = False) -> tuple[str, str, int, int, bool] | str:
    """Check one image and store its blob: (sha256, suffix, width, height, new) or a problem.

    A plain function of plain values, so worker processes can run it. With `link`, an
    image stored as it is gets hard-linked into the store instead of copied.
    """
    try:
        if data is None:
            if path is None or not os.path.isfile(path):
                return f"{path or name}: image file not found"
            with open(path, "rb") as f:
                data = f.read()
        probed = probe_image(data, name=path or name, max_pixels=max_pixels)
    except ImageError as e:
        return str(e.message)
    except OSError as e:
        return f"{path}: cannot read ({e.strerror})"
    store = _STORES.get(blob_root) or _STORES.setdefault(blob_root, BlobStore(Path(blob_root)))
    new = None
    if link and path is not None and not probed.reoriented:
        try:
            new = store.link(probed.sha256, probed.suffix, path)
        except OSError:
            new = None  # another file system, or links not allowed: copy instead
    if new is None:
        new = store.put(probed.sha256, probed.suffix, probed.data)
    return probed.sha256, probed.suffix, probed.width, probed.height, new


def _check_chunk(jobs: list[tuple[Any, ...]]) -> list[Any]:
    return [check_image(*job) for job in jobs]


# Below this many images, starting worker processes costs more than it saves.
_PROCESS_POOL_MIN = 256
_CHUNK_IMAGES = 200


class _ImageChecks:
    """Checks and stores the images in worker processes while the caller prepares rows."""

    def __init__(self, ws: Workspace, items: list[DatasetItem], *, link: bool) -> None:
        self.items = items
        self.blobs = ws.blobs
        root = str(ws.blobs.root)
        jobs = [(str(it.path) if it.path is not None else None, it.data, it.name,
                 ws.config.max_pixels, root, link) for it in items]
        self.chunks = [jobs[i:i + _CHUNK_IMAGES] for i in range(0, len(jobs), _CHUNK_IMAGES)]
        self.got: dict[int, list[Any]] = {}
        self.pool: ProcessPoolExecutor | None = None
        self.futures: list[Future[list[Any]]] = []
        cpus = os.cpu_count() or 1
        # fork: the workers run one plain function and need nothing re-imported (spawn and
        # forkserver would re-run the caller's main script). Elsewhere, check in-process.
        if (len(items) >= _PROCESS_POOL_MIN and cpus > 1
                and "fork" in multiprocessing.get_all_start_methods()):
            ctx = multiprocessing.get_context("fork")
            self.pool = ProcessPoolExecutor(max_workers=min(cpus, 8), mp_context=ctx)
            self.futures = [self.pool.submit(_check_chunk, c) for c in self.chunks]

    def results(self, progress: Progress | None) -> tuple[list[_Checked], list[str]]:
        checked: list[_Checked] = []
        problems: list[str] = []
        done = 0
        for k, chunk in enumerate(self.chunks):
            self.got[k] = self.futures[k].result() if self.pool else _check_chunk(chunk)
            for item, r in zip(self.items[done:done + len(chunk)], self.got[k], strict=True):
                if isinstance(r, str):
                    problems.append(r)
                else:
                    checked.append(_Checked(item, *r))
            done += len(chunk)
            if progress:
                progress("images", done, len(self.items))
        if self.pool is not None:
            self.pool.shutdown()
        return checked, problems

    def abandon(self) -> None:
        """Stop the workers (the blobs stored so far are collected afterwards)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _prepare(items: list[DatasetItem]) -> list[list[tuple[Any, ...]] | None]:
    """Per item, its annotations as row fragments (label name first, no image id yet),
    clipped to the size the label file states. None where no size is stated: those are
    done once the image's real size is known."""
    out: list[list[tuple[Any, ...]] | None] = []
    for item in items:
        if item.width is None or item.height is None:
            out.append(None)
        else:
            out.append([_fragment(a, item.width, item.height) for a in item.annotations])
    return out


def _fragment(a: Annotation, width: int, height: int) -> tuple[Any, ...]:
    bbox = a.shape.bbox()
    moved = False
    if bbox[0] < 0 or bbox[1] < 0 or bbox[2] > width or bbox[3] > height or a.shape.type == "mask":
        try:
            shape, moved = a.shape.clip(width, height)
        except ValidationError as e:
            raise LabelPilotError(f"{e.message}; nothing was imported") from None
        if moved:
            a.shape = shape
            bbox = shape.bbox()
    return (moved, a, *repo.annotation_fragment(a, bbox))


def _import(ws: Workspace, ds: Dataset, report: ImportReport, *, split: str | None,
            strict: bool, skip_invalid: bool, link: bool, user: str | None,
            progress: Progress | None) -> ImportReport:
    engine = ws.engine
    used = ds.all_labels()
    with engine.connect() as conn:
        unknown = [n for n in used if n not in repo.label_ids(conn)]
    if unknown and strict:
        raise LabelPilotError(
            f"label classes not in the workspace: {', '.join(unknown)}; nothing was imported",
            hint="add them (labelpilot init --labels, or import without --strict) or fix "
                 "the label files")
    for item in ds.items:
        if item.tags:
            try:
                item.tags = check_tags(item.tags)
            except ValidationError as e:
                raise LabelPilotError(f"{item.name}: {e.message}; nothing was imported") from None
    try:
        with ws.blobs.writing():
            checks = _ImageChecks(ws, ds.items, link=link)
            try:
                fragments = _prepare(ds.items)
                checked, problems = checks.results(progress)
                if problems and not skip_invalid:
                    raise LabelPilotError(
                        f"{len(problems)} of {len(ds.items)} images cannot be imported; "
                        f"nothing was imported:{_listing(problems)}",
                        hint="fix or remove these files, or pass --skip-invalid to import "
                             "the rest")
                report.invalid_images = problems
                by_item = {id(item): frag for item, frag in zip(ds.items, fragments, strict=True)}
                with ws.transaction() as conn:
                    ids = repo.ensure_labels(conn, used)
                    report.labels_added = [n for n in unknown if n in ids]
                    for name in repo.set_label_keypoints(conn, ds.keypoints):
                        report.warnings.append(
                            f"{name}: the import's keypoint schema differs from the "
                            "workspace's; the workspace's is kept")
                    _write(conn, checked, by_item, ids, report, split=split, user=user)
            except BaseException:
                checks.abandon()
                raise
    except BaseException:
        # the blobs this import stored refer to no row: remove them now unless other
        # writers are busy (then the next `collect_garbage` does)
        with contextlib.suppress(Exception):
            collect_garbage(ws)
        raise
    ws.add_labels(report.labels_added)
    return report


def collect_garbage(ws: Workspace, *, wait: bool = False) -> dict[str, int] | None:
    """Remove stored image files no image row refers to (left by a failed or killed import
    or upload) and temporary files. Runs only while no import or upload is storing images:
    None when one is and `wait` is false."""
    def referenced() -> list[tuple[str, str]]:
        with ws.engine.connect() as conn:
            return image_rows.blob_keys(conn)

    return ws.blobs.collect(referenced, wait=wait)


def _item_key(name: str, sha: str) -> tuple[str, str]:
    """What identifies an image: its name (as stored) and its bytes. Two names with the same
    bytes are two images sharing a blob; the same name with other bytes is another image."""
    return PurePosixPath(name.replace("\\", "/").lstrip("/")).as_posix(), sha


def _renamed(name: str, sha: str) -> str:
    """The name an image gets when its own is taken by other bytes."""
    p = PurePosixPath(name)
    return p.with_name(f"{p.stem}-{sha[:8]}{p.suffix}").as_posix()


def _present(existing: dict[str, list[tuple[int, str]]], key: tuple[str, str]) -> int | None:
    """The stored image that is this item (same bytes, and its name or the name it got
    when that was taken), if any."""
    name, sha = key
    for image_id, stored_name in existing.get(sha, []):
        if stored_name in (name, _renamed(name, sha)):
            return image_id
    return None


def _write(conn: Any, checked: list[_Checked], fragments: dict[int, Any],
           label_ids: dict[str, int], report: ImportReport, *, split: str | None,
           user: str | None) -> None:
    existing = repo.images_by_sha(conn, [c.sha256 for c in checked])
    keys = _import_keys(checked, report)
    present = {k: i for k in dict.fromkeys(keys) if (i := _present(existing, k)) is not None}
    # An item named twice with the same bytes (a label file listing it twice) is one image;
    # every other item is an image of its own, whatever bytes it shares with others.
    first: dict[tuple[str, str], _Checked] = {}
    for key, c in zip(keys, checked, strict=True):
        if key not in present:
            first.setdefault(key, c)
    names = _unique_names(conn, list(first))
    now = repo.now()
    rows = [{"sha256": c.sha256, "file_name": names[key], "suffix": c.suffix,
             "width": c.width, "height": c.height,
             "split": split or (c.item.split if c.item.split in SPLITS else None),
             "review_state": c.item.review_state or "new", "created_at": now,
             "tags": orjson.dumps(c.item.tags).decode() if c.item.tags else None}
            for key, c in first.items()]
    new_ids = repo.insert_images(conn, rows)
    image_ids = dict(zip(first, new_ids, strict=True))
    report.images_added = len(new_ids)
    report.images_already_present = len(present)
    image_ids.update(present)
    # Only images that were already there, or that come twice in this import, can receive
    # an annotation they already have: compare fingerprints for those alone.
    repeated = {key for key, n in Counter(keys).items() if n > 1}
    seen: dict[int, set[tuple[Any, ...]]] = {}
    if present:
        stored = repo.annotations_for_images(conn, list(present.values()))
        seen = {img: {a.fingerprint() for a in anns} for img, anns in stored.items()}
    when = repo.db_time(conn, now)
    tail = (1, user, when, user, when)
    ann_rows = []
    for key, c in zip(keys, checked, strict=True):
        image_id = image_ids[key]
        item = c.item
        frags = fragments[id(item)]
        declared = (item.width, item.height)
        if frags is None or declared != (c.width, c.height):
            if frags is not None:
                report.warnings.append(
                    f"{item.name}: the label file says {declared[0]}x{declared[1]} but the "
                    f"image is {c.width}x{c.height} (EXIF orientation applied); labels kept "
                    "as given")
            try:
                frags = [_fragment(a, c.width, c.height) for a in item.annotations]
            except LabelPilotError as e:
                raise LabelPilotError(f"{item.name}: {e.message}") from None
        fps = seen.setdefault(image_id, set()) if (
            key in present or key in repeated) else None
        empty = 0
        for moved, a, label, *rest in frags:
            if a.shape.type == "box" and not a.shape.area():
                empty += 1  # nothing to see, train on or review: said, not stored
                continue
            if moved:
                report.clipped += 1
            if fps is not None:
                fp = a.fingerprint()
                if fp in fps:
                    report.annotations_already_present += 1
                    continue
                fps.add(fp)
            ann_rows.append((image_id, label_ids[label], *rest, *tail))
        if empty:
            report.warnings.append(
                f"{item.name}: {empty} box(es) with no area (x2 <= x1 or y2 <= y1, once "
                "clipped to the image) skipped")
    report.annotations_added = repo.insert_annotations(conn, ann_rows)
    if report.clipped:
        report.warnings.append(f"{report.clipped} annotation(s) reached outside their image "
                               "and were clipped to its border")


def _import_keys(checked: list[_Checked], report: ImportReport) -> list[tuple[str, str]]:
    """Each item's identity. An item whose name and bytes are those of an earlier item of
    another split (a picture in both train/ and val/ of a YOLO or Roboflow set) is an
    item of its own, named `<split>/<name>`."""
    split_of: dict[tuple[str, str], str | None] = {}
    keys = []
    moved = 0
    for c in checked:
        key = _item_key(c.item.name, c.sha256)
        split = c.item.split
        if key in split_of and split_of[key] != split and split:
            key = _item_key(f"{split}/{key[0]}", c.sha256)
            moved += 1
        split_of.setdefault(key, split)
        keys.append(key)
    if moved:
        report.warnings.append(
            f"{moved} image(s) have the name and bytes of an image of another split: each "
            "is kept as an image of its own split, named <split>/<name>")
    return keys


def _unique_names(conn: Any, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """A free file name per new image: its own, else with its hash's start added."""
    taken = repo.taken_file_names(conn, [name for name, _ in keys])
    out: dict[tuple[str, str], str] = {}
    for key in keys:
        name, sha = key
        if name in taken:
            name = _renamed(name, sha)
        taken.add(name)
        out[key] = name
    return out


def export_dataset(ws: Workspace, dest: Path | str, *, format: str, status: str = "accepted",
                   split: str | None = None, include_images: bool = True,
                   progress: Progress | None = None,
                   options: dict[str, Any] | None = None) -> ExportReport:
    """Write the workspace's images and labels to `dest` in `format`.

    `status="accepted"` exports what people confirmed (accepted and edited labels);
    `"all"` adds the models' proposals. Rejected labels are never exported. The export is
    written beside `dest` and moved into place at the end: no half-written folder.
    `include_images=False` writes the labels alone (recognition crops are still written:
    they are the labels of a recognition set).
    """
    dest = Path(dest)
    if status not in EXPORT_STATUSES:
        raise LabelPilotError(f"status must be one of {', '.join(EXPORT_STATUSES)}, not {status!r}")
    if split is not None and split not in SPLITS:
        raise LabelPilotError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise LabelPilotError(f"{dest} exists and is not empty",
                              hint="export into a new or empty folder")
    fmt = configured(get_format(format), options)
    with gc_paused():
        return _export(ws, dest, fmt, format, status, split, include_images, progress)


def export_items(ws: Workspace, *, status: str, split: str | None,
                 include_images: bool = True) -> tuple[Dataset, int]:
    """The workspace's images and labels to export, as a Dataset (and its label count)."""
    with ws.engine.connect() as conn:
        rows = repo.list_images(conn, split)
        items = {r.id: DatasetItem(name=r.file_name, path=ws.blobs.path(r.sha256, r.suffix),
                                   width=r.width, height=r.height, split=r.split,
                                   review_state=r.review_state,
                                   tags=orjson.loads(r.tags) if r.tags else []) for r in rows}
        n_ann = 0
        for image_id, ann in repo.iter_annotations(conn, EXPORT_STATUSES[status], split):
            items[image_id].annotations.append(ann)
            n_ann += 1
        labels = repo.label_names(conn)
        keypoints = repo.label_keypoints(conn)
    return Dataset(list(items.values()), labels, include_images=include_images,
                   keypoints=keypoints), n_ann


def _export(ws: Workspace, dest: Path, fmt: Any, format: str, status: str, split: str | None,
            include_images: bool, progress: Progress | None) -> ExportReport:
    ds, n_ann = export_items(ws, status=status, split=split, include_images=include_images)
    if progress:
        progress("export", 0, len(ds.items))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    ds.destination = dest
    try:
        fmt.save(ds, tmp)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        progress("export", len(ds.items), len(ds.items))
    left = [f"{n} annotation(s) left out: {reason}" for reason, n in ds.left_out.items()]
    return ExportReport(str(dest), format, len(ds.items), n_ann - sum(ds.left_out.values()),
                        left + ds.warnings)


def workspace_stats(ws: Workspace) -> dict[str, Any]:
    with ws.engine.connect() as conn:
        s = repo.stats(conn)
        labels = repo.label_names(conn)
    return {"name": ws.config.name, "task": ws.config.task, "labels": labels, **s}


def safe_file_name(name: str) -> str:
    """An uploaded file's name reduced to a plain base name (no folders, no controls)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable() and c not in '<>:"|?*').strip(" .")
    return cleaned[:200] or "upload"


def add_image(ws: Workspace, *, data: bytes, name: str, split: str | None = None
              ) -> tuple[Any, bool]:
    """Store one image (an upload) and its row in a transaction of its own; (row, created).
    The same name with the same bytes again, even in uploads racing each other, gives the
    existing image; other names with the same bytes are other images sharing the stored
    file. A failure leaves no row; a blob no row refers to is collected
    (`collect_garbage`)."""
    if split is not None and split not in SPLITS:
        raise LabelPilotError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    probed = probe_image(data, name=safe_file_name(name), max_pixels=ws.config.max_pixels)
    stem = PurePosixPath(safe_file_name(name)).stem or "upload"
    key = _item_key(f"{stem}{probed.suffix}", probed.sha256)

    def stored(conn: Any) -> Any | None:
        image_id = _present(repo.images_by_sha(conn, [probed.sha256]), key)
        return image_rows.image_row(conn, image_id) if image_id is not None else None

    with ws.blobs.writing():
        with ws.engine.connect() as conn:  # a read: no write lock for an image stored already
            row = stored(conn)
        if row is not None:
            return row, False
        ws.blobs.put(probed.sha256, probed.suffix, probed.data)
        # The row: another writer may commit the same image, or take the name, meanwhile.
        for _ in range(5):
            with ws.transaction() as conn:
                # The name first, then the check: an image committed between the two
                # (PostgreSQL reads what is committed at each statement) is seen by the
                # check, rather than taking the name and making this one a renamed copy.
                file_name = _unique_names(conn, [key])[key]
                row = stored(conn)
                if row is not None:
                    return row, False
                image_id = image_rows.try_insert(conn, {
                    "sha256": probed.sha256, "file_name": file_name,
                    "suffix": probed.suffix, "width": probed.width, "height": probed.height,
                    "split": split, "review_state": "new", "created_at": repo.now()})
                if image_id is not None:
                    return image_rows.image_row(conn, image_id), True
    raise LabelPilotError(f"{name}: could not store the image while other uploads were "
                          "taking the same names", hint="upload it again")
