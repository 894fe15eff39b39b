"""Binary-mask run-length codecs.

- COCO RLE: runs over the column-major (Fortran-order) mask, starting with a run of 0s;
  the compressed string form stores each run (delta-coded against the run two before)
  in 5-bit groups with a continuation bit, offset by ASCII 48.
- CVAT RLE: runs over a row-major crop of the mask, starting with 0s.
- Label Studio brush RLE: the `rle-pack` bit stream over the row-major RGBA bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labelpilot.errors import ValidationError


def runs(flat: np.ndarray) -> list[int]:
    """Run lengths of a flat 0/1 array, starting with a (possibly empty) run of 0s."""
    flat = flat.astype(bool, copy=False).ravel()
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return counts


def check_counts(counts: Sequence[Any], size: int) -> list[int]:
    """Run lengths as ints, checked without decoding: whole numbers, none negative, adding
    up to `size` pixels (a mask whose runs do not cover it exactly is refused)."""
    out = []
    for i, c in enumerate(counts):
        if (isinstance(c, bool) or not isinstance(c, int | float | np.integer)
                or not float(c).is_integer() or c < 0):
            raise ValidationError(f"RLE run {i} is {c!r}: runs must be whole numbers, none "
                                  "negative")
        out.append(int(c))
    total = sum(out)
    if total != size:
        raise ValidationError(f"RLE runs add up to {total} pixels but the mask has {size}")
    return out


def unruns(counts: Sequence[int], size: int) -> np.ndarray:
    """Inverse of `runs`: a flat uint8 array of `size` values."""
    counts = check_counts(counts, size)
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 1
    return np.repeat(values, np.asarray(counts, dtype=np.int64))


def compress_counts(counts: Sequence[int]) -> str:
    out: list[str] = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def decompress_counts(s: str) -> list[int]:
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValidationError("COCO RLE string ends in the middle of a run")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValidationError(f"COCO RLE string has an invalid character {s[p]!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            raise ValidationError("COCO RLE string decodes to a negative run length")
        counts.append(x)
    return counts


def encode(mask: np.ndarray) -> str:
    """Encode an HxW mask (any dtype, nonzero = inside) as a COCO compressed RLE string."""
    if mask.ndim != 2:
        raise ValidationError(f"mask must be a 2D array, but got shape {mask.shape}")
    return compress_counts(runs(np.asarray(mask).ravel(order="F")))


def decode(rle: str | Sequence[int], height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (compressed string or list of runs) to an HxW uint8 0/1 array."""
    counts = decompress_counts(rle) if isinstance(rle, str) else list(rle)
    return unruns(counts, height * width).reshape((height, width), order="F")


def area(rle: str) -> int:
    return int(sum(decompress_counts(rle)[1::2]))


def bbox(rle: str, height: int, width: int) -> tuple[float, float, float, float]:
    """xyxy of the mask's pixels (x2, y2 exclusive, as pixel edges); zeros if empty."""
    counts = decompress_counts(rle)
    pos = np.cumsum([0, *counts])
    starts, ends = pos[1:-1:2], pos[2::2]
    if len(starts) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    # Column-major: index = x * height + y; runs may wrap across columns.
    x1 = int(starts.min()) // height
    x2 = (int(ends.max()) - 1) // height + 1
    ys_lo, ys_hi = height, 0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s >= height or s // height != (e - 1) // height:
            ys_lo, ys_hi = 0, height
            break
        ys_lo = min(ys_lo, s % height)
        ys_hi = max(ys_hi, (e - 1) % height + 1)
    return (float(x1), float(ys_lo), float(x2), float(ys_hi))


def from_polygons(polygons: Sequence[Sequence[tuple[float, float]]], height: int, width: int,
                  holes: Sequence[Sequence[tuple[float, float]]] = ()) -> np.ndarray:
    """Rasterise polygons (filled) minus holes into an HxW uint8 mask."""
    import cv2

    mask = np.zeros((height, width), dtype=np.uint8)
    for poly in polygons:
        cv2.fillPoly(mask, [np.round(np.asarray(poly, dtype=np.float64)).astype(np.int32)], 1)
    for hole in holes:
        cv2.fillPoly(mask, [np.round(np.asarray(hole, dtype=np.float64)).astype(np.int32)], 0)
    return mask


# Masks decoded from label files are never larger than this (the default image pixel limit).
MAX_MASK_PIXELS = 100_000_000


# --- Label Studio brush RLE (rle-pack bit stream) -----------------------------------


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.pos = 0

    def read(self, n: int) -> int:
        if self.pos + n > self.bits.size:
            raise ValidationError("Label Studio RLE ends early: the brush data is truncated")
        v = 0
        for b in self.bits[self.pos:self.pos + n].tolist():
            v = (v << 1) | b
        self.pos += n
        return v


def ls_decode(rle: Sequence[int], expected: int | None = None) -> np.ndarray:
    """Decode Label Studio's `rle` list (bytes) into the flat array it packs; with
    `expected`, a stream declaring another length is refused before anything is made."""
    try:
        data = bytes(int(b) for b in rle)
    except (TypeError, ValueError):
        raise ValidationError("Label Studio RLE must be a list of byte values 0-255") from None
    r = _BitReader(data)
    num = r.read(32)
    if expected is not None and num != expected:
        raise ValidationError(f"Label Studio brush RLE holds {num} values but its image needs "
                              f"{expected}")
    word = r.read(5) + 1
    sizes = [r.read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8 if word <= 8 else np.uint32)
    i = 0
    while i < num:
        repeat = r.read(1)
        j = min(num, i + 1 + r.read(sizes[r.read(2)]))
        if repeat:
            out[i:j] = r.read(word)
            i = j
        else:
            while i < j:
                out[i] = r.read(word)
                i += 1
    return out


# Run-length field widths this encoder uses: 1, 4, 8 and 16 bits.
_LS_SIZES = (1, 4, 8, 16)


def ls_encode(flat: np.ndarray) -> list[int]:
    """Encode a flat uint8 array as Label Studio's `rle` list (repeat runs only)."""
    flat = np.asarray(flat, dtype=np.uint8).ravel()
    bits: list[str] = [format(flat.size, "032b"), format(7, "05b")]
    bits += [format(s - 1, "04b") for s in _LS_SIZES]
    if flat.size:
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        starts = np.concatenate(([0], change)).tolist()
        ends = [*change.tolist(), flat.size]
        for s, e in zip(starts, ends, strict=True):
            value = format(int(flat[s]), "08b")
            n = e - s
            while n > 0:
                chunk = min(n, 1 << 16)
                k = next(i for i, sz in enumerate(_LS_SIZES) if chunk - 1 < (1 << sz))
                bits.append("1" + format(k, "02b") + format(chunk - 1, f"0{_LS_SIZES[k]}b") + value)
                n -= chunk
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return np.packbits(np.frombuffer(stream.encode(), dtype=np.uint8) - 48).tolist()


def ls_mask_decode(rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """Label Studio brush RLE to an HxW 0/1 mask (alpha channel of the RGBA image)."""
    if height * width > MAX_MASK_PIXELS:
        raise ValidationError(f"a {width}x{height} brush mask is over the limit of "
                              f"{MAX_MASK_PIXELS:,} pixels")
    flat = ls_decode(rle, height * width * 4)
    if flat.size != height * width * 4:
        raise ValidationError(
            f"Label Studio brush RLE holds {flat.size} values but a {width}x{height} RGBA "
            f"image needs {height * width * 4}"
        )
    return (flat.reshape(height, width, 4)[:, :, 3] > 0).astype(np.uint8)


def ls_mask_encode(mask: np.ndarray) -> list[int]:
    return ls_encode(np.repeat((np.asarray(mask) > 0).astype(np.uint8).ravel() * 255, 4))
