"""A panel: one figure (or table) of the report, as data first, drawn second."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

SECTIONS = ("Dataset health", "Labeling progress", "Model quality")

# The kinds `draw` knows: bar charts (grouped or stacked series over categories),
# histograms (counts over bin edges), stacked areas over time, heat maps, reliability
# diagrams; and tables (rows, each may link to an image in the editor).
KINDS = ("bar", "stacked", "hist", "area", "heatmap", "reliability", "table")


@dataclass
class Panel:
    """`data` is everything the figure shows, JSON-ready (the same numbers the tests compare
    with the store); `why_not` says why a figure cannot be drawn (no data of its kind),
    and then `data` is empty."""

    key: str
    section: str
    title: str
    kind: str
    caption: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    why_not: str | None = None
    svg: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return finite(asdict(self))


def missing(key: str, section: str, title: str, kind: str, why: str) -> Panel:
    """A panel that cannot be drawn, and the reason in words."""
    return Panel(key=key, section=section, title=title, kind=kind, why_not=why)


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def finite(v: Any) -> Any:
    """`v` with every float that is not a number (pandas' missing values) as None: JSON."""
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [finite(x) for x in v]
    return v
