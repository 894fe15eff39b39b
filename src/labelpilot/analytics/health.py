"""Dataset health: classes per split, objects per image, object sizes and shapes, text,
images without labels, near duplicates and labels that look wrong."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from labelpilot.analytics.frames import NO_AREA, Frames, box_sizes
from labelpilot.analytics.panel import Panel, missing, pct, plural

SECTION = "Dataset health"
SPLITS = ("train", "val", "test", "unassigned")
# a class with fewer labels than this share of the largest class's is flagged
IMBALANCE = 0.1
# COCO's object sizes: small below 32x32 pixels, large above 96x96
SMALL, LARGE = 32.0, 96.0
# a size or aspect further than this many robust z-units from its class's median
OUTLIER_Z = 3.5
# a model proposal this sure of a different class where a person put a label
SURE = 0.7
TABLE_ROWS = 50


def panels(f: Frames, dictionary: set[str] | None, duplicates: Panel) -> list[Panel]:
    out = [per_class(f), objects_per_image(f), sizes(f), aspects(f)]
    if f.labels.text.notna().any() or dictionary is not None:
        out += [text_lengths(f), characters(f, dictionary)]
    return [*out, unlabeled(f), duplicates, outliers(f), disagreements(f)]


def per_class(f: Frames) -> Panel:
    title = "Labels per class and split"
    lab = f.labels.merge(f.images[["id", "split"]].rename(columns={"id": "image_id"}),
                         on="image_id", how="left")
    if lab.empty:
        return missing("labels_per_class", SECTION, title, "stacked", "no labels yet")
    split = lab.split.fillna("unassigned")
    table = pd.crosstab(lab.label, split)
    totals = table.sum(axis=1).sort_values(ascending=False)
    table = table.loc[totals.index]
    series = {s: [int(v) for v in table[s]] for s in SPLITS if s in table.columns}
    top = int(totals.iloc[0])
    flagged = [str(k) for k, v in totals.items() if v < IMBALANCE * top]
    unreviewed = int((lab.status == "predicted").sum())
    caption = (f"{plural(len(lab), 'label')} in {plural(len(totals), 'class', 'classes')}"
               f" ({plural(unreviewed, 'proposal')} not yet reviewed among them); "
               f"largest class {totals.index[0]} with {top:,}. ")
    caption += (f"Imbalanced: {', '.join(flagged[:10])} {'has' if len(flagged) == 1 else 'have'}"
                f" under {IMBALANCE:.0%} of the largest class's labels." if flagged
                else "No class has under 10% of the largest class's labels.")
    return Panel("labels_per_class", SECTION, title, "stacked", caption,
                 {"x": [str(k) for k in totals.index], "series": series,
                  "totals": [int(v) for v in totals], "flagged": flagged,
                  "xlabel": "class", "ylabel": "labels"})


def objects_per_image(f: Frames) -> Panel:
    title = "Objects per image"
    if f.images.empty:
        return missing("objects_per_image", SECTION, title, "hist", "no images yet")
    counts = f.labels.groupby("image_id").size().reindex(f.images.id, fill_value=0)
    top = int(counts.max())
    edges = list(range(0, top + 2)) if top < 60 else \
        [int(x) for x in np.unique(np.linspace(0, top + 1, 41).round())]
    hist, _ = np.histogram(counts.to_numpy(), bins=edges)
    caption = (f"median {float(counts.median()):g} and mean {float(counts.mean()):.1f} labels "
               f"per image; the busiest image has {top:,}; "
               f"{plural(int((counts == 0).sum()), 'image')} without any.")
    return Panel("objects_per_image", SECTION, title, "hist", caption,
                 {"edges": edges, "counts": [int(v) for v in hist],
                  "xlabel": "labels in the image", "ylabel": "images",
                  "median": float(counts.median()), "max": top})


def sizes(f: Frames) -> Panel:
    title = "Object sizes"
    b = box_sizes(f.labels)
    if b.empty:
        return missing("object_sizes", SECTION, title, "hist", "no labels with an area yet")
    side = np.sqrt(b.w * b.h).to_numpy()
    small = int((side < SMALL).sum())
    large = int((side > LARGE).sum())
    edges = [float(x) for x in np.geomspace(1.0, max(2.0, float(side.max()) * 1.001), 31)]
    hist, _ = np.histogram(np.clip(side, 1.0, None), bins=edges)
    caption = (f"{pct(small, len(side))} of {plural(len(side), 'object')} are small "
               f"(under 32x32 px, COCO's definition), {pct(large, len(side))} large "
               f"(over 96x96); many small objects call for a larger input size or tiling. "
               "Sizes of bounding boxes, masks and polygons included.")
    return Panel("object_sizes", SECTION, title, "hist", caption,
                 {"edges": edges, "counts": [int(v) for v in hist], "log_x": True,
                  "xlabel": "object size: square root of box area (px)", "ylabel": "objects",
                  "small": small, "medium": len(side) - small - large, "large": large,
                  "marks": [[SMALL, "32 px"], [LARGE, "96 px"]]})


def aspects(f: Frames) -> Panel:
    title = "Object aspect ratios"
    b = box_sizes(f.labels)
    b = b[(b.w > 0) & (b.h > 0)]
    if b.empty:
        return missing("aspect_ratios", SECTION, title, "hist", "no labels with an area yet")
    r = np.log2((b.w / b.h).to_numpy())
    lo, hi = float(min(-1.0, np.floor(r.min()))), float(max(1.0, np.ceil(r.max())))
    edges = [float(x) for x in np.linspace(lo, hi, 33)]
    hist, _ = np.histogram(r, bins=edges)
    wide = int((r > 2).sum())
    tall = int((r < -2).sum())
    caption = (f"median width/height {float(2 ** np.median(r)):.2f}; "
               f"{pct(wide, len(r))} wider than 4:1, {pct(tall, len(r))} taller than 1:4.")
    return Panel("aspect_ratios", SECTION, title, "hist", caption,
                 {"edges": edges, "counts": [int(v) for v in hist],
                  "xlabel": "log2(width / height): 0 is square, 2 is four times as wide",
                  "ylabel": "objects", "wide": wide, "tall": tall})


def text_lengths(f: Frames) -> Panel:
    title = "Transcription lengths"
    t = f.labels.text.dropna()
    if t.empty:
        return missing("text_lengths", SECTION, title, "hist", "no transcriptions yet")
    n = t.str.len().to_numpy()
    edges = list(range(0, int(n.max()) + 2))
    hist, _ = np.histogram(n, bins=edges)
    caption = (f"{plural(len(n), 'transcription')}, median {float(np.median(n)):g} "
               f"characters, longest {int(n.max())}; {int((n == 0).sum()):,} empty.")
    return Panel("text_lengths", SECTION, title, "hist", caption,
                 {"edges": edges, "counts": [int(v) for v in hist],
                  "xlabel": "characters in the line", "ylabel": "lines"})


def characters(f: Frames, dictionary: set[str] | None) -> Panel:
    title = "Character frequencies"
    counts = Counter("".join(f.labels.text.dropna()))
    counts.pop(" ", None)
    if not counts:
        return missing("characters", SECTION, title, "bar", "no transcriptions yet")
    top = counts.most_common(40)
    unknown = sorted((c for c in counts if dictionary is not None and c not in dictionary),
                     key=lambda c: -counts[c])
    caption = f"{plural(len(counts), 'distinct character')} in the transcriptions. "
    if dictionary is None:
        caption += "No recognizer's dictionary to check them against."
    elif unknown:
        caption += (f"The recognizer's dictionary lacks {plural(len(unknown), 'of them', 'of them')}"
                    f" ({''.join(unknown[:20])}): it can never read them until it is "
                    "fine-tuned with them.")
    else:
        caption += "The recognizer's dictionary has every one."
    return Panel("characters", SECTION, title, "bar", caption,
                 {"x": [c for c, _ in top], "series": {"characters": [n for _, n in top]},
                  "flagged": [c for c, _ in top if c in unknown], "unknown": unknown,
                  "unknown_counts": [counts[c] for c in unknown],
                  "xlabel": "character (the 40 most frequent)", "ylabel": "occurrences"})


def unlabeled(f: Frames) -> Panel:
    title = "Images without labels"
    if f.images.empty:
        return missing("unlabeled_images", SECTION, title, "table", "no images yet")
    have = set(f.labels.image_id)
    im = f.images[~f.images.id.isin(have)]
    done = int((im.review_state == "done").sum())
    caption = (f"{plural(len(im), 'image')} of {len(f.images):,} have no label; "
               f"{done:,} of them are marked done (checked as empty).")
    rows = [[r.file_name, r.review_state, r.split if isinstance(r.split, str) else "unassigned"]
            for r in im.head(TABLE_ROWS).itertuples()]
    return Panel("unlabeled_images", SECTION, title, "table", caption,
                 {"columns": ["image", "review state", "split"], "rows": rows,
                  "image_ids": [int(i) for i in im.id.head(TABLE_ROWS)], "count": len(im),
                  "ids": [int(i) for i in im.id]})


def outliers(f: Frames) -> Panel:
    """Labels whose size or aspect is far from their class's usual (robust z-score on the
    logarithms: 0.6745 (x - median) / MAD), in classes of 10 labels or more."""
    title = "Labels that look wrong: size or shape unusual for the class"
    b = box_sizes(f.labels)
    b = b[(b.w > 0) & (b.h > 0)]
    found = []
    for label, g in b.groupby("label"):
        if len(g) < 10:
            continue
        for what, v in (("size", np.log(np.sqrt(g.w * g.h))), ("aspect", np.log(g.w / g.h))):
            med = float(np.median(v))
            mad = float(np.median(np.abs(v - med)))
            if mad <= 1e-9:
                continue
            z = 0.6745 * (v - med) / mad
            for i in np.flatnonzero(np.abs(z.to_numpy()) > OUTLIER_Z):
                found.append((abs(float(z.iloc[i])), int(g.image_id.iloc[i]),
                              int(g.id.iloc[i]), str(label), what,
                              f"{float(g.w.iloc[i]):.0f}x{float(g.h.iloc[i]):.0f}",
                              round(float(z.iloc[i]), 1)))
    if b.empty:
        return missing("label_outliers", SECTION, title, "table", "no labels with an area yet")
    found.sort(key=lambda r: -r[0])
    names = dict(zip(f.images.id, f.images.file_name, strict=True))
    caption = (f"{plural(len(found), 'label')} more than {OUTLIER_Z} robust z-units from their "
               "class's median size or aspect (classes of 10 labels or more): check them first.")
    return Panel("label_outliers", SECTION, title, "table", caption,
                 {"columns": ["image", "class", "unusual", "box (px)", "z"],
                  "rows": [[names.get(r[1], ""), r[3], r[4], r[5], r[6]]
                           for r in found[:TABLE_ROWS]],
                  "image_ids": [r[1] for r in found[:TABLE_ROWS]],
                  "annotation_ids": [r[2] for r in found], "count": len(found)})


def disagreements(f: Frames) -> Panel:
    """Confirmed labels where a model proposal of another class, at least SURE, overlaps
    them (IoU 0.5 or more) and was not accepted (still proposed, or rejected)."""
    title = "Labels that look wrong: a model confidently disagrees"
    a = f.annotations
    a = a[~a.shape_type.isin(NO_AREA)]
    people = a[a.status.isin(("accepted", "edited"))]
    sure = a[a.source.str.startswith("model:") & a.status.isin(("predicted", "rejected"))
             & (a.score.fillna(0.0) >= SURE)]
    if sure.empty:
        return missing("model_disagreements", SECTION, title, "table",
                       f"no unaccepted model proposal scores {SURE} or more")
    cols = ["x1", "y1", "x2", "y2"]
    pairs = people[["id", "image_id", "label", *cols]].merge(
        sure[["image_id", "label", "score", *cols]], on="image_id", suffixes=("", "_m"))
    pairs = pairs[pairs.label != pairs.label_m]
    iw = (np.minimum(pairs.x2, pairs.x2_m) - np.maximum(pairs.x1, pairs.x1_m)).clip(lower=0)
    ih = (np.minimum(pairs.y2, pairs.y2_m) - np.maximum(pairs.y1, pairs.y1_m)).clip(lower=0)
    inter = iw * ih
    union = ((pairs.x2 - pairs.x1) * (pairs.y2 - pairs.y1)
             + (pairs.x2_m - pairs.x1_m) * (pairs.y2_m - pairs.y1_m) - inter)
    pairs = pairs.assign(iou=(inter / union.where(union > 0)).fillna(0.0))
    hit = pairs[pairs.iou >= 0.5]
    found = [(float(s), int(i), int(a), str(lab), str(lm), round(float(u), 2))
             for s, i, a, lab, lm, u in zip(hit.score, hit.image_id, hit.id, hit.label,
                                            hit.label_m, hit.iou, strict=True)]
    found.sort(key=lambda r: -r[0])
    names = dict(zip(f.images.id, f.images.file_name, strict=True))
    caption = (f"{plural(len(found), 'label')} overlapped (IoU 0.5 or more) by an unaccepted "
               f"proposal of another class scored {SURE} or more.")
    return Panel("model_disagreements", SECTION, title, "table", caption,
                 {"columns": ["image", "label", "model says", "score", "IoU"],
                  "rows": [[names.get(r[1], ""), r[3], r[4], round(r[0], 3), r[5]]
                           for r in found[:TABLE_ROWS]],
                  "image_ids": [r[1] for r in found[:TABLE_ROWS]],
                  "annotation_ids": [r[2] for r in found], "count": len(found)})
