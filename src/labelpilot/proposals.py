"""Storing a model's proposals with the re-run rules, and the class map.

Review semantics: a re-run never touches what a person accepted or edited, nor images
marked done; it replaces the earlier `predicted` proposals of an image, and proposes
nothing where a person's (or a rejected) annotation already covers the spot. The jobs
that call this store each image (or a few) in one transaction, recorded as finished in
that same transaction (`JobContext.commit_item`, `commit_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from labelpilot.annotations import REVIEW_STATES, Annotation, region_corners
from labelpilot.errors import LabelPilotError
from labelpilot.geometry.iou import polygon_iou
from labelpilot.store import annotations as annotation_rows
from labelpilot.store import images as image_rows
from labelpilot.store import repo

if TYPE_CHECKING:
    from sqlalchemy import Connection

OVERLAP_IOU = 0.5


def store_proposals(conn: Connection, *, image_id: int, proposals: list[Annotation]
                    ) -> dict[str, int]:
    """Replace the image's `predicted` annotations by `proposals`, except where a
    person's or a rejected annotation covers the spot. Done images are left alone."""
    return store_proposals_of(conn, [(image_id, proposals)])[0]


def store_proposals_of(conn: Connection, items: Sequence[tuple[int, list[Annotation]]]
                       ) -> list[dict[str, int]]:
    """`store_proposals` for several images in a few statements (reads, deletes and
    inserts of all of them together): counts per image, in the given order. The new
    annotations get their ids in the given order, as one image at a time would."""
    ids = [image_id for image_id, _ in items]
    imgs = image_rows.image_rows_by_id(conn, ids)
    live = [i for i in ids if i in imgs and imgs[i].review_state != "done"]
    existing = repo.annotations_for_images(conn, live)
    annotation_rows.delete_predicted_of(conn, live)
    out, fresh_of = [], []
    for image_id, proposals in items:
        img = imgs.get(image_id)
        if img is None or img.review_state == "done":
            out.append({"added": 0, "replaced": 0, "covered": 0,
                        "skipped_done": int(img is not None)})
            continue
        before = existing.get(image_id, [])
        kept = [region_corners(a.shape) for a in before if a.status != "predicted"]
        fresh = [a for a in proposals
                 if not any(polygon_iou(region_corners(a.shape), k) >= OVERLAP_IOU
                            for k in kept)]
        fresh_of.append((img, fresh))
        out.append({"added": len(fresh),
                    "replaced": sum(a.status == "predicted" for a in before),
                    "covered": len(proposals) - len(fresh), "skipped_done": 0})
    labels = repo.ensure_labels(conn, [a.label for _, fresh in fresh_of for a in fresh])
    when = repo.db_time(conn, repo.now())
    rows = []
    for img, fresh in fresh_of:
        for a in fresh:
            shape, _ = a.shape.clip(img.width, img.height)
            a.shape = shape
            label, *rest = repo.annotation_fragment(a)
            rows.append((img.id, labels[label], *rest, 1, None, when, None, when))
    repo.insert_annotations(conn, rows)
    image_rows.set_states(conn, [img.id for img, _ in fresh_of if img.review_state == "new"],
                          "prelabeled")
    return out


def _target_states(which: str) -> list[str]:
    if which not in ("new", "all"):
        raise LabelPilotError(f"images must be 'new' or 'all', not {which!r}")
    return ["new"] if which == "new" else [s for s in REVIEW_STATES if s != "done"]


def prelabel_targets(conn: Connection, which: str) -> list[Any]:
    """The image rows a pre-labeling run works on: `new` (untouched) or `all` (not done)."""
    return image_rows.in_states(conn, _target_states(which))


def prelabel_readiness(conn: Connection, which: str) -> tuple[int, str | None]:
    """How many images a pre-labeling run of `which` would work on, and why none (the
    reason shown before a job is queued)."""
    n = image_rows.count_in_states(conn, _target_states(which))
    if n:
        return n, None
    return 0, ("no new image to pre-label: each was pre-labeled or touched by someone"
               if which == "new" else "no image to pre-label: every image is done")


class LabelMap:
    """Model class names -> project labels: `mapping` first (a class mapped to "" is
    dropped), then same-named project labels; the rest dropped, or added as new project
    labels (`unmapped="add"`)."""

    def __init__(self, model_labels: Sequence[str], project_labels: Sequence[str],
                 mapping: dict[str, str] | None = None, unmapped: str | None = None) -> None:
        mapping = dict(mapping or {})
        unknown_model = sorted(set(mapping) - set(model_labels))
        if unknown_model:
            raise LabelPilotError(
                f"--map names {', '.join(repr(x) for x in unknown_model)}, which the model does "
                f"not have", hint=f"the model's classes: {', '.join(model_labels)}")
        unknown_project = sorted(set(mapping.values()) - set(project_labels) - {""})
        if unknown_project:
            raise LabelPilotError(
                f"--map names the project label(s) {', '.join(repr(x) for x in unknown_project)}"
                ", which do not exist", hint="valid labels: " + (", ".join(project_labels)
                                                               or "(none yet)"))
        if unmapped not in (None, "drop", "add"):
            raise LabelPilotError(f"unmapped must be drop or add, not {unmapped!r}")
        # a project with no labels yet takes the model's
        self.unmapped = unmapped or ("add" if not project_labels else "drop")
        self.table = {m: mapping.get(m, m) for m in model_labels
                      if (m in mapping or m in project_labels or self.unmapped == "add")
                      and mapping.get(m, m)}
        self.dropped = 0

    def apply(self, anns: list[Annotation]) -> list[Annotation]:
        out = []
        for a in anns:
            target = self.table.get(a.label)
            if target is None:
                self.dropped += 1
                continue
            a.label = target
            out.append(a)
        return out
