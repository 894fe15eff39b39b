from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from labelpilot.errors import ImageError
from labelpilot.imageio import probe_image, read_size
from tests.conftest import write_image


def test_probe_plain_png(tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.png", 40, 30).read_bytes()
    p = probe_image(data, name="a.png")
    assert (p.width, p.height, p.suffix, p.reoriented) == (40, 30, ".png", False)
    assert p.data == data and len(p.sha256) == 64


def test_type_is_sniffed_from_content_not_name(tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.jpg", 40, 30, fmt="PNG").read_bytes()
    assert probe_image(data, name="a.jpg").suffix == ".png"
    with pytest.raises(ImageError, match=r"fake\.jpg: not a readable image"):
        probe_image(b"<html>not an image</html>", name="fake.jpg")
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, format="GIF")
    with pytest.raises(ImageError, match="GIF images are not supported"):
        probe_image(gif.getvalue(), name="x.gif")


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.jpg", 200, 150).read_bytes()
    with pytest.raises(ImageError, match=r"cut\.jpg: not a readable image"):
        probe_image(data[: len(data) // 2], name="cut.jpg")


def test_truncated_png_is_refused(tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.png", 200, 150).read_bytes()
    with pytest.raises(ImageError, match="not a readable image"):
        probe_image(data[: len(data) - 200], name="cut.png")


def test_decompression_bomb_names_the_limit() -> None:
    # A 20000 x 20000 PNG compresses to a few hundred kB; it is refused from its header.
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    with pytest.raises(ImageError, match=r"400,000,000 pixels is over the limit of 100,000,000"):
        probe_image(buf.getvalue(), name="bomb.png")
    with pytest.raises(ImageError, match="over the limit of 1,000"):
        probe_image(buf.getvalue(), name="bomb.png", max_pixels=1000)


def test_exif_orientation_is_applied_once(tmp_path: Path) -> None:
    src = write_image(tmp_path / "r.jpg", 60, 40, exif_orientation=6)  # rotate 90 on display
    data = src.read_bytes()
    assert read_size(data) == (40, 60)
    p = probe_image(data, name="r.jpg")
    assert p.reoriented and (p.width, p.height) == (40, 60)
    stored = Image.open(io.BytesIO(p.data))
    assert stored.size == (40, 60)
    assert stored.getexif().get(0x0112) in (None, 1)
    again = probe_image(p.data, name="stored.jpg")  # stored bytes need no second turn
    assert not again.reoriented and (again.width, again.height) == (40, 60)


def test_empty_file() -> None:
    with pytest.raises(ImageError, match="empty"):
        probe_image(b"", name="e.png")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_decode_bgr_gives_upright_pixels_and_refuses_truncated_files(tmp_path: Path,
                                                                     fmt: str) -> None:
    import numpy as np

    from labelpilot.imageio import decode_bgr

    path = write_image(tmp_path / "a", 64, 48, fmt=fmt)
    data = path.read_bytes()
    got = decode_bgr(data, name="a")
    want = np.asarray(Image.open(path).convert("RGB"))[..., ::-1]
    assert got.shape == (48, 64, 3)
    assert np.abs(got.astype(int) - want).mean() < 1.0  # the same decoder's pixels
    with pytest.raises(ImageError, match="a: "):
        decode_bgr(data[: len(data) * 2 // 3], name="a")
    with pytest.raises(ImageError, match="over the limit"):
        decode_bgr(data, name="a", max_pixels=1000)
    if fmt in ("JPEG", "WEBP"):  # EXIF orientation 6: turned a quarter clockwise
        turned = write_image(tmp_path / "b", 64, 48, fmt=fmt, exif_orientation=6)
        assert decode_bgr(turned.read_bytes(), name="b").shape == (64, 48, 3)
