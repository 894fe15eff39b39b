"""File names as people sort them."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")
_WIDTH = 20
MAX_KEY = 1000


def natural_key(name: str) -> str:
    """A key whose plain (byte) order is the natural order of names: lower case, each run
    of digits as its number padded to 20 places, so `img_2` sorts before `img_10`.
    `img02` and `img2` get one key (their ids break the tie)."""
    def pad(m: re.Match[str]) -> str:
        digits = m.group(0).lstrip("0") or "0"
        return digits.rjust(_WIDTH, "0") if len(digits) <= _WIDTH else digits
    return _DIGITS.sub(pad, name.lower())[:MAX_KEY]
