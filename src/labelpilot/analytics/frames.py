"""The store as pandas tables, and what the audit log says happened to each annotation.

Definitions every panel shares:
- a **label** is an annotation not rejected (proposals not yet reviewed included: the data
  as an export would write it); a **confirmed** label is accepted or edited;
- a **proposal** is an annotation a model made (`source` `model:<name>@<version>`), or one
  a person deleted (its audit entry keeps the source); its **outcome** is `pending`
  (predicted), `rejected` (rejected or deleted), `edited` (its class, shape, text or
  attributes changed, or status edited) or `accepted` (accepted unchanged);
- the **proposed** class and text are those before the first change in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from labelpilot.store import analytics as rows

if TYPE_CHECKING:
    from sqlalchemy import Connection

NO_AREA = ("point", "polyline")
CONTENT = ("label", "shape", "text", "attributes")
# audit actions that are a person's work on annotations or images
WORK_ACTIONS = ("create", "update", "delete", "accepted", "rejected", "review_state")
OUTCOMES = ("accepted", "edited", "rejected", "pending")


@dataclass
class Frames:
    images: pd.DataFrame
    annotations: pd.DataFrame
    audit: pd.DataFrame
    # per annotation id, from the audit log: content changed, proposed label and text
    changes: pd.DataFrame
    # proposals a person deleted: image_id, annotation_id, label, score, source
    deleted: pd.DataFrame
    since: datetime | None = None

    @cached_property
    def labels(self) -> pd.DataFrame:
        a = self.annotations
        return a[a.status != "rejected"]

    def proposals(self) -> pd.DataFrame:
        """Every proposal, deleted ones included, with its outcome, proposed class and
        text, and model version (`source`)."""
        a = self.annotations[self.annotations.source.str.startswith("model:")]
        p = a.join(self.changes, on="id")
        changed = p.content_changed.eq(True)
        p = p.assign(
            proposed_label=p.proposed_label.where(p.proposed_label.notna(), p.label),
            proposed_text=p.proposed_text.where(p.first_update.eq(True),
                                                p.text),
            outcome=np.select(
                [p.status == "predicted", p.status == "rejected",
                 (p.status == "edited") | changed],
                ["pending", "rejected", "edited"], "accepted"))
        if len(self.deleted):
            d = self.deleted.assign(status="deleted", outcome="rejected",
                                    proposed_label=self.deleted.label,
                                    proposed_text=self.deleted.text)
            p = pd.concat([p, d], ignore_index=True)
        return p


def _json(v: Any) -> dict[str, Any]:
    return orjson.loads(v) if v else {}


def content_changed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether an audit entry's before and after differ in class, shape, text or
    attributes (a status alone is a decision, not an edit)."""
    return any(before.get(k) != after.get(k) for k in CONTENT)


def load(conn: Connection, since: datetime | None = None) -> Frames:
    images = pd.DataFrame(rows.image_table(conn), columns=list(rows.IMAGE_COLUMNS))
    ann = pd.DataFrame(rows.annotation_table(conn), columns=list(rows.ANNOTATION_COLUMNS))
    for col in ("x1", "y1", "x2", "y2", "score"):
        ann[col] = ann[col].astype(float)
    # the whole log (what became of each proposal); the activity panels see it from `since`
    log = pd.DataFrame(rows.audit_table(conn), columns=list(rows.AUDIT_COLUMNS))
    changes, deleted = _changes(log)
    audit = log[log.action.isin((*WORK_ACTIONS, "promote"))].rename(columns={"at": "time"})
    audit["time"] = pd.to_datetime(audit.time, utc=True)
    if since is not None:
        audit = audit[audit.time >= pd.Timestamp(since)]
    images["created_at"] = pd.to_datetime(images.created_at, utc=True)
    return Frames(images=images, annotations=ann, audit=audit, changes=changes,
                  deleted=deleted, since=since)


def _changes(audit: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From the whole audit log: per annotation, whether a person changed its content and
    what it proposed before; and the proposals people deleted."""
    per: dict[int, list[Any]] = {}
    deleted: list[dict[str, Any]] = []
    sub = audit[audit.action.isin(("update", "delete"))]
    for action, aid, image_id, before, after in zip(sub.action, sub.annotation_id,
                                                    sub.image_id, sub.before, sub.after,
                                                    strict=True):
        b = _json(before)
        if action == "delete":
            source = b.get("source") or ""
            if source.startswith("model:") and b.get("status") == "predicted":
                deleted.append({"id": int(aid), "image_id": int(image_id),
                                "label": b.get("label"), "text": b.get("text"),
                                "score": b.get("score"), "source": source})
            continue
        changed = content_changed(b, _json(after))
        row = per.get(int(aid))
        if row is None:
            per[int(aid)] = [changed, b.get("label"), b.get("text"), True]
        elif changed:
            row[0] = True
    changes = pd.DataFrame.from_dict(
        per, orient="index",
        columns=["content_changed", "proposed_label", "proposed_text", "first_update"])
    changes.index.name = "id"
    cols = ["id", "image_id", "label", "text", "score", "source"]
    return changes, pd.DataFrame(deleted, columns=cols)


def box_sizes(labels: pd.DataFrame) -> pd.DataFrame:
    """Shapes with an area: width, height (of the bounding box, in pixels), class."""
    s = labels[~labels.shape_type.isin(NO_AREA)]
    w = (s.x2 - s.x1).clip(lower=0.0)
    h = (s.y2 - s.y1).clip(lower=0.0)
    return pd.DataFrame({"id": s.id, "image_id": s.image_id, "label": s.label, "w": w, "h": h})
