"""Import and export: the services behind `labelpilot import/export/stats` (and the server).

An import checks everything first (label files, every image) and then writes in one
transaction: it either lands whole or leaves the workspace as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from labelpilot.annotations import SPLITS, Annotation
from labelpilot.archives import is_archive, unpack
from labelpilot.errors import ImageError, LabelPilotError, ValidationError
from labelpilot.formats.base import Dataset, DatasetItem, get_format
from labelpilot.imageio import probe_image
from labelpilot.store import repo
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


def _listing(problems: list[str]) -> str:
    head = "\n  ".join(problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    return f"\n  {head}{more}"


def import_dataset(ws: Workspace, source: Path | str, *, format: str, split: str | None = None,
                   strict: bool = False, skip_invalid: bool = False,
                   images_dir: Path | None = None, user: str | None = None,
                   progress: Progress | None = None) -> ImportReport:
    """Import images and labels from `source` (a folder, file or archive) in `format`.

    Args:
        split: put every imported image in this split (else the format's own split, if any).
        strict: refuse label classes the workspace does not have (else they are added).
        skip_invalid: import the rest when some images are unreadable (else refuse all).

    Raises:
        LabelPilotError: with the file, line or field at fault; nothing was written.
    """
    source = Path(source)
    if not source.exists():
        raise LabelPilotError(f"{source} does not exist")
    if split is not None and split not in SPLITS:
        raise LabelPilotError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    fmt = get_format(format)
    with tempfile.TemporaryDirectory(prefix="labelpilot-import-") as tmp:
        if is_archive(source):
            unpack(source, Path(tmp))
            load_from = Path(tmp)
        else:
            load_from = source
        ds = fmt.load(load_from, images_dir=images_dir)
        report = ImportReport(str(source), format, warnings=list(ds.warnings))
        return _import(ws, ds, report, split=split, strict=strict, skip_invalid=skip_invalid,
                       user=user, progress=progress)


def _check_images(ws: Workspace, items: list[DatasetItem], progress: Progress | None
                  ) -> tuple[list[_Checked], list[str]]:
    max_pixels = ws.config.max_pixels

    def check(item: DatasetItem) -> _Checked | str:
        try:
            if item.data is None and (item.path is None or not item.path.is_file()):
                return f"{item.path or item.name}: image file not found"
            probed = probe_image(item.read_bytes(), name=str(item.path or item.name),
                                 max_pixels=max_pixels)
        except ImageError as e:
            return str(e.message)
        except OSError as e:
            return f"{item.path}: cannot read ({e.strerror})"
        new = ws.blobs.put(probed.sha256, probed.suffix, probed.data)
        return _Checked(item, probed.sha256, probed.suffix, probed.width, probed.height, new)

    checked: list[_Checked] = []
    problems: list[str] = []
    workers = min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        for i, r in enumerate(pool.map(check, items), 1):
            if isinstance(r, str):
                problems.append(r)
            else:
                checked.append(r)
            if progress and (i % 200 == 0 or i == len(items)):
                progress("images", i, len(items))
    return checked, problems


def _discard_blobs(ws: Workspace, checked: list[_Checked]) -> None:
    for c in checked:
        if c.new_blob:
            ws.blobs.remove(c.sha256, c.suffix)


def _import(ws: Workspace, ds: Dataset, report: ImportReport, *, split: str | None,
            strict: bool, skip_invalid: bool, user: str | None,
            progress: Progress | None) -> ImportReport:
    engine = ws.engine
    checked, problems = _check_images(ws, ds.items, progress)
    try:
        if problems and not skip_invalid:
            raise LabelPilotError(
                f"{len(problems)} of {len(ds.items)} images cannot be imported; nothing was "
                f"imported:{_listing(problems)}",
                hint="fix or remove these files, or pass --skip-invalid to import the rest")
        report.invalid_images = problems
        used = ds.all_labels()
        with engine.begin() as conn:
            known = repo.label_ids(conn)
            unknown = [n for n in used if n not in known]
            if unknown and strict:
                raise LabelPilotError(
                    f"label classes not in the workspace: {', '.join(unknown)}; nothing was "
                    f"imported", hint="add them (labelpilot init --labels, or import without "
                    "--strict) or fix the label files")
            ids = repo.ensure_labels(conn, used)
            report.labels_added = unknown
            _write(conn, ws, checked, ids, report, split=split, user=user)
    except BaseException:
        _discard_blobs(ws, checked)
        raise
    ws.add_labels(report.labels_added)
    return report


def _write(conn: Any, ws: Workspace, checked: list[_Checked], label_ids: dict[str, int],
           report: ImportReport, *, split: str | None, user: str | None) -> None:
    existing = repo.images_by_sha(conn, [c.sha256 for c in checked])
    # Several items may carry the same image (same bytes): they become one image.
    first: dict[str, _Checked] = {}
    for c in checked:
        if c.sha256 not in existing:
            first.setdefault(c.sha256, c)
    names = _unique_names(conn, list(first.values()))
    now = repo.now()
    rows = [{"sha256": c.sha256, "file_name": names[c.sha256], "suffix": c.suffix,
             "width": c.width, "height": c.height,
             "split": split or (c.item.split if c.item.split in SPLITS else None),
             "review_state": c.item.review_state or "new", "created_at": now}
            for c in first.values()]
    new_ids = repo.insert_images(conn, rows)
    image_ids = {c.sha256: id_ for c, id_ in zip(first.values(), new_ids, strict=True)}
    report.images_added = len(new_ids)
    report.images_already_present = len({c.sha256 for c in checked if c.sha256 in existing})
    image_ids.update({sha: v[0] for sha, v in existing.items()})
    # Only images that were already there, or that come twice in this import, can receive
    # an annotation they already have: compare fingerprints for those alone.
    repeated = {sha for sha, n in Counter(c.sha256 for c in checked).items() if n > 1}
    seen: dict[int, set[tuple[Any, ...]]] = {}
    if existing:
        stored = repo.annotations_for_images(conn, [v[0] for v in existing.values()])
        seen = {img: {a.fingerprint() for a in anns} for img, anns in stored.items()}
    when = repo.db_time(conn, now)
    values = repo.annotation_values
    ann_rows = []
    for c in checked:
        image_id = image_ids[c.sha256]
        fps = seen.setdefault(image_id, set()) if (
            c.sha256 in existing or c.sha256 in repeated) else None
        declared = (c.item.width, c.item.height)
        if None not in declared and declared != (c.width, c.height):
            report.warnings.append(
                f"{c.item.name}: the label file says {declared[0]}x{declared[1]} but the image "
                f"is {c.width}x{c.height} (EXIF orientation applied); labels kept as given")
        for a in c.item.annotations:
            try:
                shape, moved = a.shape.clip(c.width, c.height)
            except ValidationError as e:
                raise LabelPilotError(f"{c.item.name}: {e.message}; nothing was imported") from None
            if moved:
                report.clipped += 1
                a = _with_shape(a, shape)
            if fps is not None:
                fp = a.fingerprint()
                if fp in fps:
                    report.annotations_already_present += 1
                    continue
                fps.add(fp)
            ann_rows.append(values(a, image_id, label_ids[a.label], when, user))
    report.annotations_added = repo.insert_annotations(conn, ann_rows)
    if report.clipped:
        report.warnings.append(f"{report.clipped} annotation(s) reached outside their image "
                               "and were clipped to its border")


def _with_shape(a: Annotation, shape: Any) -> Annotation:
    a.shape = shape
    return a


def _unique_names(conn: Any, items: list[_Checked]) -> dict[str, str]:
    wanted = {c.sha256: PurePosixPath(c.item.name.replace("\\", "/").lstrip("/")) for c in items}
    taken = repo.taken_file_names(conn, [p.as_posix() for p in wanted.values()])
    out: dict[str, str] = {}
    for sha, p in wanted.items():
        name = p.as_posix()
        if name in taken:
            name = p.with_name(f"{p.stem}-{sha[:8]}{p.suffix}").as_posix()
        taken.add(name)
        out[sha] = name
    return out


def export_dataset(ws: Workspace, dest: Path | str, *, format: str, status: str = "accepted",
                   split: str | None = None, include_images: bool = True,
                   progress: Progress | None = None) -> ExportReport:
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
    fmt = get_format(format)
    with ws.engine.connect() as conn:
        rows = repo.list_images(conn, split)
        items = {r.id: DatasetItem(name=r.file_name, path=ws.blobs.path(r.sha256, r.suffix),
                                   width=r.width, height=r.height, split=r.split,
                                   review_state=r.review_state) for r in rows}
        n_ann = 0
        for image_id, ann in repo.iter_annotations(conn, EXPORT_STATUSES[status], split):
            items[image_id].annotations.append(ann)
            n_ann += 1
        labels = repo.label_names(conn)
    ds = Dataset(list(items.values()), labels, include_images=include_images)
    if progress:
        progress("export", 0, len(ds.items))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
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
    return ExportReport(str(dest), format, len(ds.items), n_ann, ds.warnings)


def workspace_stats(ws: Workspace) -> dict[str, Any]:
    with ws.engine.connect() as conn:
        s = repo.stats(conn)
        labels = repo.label_names(conn)
    return {"name": ws.config.name, "task": ws.config.task, "labels": labels, **s}
