"""A panel's data drawn as an SVG figure with matplotlib (object API, no pyplot: safe in the
server's threads) and seaborn's palette and heat maps. Text stays text in the SVG (the
browser's fonts draw any script); tables are not drawn here (the report and the page lay
them out as HTML)."""

from __future__ import annotations

import io
import itertools
import textwrap
import warnings
from typing import Any

from labelpilot.analytics.panel import Panel

COLORS = {"accepted": "#2e7d32", "edited": "#f9a825", "rejected": "#c62828",
          "pending": "#9e9e9e", "new": "#bdbdbd", "prelabeled": "#90caf9",
          "in_review": "#42a5f5", "submitted": "#7e57c2", "done": "#2e7d32",
          "train": "#1565c0", "val": "#ef6c00", "test": "#6a1b9a", "unassigned": "#9e9e9e"}


def svg(panel: Panel) -> str | None:
    """The panel drawn as an SVG document, or None for tables and missing figures."""
    if panel.why_not is not None or panel.kind == "table":
        return None
    import matplotlib
    import seaborn as sns
    from matplotlib.figure import Figure

    d = panel.data
    fig = Figure(figsize=(7.2, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    palette = sns.color_palette("deep")
    DRAW[panel.kind](ax, d, palette)
    ax.set_title(panel.title, fontsize=11, loc="left")
    ax.set_xlabel(d.get("xlabel", ""))
    ax.set_ylabel(d.get("ylabel", ""))
    ax.grid(axis="y", alpha=0.3)
    if panel.kind in ("bar", "stacked", "hist", "area") and not d.get("fractional"):
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": panel.key,
                                "font.size": 9}), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyphs DejaVu lacks: the browser draws them
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if 0 <= start < end:  # the RDF block names its vocabularies by URL: not needed
        text = text[:start] + text[end + len("</metadata>"):]
    return text


def _color(name: str, i: int, palette: Any) -> Any:
    return COLORS.get(name, palette[i % len(palette)])


def _categories(ax: Any, x: list[str]) -> None:
    ax.set_xticks(range(len(x)))
    short = [textwrap.shorten(str(v), 18, placeholder="…") for v in x]
    ax.set_xticklabels(short, rotation=45 if len(x) > 6 else 0,
                       ha="right" if len(x) > 6 else "center")


def _bars(ax: Any, d: dict[str, Any], palette: Any, stacked: bool) -> None:
    x = d["x"]
    series = d["series"]
    flagged = set(d.get("flagged", []))
    n = max(1, len(series))
    width = 0.8 if stacked else 0.8 / n
    bottom = [0.0] * len(x)
    for i, (name, values) in enumerate(series.items()):
        vals = [0.0 if v is None else float(v) for v in values]
        pos = list(range(len(x))) if stacked else [k - 0.4 + width * (i + 0.5)
                                                   for k in range(len(x))]
        bars = ax.bar(pos, vals, width, bottom=bottom if stacked else None, label=name,
                      color=_color(name, i, palette))
        if not stacked and n == 1:
            for bar, cat in zip(bars, x, strict=True):
                if cat in flagged:
                    bar.set_color("#c62828")
        if stacked:
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    _categories(ax, x)
    for tick, cat in zip(ax.get_xticklabels(), x, strict=True):
        if cat in flagged:
            tick.set_color("#c62828")
    if n > 1:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _hist(ax: Any, d: dict[str, Any], palette: Any) -> None:
    edges = d["edges"]
    widths = [b - a for a, b in itertools.pairwise(edges)]
    ax.bar(edges[:-1], d["counts"], widths, align="edge", color=palette[0], edgecolor="white",
           linewidth=0.5)
    if d.get("log_x"):
        ax.set_xscale("log")
    for x, text in d.get("marks", []):
        ax.axvline(x, color="#555555", linestyle="--", linewidth=0.8)
        ax.annotate(text, (x, 1), xycoords=("data", "axes fraction"), fontsize=8,
                    ha="left", va="top")


def _area(ax: Any, d: dict[str, Any], palette: Any) -> None:
    import pandas as pd

    t = pd.to_datetime(d["t"])
    names = list(d["series"])
    ax.stackplot(t, *[d["series"][k] for k in names], labels=names,
                 colors=[_color(k, i, palette) for i, k in enumerate(names)], alpha=0.9)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.tick_params(axis="x", labelrotation=20)


def _heatmap(ax: Any, d: dict[str, Any], palette: Any) -> None:
    import numpy as np
    import seaborn as sns

    values = np.array([[np.nan if v is None else v for v in row] for row in d["values"]],
                      dtype=float)
    fmt = d.get("fmt", "d")
    pct = fmt.endswith("%")
    sns.heatmap(values, ax=ax, annot=values.size <= 200, fmt=".0%" if pct else ".0f",
                cmap="RdYlGn" if pct else "Blues", vmin=0 if pct else None,
                vmax=1 if pct else None, cbar=True, linewidths=0.5,
                xticklabels=[textwrap.shorten(c, 16, placeholder="…") for c in d["cols"]],
                yticklabels=[textwrap.shorten(r, 28, placeholder="…") for r in d["rows"]],
                annot_kws={"fontsize": 7})
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)


def _reliability(ax: Any, d: dict[str, Any], palette: Any) -> None:
    edges = d["edges"]
    mids = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    xs = [m for m, v in zip(mids, d["accepted"], strict=True) if v is not None]
    ys = [v for v in d["accepted"] if v is not None]
    ax.plot([0, 1], [0, 1], color="#777777", linestyle="--", linewidth=0.8,
            label="perfectly calibrated")
    ax.plot(xs, ys, marker="o", color=palette[0], label="reviewed proposals")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    twin = ax.twinx()
    twin.bar(mids, d["count"], 1 / len(mids), color=palette[0], alpha=0.15)
    twin.set_ylabel("proposals in the bin")
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="upper left")


DRAW = {"bar": lambda ax, d, p: _bars(ax, d, p, stacked=False),
        "stacked": lambda ax, d, p: _bars(ax, d, p, stacked=True),
        "hist": _hist, "area": _area, "heatmap": _heatmap, "reliability": _reliability}
