"""Label files crafted to take gigabytes or minutes are refused quickly, with a message
naming the file, and each is read under a 1.5 GiB address-space limit (what the probe
measured: 4.8 GB for a 194 KB mask, 2.2 GB for a brush RLE, minutes for a YAML file)."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.conftest import write_image

LIMIT = 3 << 29  # 1.5 GiB of address space for the reading process

READ = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from pathlib import Path
from labelpilot.errors import LabelPilotError
from labelpilot.formats import get_format
try:
    get_format(sys.argv[1]).load(Path(sys.argv[2]))
    print(json.dumps({{"error": None}}))
except LabelPilotError as e:
    print(json.dumps({{"error": type(e).__name__, "message": str(e)}}))
"""


def _read_limited(fmt: str, path: Path) -> dict[str, str | None]:
    r = subprocess.run([sys.executable, "-c", READ.format(limit=LIMIT), fmt, str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height, all black: a few hundred kB on disk."""
    z = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    return huge_png(40_000, 40_000)


def test_a_labelme_mask_bigger_than_its_image(tmp_path: Path, bomb_png: bytes) -> None:
    write_image(tmp_path / "a.png", 640, 480)
    assert len(bomb_png) < 400_000
    (tmp_path / "a.json").write_text(json.dumps({
        "imagePath": "a.png", "imageWidth": 640, "imageHeight": 480, "shapes": [{
            "label": "cat", "shape_type": "mask", "points": [[0, 0], [10, 10]],
            "mask": base64.b64encode(bomb_png).decode()}]}))
    got = _read_limited("labelme", tmp_path)
    assert got["error"] == "FormatError"
    assert "a.json" in str(got["message"]) and "40000x40000" in str(got["message"])


def test_a_mask_file_over_the_pixel_limit(tmp_path: Path, bomb_png: bytes) -> None:
    write_image(tmp_path / "images" / "a.png", 64, 48)
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(bomb_png)
    got = _read_limited("masks", tmp_path)
    assert got["error"] == "FormatError" and "over the limit of 100,000,000" in str(got["message"])


def test_a_brush_rle_declaring_two_billion_values(tmp_path: Path) -> None:
    header = format(2**31, "032b") + format(7, "05b") + "0000" * 4 + "1" + "00" + "0" + "0" * 8
    header += "0" * (-len(header) % 8)
    rle_bytes = [int(header[i:i + 8], 2) for i in range(0, len(header), 8)] + [0] * 100
    write_image(tmp_path / "a.png", 640, 480)
    (tmp_path / "tasks.json").write_text(json.dumps([{"data": {"image": "a.png"}, "annotations": [{
        "result": [{"type": "brushlabels", "original_width": 640, "original_height": 480,
                    "value": {"format": "rle", "rle": rle_bytes, "brushlabels": ["cat"]}}]}]}]))
    got = _read_limited("labelstudio", tmp_path)
    assert got["error"] == "FormatError" and "holds 2147483648 values" in str(got["message"])


def test_a_coco_rle_on_a_declared_giant_image(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", 64, 48)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "x.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 200_000, "height": 200_000}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1,
                         "segmentation": {"size": [200_000, 200_000],
                                          "counts": [0, 200_000 * 200_000]}}]}))
    got = _read_limited("coco", tmp_path)
    assert got["error"] == "FormatError"
    assert "x.json, at images[0]" in str(got["message"]) and "200000x200000" in str(got["message"])


def test_a_yaml_alias_bomb_in_yolo_names(tmp_path: Path) -> None:
    laughs = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i, (prev, name) in enumerate(zip("abcdefgh", "bcdefghi", strict=True)):
        laughs.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        assert i < 9
    (tmp_path / "data.yaml").write_text("\n".join(laughs) + "\ntrain: images\nnames: *i\n")
    assert (tmp_path / "data.yaml").stat().st_size < 1000
    (tmp_path / "images").mkdir()
    got = _read_limited("yolo", tmp_path)
    assert got["error"] == "FormatError" and "aliases" in str(got["message"])
