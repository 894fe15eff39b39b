"""Near-duplicate images: a 64-bit difference hash per image content (the grey image at
9x8, each bit whether a pixel is brighter than its right neighbour), computed once per blob
and kept in the store; images whose hashes differ in at most MAX_BITS bits are grouped."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from labelpilot.analytics.panel import Panel, missing, plural

SECTION = "Dataset health"
MAX_BITS = 4
BANDS = 5  # at most 4 bits differ: at least one of 5 bands of the 64 bits is equal


def dhash(source: Path | bytes) -> str | None:
    """The difference hash of an image file as 16 hex digits; None if it does not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            im.draft("L", (64, 64))  # JPEG: decode at a reduced scale
            grey = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.BILINEAR),
                              dtype=np.int16)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def groups(hashes: dict[str, int]) -> list[tuple[list[str], int]]:
    """Contents (SHA-256) whose hashes are within MAX_BITS of a group's first member, as
    groups with the largest distance inside each. Candidates share one of BANDS bands of
    the 64 bits (two hashes at most 4 bits apart always do); inside a band's bucket, the
    first member not yet grouped leads and takes every member within MAX_BITS of it
    (vectorized); groups found in different bands that share a member are merged."""
    keys = list(hashes)
    values = np.array([hashes[k] for k in keys], dtype=np.uint64)
    parent = np.arange(len(keys))
    far = np.zeros(len(keys), dtype=np.int64)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    def join(leader: int, members: np.ndarray, dist: int) -> None:
        r = root(leader)
        for m in members:
            rm = root(int(m))
            if rm != r:
                parent[rm] = r
                far[r] = max(far[r], far[rm])
        far[r] = max(far[r], dist)

    width = -(-64 // BANDS)
    for band in range(BANDS):
        part = (values >> np.uint64(band * width)) & np.uint64((1 << width) - 1)
        order = np.argsort(part, kind="stable")
        for run in np.split(order, np.flatnonzero(np.diff(part[order])) + 1):
            left = run
            while len(left) > 1:
                d = np.bitwise_count(values[left] ^ values[left[0]])
                near = d <= MAX_BITS
                if near.sum() > 1:
                    join(int(left[0]), left[near][1:], int(d[near].max()))
                left = left[~near]
    out: dict[int, list[str]] = {}
    for i, k in enumerate(keys):
        out.setdefault(root(i), []).append(k)
    return [(v, int(far[r])) for r, v in out.items() if len(v) > 1]


def panel(images: pd.DataFrame, hashes: dict[str, str], unreadable: int) -> Panel:
    """Images that share their bytes, or look the same (a few bits of difference hash)."""
    title = "Near-duplicate images"
    if images.empty:
        return missing("near_duplicates", SECTION, title, "table", "no images yet")
    by_sha = images.groupby("sha256").id.apply(list).to_dict()
    names = dict(zip(images.id, images.file_name, strict=True))
    found = groups({k: int(v, 16) for k, v in hashes.items() if k in by_sha})
    exact = [(ids, 0) for sha, ids in by_sha.items() if len(ids) > 1
             and not any(sha in g for g, _ in found)]
    rows, image_ids, total = [], [], 0
    for ids, bits in [([i for sha in g for i in by_sha[sha]], d) for g, d in found] + exact:
        ids = sorted(ids)
        total += len(ids)
        rows.append([", ".join(names[i] for i in ids[:6]) + (" …" if len(ids) > 6 else ""),
                     len(ids), bits])
        image_ids.append(ids[0])
    order = sorted(range(len(rows)), key=lambda i: (-rows[i][1], rows[i][0]))
    caption = (f"{plural(len(rows), 'group')} of look-alike images ({plural(total, 'image')}): "
               f"the same bytes or at most {MAX_BITS} of 64 hash bits apart. Duplicates across "
               "splits inflate test scores; within one they over-weight a scene.")
    if unreadable:
        caption += f" {plural(unreadable, 'image')} could not be decoded for hashing."
    return Panel("near_duplicates", SECTION, title, "table", caption,
                 {"columns": ["images", "count", "bits apart"],
                  "rows": [rows[i] for i in order[:50]],
                  "image_ids": [image_ids[i] for i in order[:50]],
                  "count": len(rows), "images": total})
