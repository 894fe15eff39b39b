"""Putting images into the train, val and test splits: a chosen set into one split, or
images shared out by ratio, stratified by class so that each split sees every class.

Stratification gives each image the rarest class among its labels (not rejected); the
groups are dealt out one after the other, each in a seeded random order, always to the
split furthest below its share: the totals match the ratios to one image and so does each
class, so a class with few images still reaches every split it can. Images without
labels form a group of their own. The same seed and images give the same assignment.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from labelpilot.annotations import SPLITS
from labelpilot.errors import LabelPilotError
from labelpilot.store import images as image_rows
from labelpilot.users import UserInfo

if TYPE_CHECKING:
    from sqlalchemy import Connection

NO_LABEL = "(no label)"


def _check_ratios(ratios: dict[str, float]) -> dict[str, float]:
    unknown = set(ratios) - set(SPLITS)
    if unknown:
        raise LabelPilotError(f"unknown split {sorted(unknown)[0]!r}: the splits are "
                              f"{', '.join(SPLITS)}")
    if any(not math.isfinite(v) or v < 0 for v in ratios.values()):
        raise LabelPilotError("split ratios must be numbers of 0 or more")
    total = sum(ratios.values())
    if total <= 0:
        raise LabelPilotError("the split ratios add up to 0", hint="e.g. train 0.8, val 0.1, test 0.1")
    return {k: v / total for k, v in ratios.items() if v > 0}


def assign_splits(conn: Connection, *, user: UserInfo | None, ratios: dict[str, float] | None = None,
                  split: str | None = None, image_ids: list[int] | None = None,
                  only_unassigned: bool = False, stratify: bool = True, seed: int = 0
                  ) -> dict[str, Any]:
    """Assign splits to the images `image_ids` (all when None; only those without a split
    with `only_unassigned`): all to `split`, or shared out by `ratios`. Returns how many
    were assigned, the images per split and, per class, the images per split. `user` None
    is the workspace's operator (the CLI, with the files at hand)."""
    if user is not None:
        user.require("set_split")
    if (split is None) == (ratios is None):
        raise LabelPilotError("give either one split for all the images, or ratios to share "
                              "them out")
    if split is not None and split not in (*SPLITS, "unassigned"):
        raise LabelPilotError(f"split must be one of {', '.join(SPLITS)} or unassigned")
    if image_ids is not None:
        missing = sorted(set(image_ids) - set(
            image_rows.ids_for_split(conn, image_ids, only_unassigned=False)))
        if missing:
            raise LabelPilotError(f"no image {missing[0]}" + (
                f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    ids = image_rows.ids_for_split(conn, image_ids, only_unassigned=only_unassigned)
    classes = image_rows.image_classes(conn, ids)
    chosen: dict[int, str | None] = {}
    if split is not None:
        chosen = dict.fromkeys(ids, None if split == "unassigned" else split)
    else:
        shares = _check_ratios(ratios or {})
        rng = random.Random(seed)
        groups: dict[str, list[int]] = defaultdict(list)
        if stratify:
            frequency = Counter(c for cs in classes.values() for c in cs)
            for i in ids:
                cs = classes.get(i)
                groups[min(cs, key=lambda c: (frequency[c], c)) if cs else NO_LABEL].append(i)
        else:
            groups[""] = list(ids)
        # the groups one after the other (smallest first), each in a seeded random order,
        # dealt out so that after every image each split is as near its share as it can
        # be: the totals come out exact to one image, and so does each group's share
        order: list[int] = []
        for key in sorted(groups, key=lambda g: (len(groups[g]), g)):
            members = groups[key]
            rng.shuffle(members)
            order += members
        dealt = dict.fromkeys(shares, 0)
        for k, i in enumerate(order):
            pick = max(shares, key=lambda s: (shares[s] * (k + 1) - dealt[s], shares[s]))
            dealt[pick] += 1
            chosen[i] = pick
    image_rows.set_splits(conn, chosen)
    by_split = Counter(v or "unassigned" for v in chosen.values())
    by_class: dict[str, Counter[str]] = defaultdict(Counter)
    for i, given in chosen.items():
        for c in classes.get(i) or {NO_LABEL}:
            by_class[c][given or "unassigned"] += 1
    return {"assigned": len(chosen), "by_split": dict(sorted(by_split.items())),
            "by_class": {c: dict(sorted(v.items())) for c, v in sorted(by_class.items())}}
