"""Reading images safely: type sniffed from content, pixel limit, integrity, EXIF orientation."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from labelpilot.errors import ImageError, ImageTooLargeError, UnsupportedImageError

# Formats a labeling tool can show in a browser or feed to a model, by PIL's name.
SUPPORTED = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
DEFAULT_MAX_PIXELS = 100_000_000
_ORIENTATION = 0x0112

# The pixel limit is ours to enforce (with a message that names it), not PIL's warning.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True, slots=True)
class ProbedImage:
    """An image checked and ready to store.

    `sha256` is the hash of the file as given (the de-duplication key); `data` is what gets
    stored: the same bytes, or a re-encoding with the EXIF orientation applied.
    """

    sha256: str
    width: int
    height: int
    suffix: str
    data: bytes
    reoriented: bool


def probe_image(data: bytes, *, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> ProbedImage:
    """Check an image file's bytes and return what the store needs.

    Raises:
        ImageError: not an image, an unsupported type, over `max_pixels`, corrupt or
            truncated. The message names `name`.
    """
    im, fmt, w, h = _header(data, name, max_pixels,
                            "raise max_pixels in labelpilot.toml if this image is genuine")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            orientation = im.getexif().get(_ORIENTATION, 1) if fmt in ("JPEG", "TIFF", "WEBP", "PNG") else 1
            if fmt == "JPEG" and orientation in (1, None):
                # Decoding at 1/8 scale still walks every entropy-coded block: truncation
                # and corruption surface, at a fraction of a full decode's cost.
                im.draft("RGB", (max(1, w // 8), max(1, h // 8)))
                im.load()
            else:
                im.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UnsupportedImageError(
            f"{name}: not a readable image ({e})", hint="re-export or re-download the file"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    suffix = SUPPORTED[fmt]
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        upright = ImageOps.exif_transpose(im)
        buf = io.BytesIO()
        exif = upright.getexif()
        exif.pop(_ORIENTATION, None)
        save_fmt = fmt if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else "PNG"
        kwargs = {"quality": 95} if save_fmt in ("JPEG", "WEBP") else {}
        upright.save(buf, format=save_fmt, exif=exif, **kwargs)
        return ProbedImage(digest, upright.width, upright.height, SUPPORTED[save_fmt],
                           buf.getvalue(), True)
    return ProbedImage(digest, w, h, suffix, data, False)


def read_size(data: bytes) -> tuple[int, int]:
    """Displayed (width, height) of an image, EXIF orientation applied, from its header."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        if im.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8):
            return h, w
        return w, h


def _header(data: bytes, name: str, max_pixels: int, too_large_hint: str
            ) -> tuple[Image.Image, str, int, int]:
    """The image opened (its header read, no pixels decoded), its format and size, after
    the checks every reader makes: not empty, an image, a supported type, some pixels,
    within the pixel limit."""
    if not data:
        raise UnsupportedImageError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            fmt, (w, h) = im.format or "?", im.size
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{name}: not a readable image (no image type "
                                    "recognized in its first bytes)",
                                    hint="re-export or re-download the file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UnsupportedImageError(f"{name}: not a readable image ({e})",
                                    hint="re-export or re-download the file") from None
    if fmt not in SUPPORTED:
        raise UnsupportedImageError(f"{name}: {fmt} images are not supported",
                                    hint=f"convert it to one of {', '.join(sorted(SUPPORTED))}")
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: the image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}",
            hint=too_large_hint)
    return im, fmt, w, h


def decode_bgr(data: bytes, *, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """An image file's bytes as a BGR uint8 array, upright (EXIF orientation applied), for
    a model. The type and the pixel limit are checked from the header before decoding.

    Raises:
        ImageError: empty, not an image, an unsupported type, over `max_pixels`, or not
            decodable. The message names `name`.
    """
    import cv2
    import numpy as np

    im, fmt, _, _ = _header(data, name, max_pixels, "send a smaller image")
    if fmt in ("JPEG", "PNG") and _complete(data, fmt):
        # OpenCV decodes faster and applies the EXIF orientation itself; it would decode a
        # truncated file in part, so only files whose end marker is there go to it
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is not None and image.size:
            return image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()  # a truncated or corrupt file fails here, not half-decoded
            upright: Image.Image = im
            if im.getexif().get(_ORIENTATION, 1) in (2, 3, 4, 5, 6, 7, 8):
                upright = ImageOps.exif_transpose(im)
            rgb = np.asarray(upright.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UnsupportedImageError(f"{name}: the {fmt} data does not decode ({e})",
                                    hint="the file is corrupt or truncated: send it again"
                                    ) from None
    return np.ascontiguousarray(rgb[..., ::-1])


def _complete(data: bytes, fmt: str) -> bool:
    """Whether a JPEG or PNG file ends with its end marker (EOI; the IEND chunk)."""
    tail = data[-64:]
    if fmt == "JPEG":
        return tail.rstrip(b"\0\r\n ").endswith(b"\xff\xd9")
    return b"IEND" in tail
