"""The report: every panel of a workspace, built from one read of the store, drawn, kept
until the data changes, and written as one self-contained HTML file (figures inline as SVG,
the data as JSON inside it; nothing fetched when it opens)."""

from __future__ import annotations

import html
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from labelpilot.analytics import dedup, frames, health, progress, quality
from labelpilot.analytics.draw import svg
from labelpilot.analytics.panel import SECTIONS, Panel
from labelpilot.errors import LabelPilotError
from labelpilot.store import analytics as rows
from labelpilot.workspace import Workspace


@dataclass
class Report:
    workspace: str
    task: str
    stamp: str
    built_at: datetime
    seconds: float
    since: datetime | None
    panels: list[Panel] = field(default_factory=list)
    hashed: int = 0  # images whose perceptual hash this build computed

    def panel(self, key: str) -> Panel:
        found = next((p for p in self.panels if p.key == key), None)
        if found is None:
            raise LabelPilotError(f"the report has no figure {key!r}",
                                  hint=f"figures: {', '.join(p.key for p in self.panels)}")
        return found

    def to_dict(self, *, with_svg: bool = False) -> dict[str, Any]:
        return {"workspace": self.workspace, "task": self.task, "stamp": self.stamp,
                "built_at": self.built_at.isoformat(), "seconds": round(self.seconds, 3),
                "since": self.since.isoformat() if self.since else None,
                "sections": list(SECTIONS),
                "panels": [{k: v for k, v in p.to_dict().items() if with_svg or k != "svg"}
                           for p in self.panels]}


def _models(ws: Workspace) -> tuple[list[dict[str, Any]], str]:
    """The workspace's trained models, and what of them a report depends on (names,
    versions, the pre-labeler: part of the cache stamp). Manifests only: cheap enough for
    every request's stamp check."""
    from labelpilot.models.registry import list_models

    infos = list_models(ws.models_dir)
    default = ws.prelabeler
    mine = [{"name": i.name, "version": i.version, "task": i.task, "metrics": i.metrics,
             "default": i.name == default} for i in infos if not i.builtin]
    return mine, repr(sorted((i.name, i.version) for i in infos)) + repr(default)


def _dictionary(ws: Workspace) -> set[str] | None:
    """The characters the OCR pre-labeler can read (None in other tasks, or if it has no
    dictionary to read)."""
    if ws.config.task != "ocr":
        return None
    from labelpilot.models.ocr import dictionary
    from labelpilot.models.registry import get_manifest

    try:
        m = get_manifest(ws.prelabeler or "ocr", ws.models_dir)
        return dictionary(m) if m.kind == "ocr" else None
    except LabelPilotError:
        return None


def _hash_missing(ws: Workspace, images: Any, known: dict[str, str]) -> tuple[dict[str, str], int]:
    """Perceptual hashes of the image contents not hashed before (two threads: PIL decodes
    outside the GIL); the count that could not be decoded."""
    todo = images[~images.sha256.isin(known)].drop_duplicates("sha256")
    if todo.empty:
        return {}, 0

    def one(sha: str, suffix: str) -> tuple[str, str | None]:
        path = ws.blobs.path(sha, suffix)
        return sha, dedup.dhash(path) if path.is_file() else None

    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(one, todo.sha256, todo.suffix))
    new = {k: v for k, v in found if v is not None}
    return new, len(found) - len(new)


def build(ws: Workspace, *, since: datetime | None = None, now: datetime | None = None,
          draw: bool = True) -> Report:
    """Every panel of the report (drawn as SVG unless `draw` is false)."""
    start = time.perf_counter()
    models, models_state = _models(ws)
    dictionary = _dictionary(ws)
    with ws.engine.connect() as conn:
        stamp = rows.stamp(conn)
        f = frames.load(conn, since)
        known = rows.hashes(conn)
    new, unreadable = _hash_missing(ws, f.images, known)
    if new:
        with ws.transaction() as conn:
            rows.save_hashes(conn, new)
    duplicates = dedup.panel(f.images, {**known, **new}, unreadable)
    panels = [*health.panels(f, dictionary, duplicates), *progress.panels(f, now),
              *quality.panels(f, models)]
    if draw:
        for p in panels:
            p.svg = svg(p)
    return Report(workspace=ws.config.name, task=ws.config.task,
                  stamp=_full_stamp(stamp, models_state, since), built_at=datetime.now(UTC),
                  seconds=time.perf_counter() - start, since=since, panels=panels,
                  hashed=len(new))


def _full_stamp(store_stamp: str, models_state: str, since: datetime | None) -> str:
    import hashlib

    return hashlib.sha256(f"{store_stamp}|{models_state}|{since}".encode()).hexdigest()[:20]


class ReportCache:
    """The last report of a workspace, rebuilt only when its stamp (the store's data, the
    models, the pre-labeler) changed; one build at a time."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.report: Report | None = None
        self.lock = threading.Lock()

    def current_stamp(self) -> str:
        with self.ws.engine.connect() as conn:
            store_stamp = rows.stamp(conn)
        return _full_stamp(store_stamp, _models(self.ws)[1], None)

    def get(self) -> tuple[Report, bool]:
        """The report, and whether this call built it."""
        with self.lock:
            if self.report is not None and self.report.stamp == self.current_stamp():
                return self.report, False
            self.report = build(self.ws)
            return self.report, True


# --- HTML -----------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
figure{margin:16px 0 28px} figcaption{color:#444;margin-top:4px}
.why{color:#8a5300;background:#fff6e5;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f5f5f5} .meta{color:#666}
"""


def _table(p: Panel) -> str:
    d = p.data
    if not d["rows"]:
        return "<p class='meta'>None found.</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d["columns"])
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>"
                                    for v in row) + "</tr>" for row in d["rows"])
    more = d.get("count")
    tail = (f"<p class='meta'>showing {len(d['rows'])} of {more}</p>"
            if isinstance(more, int) and more > len(d["rows"]) else "")
    return f"<table><tr>{head}</tr>{body}</table>{tail}"


def to_html(report: Report) -> str:
    """One HTML file, self-contained: figures as inline SVG, tables, and the data as JSON."""
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
           f"<title>LabelPilot report: {html.escape(report.workspace)}</title>"
           f"<style>{_STYLE}</style></head><body>",
           f"<h1>LabelPilot report: {html.escape(report.workspace)} ({report.task})</h1>",
           f"<p class='meta'>built {report.built_at:%Y-%m-%d %H:%M} UTC in "
           f"{report.seconds:.1f} s" + (f"; activity since {report.since:%Y-%m-%d}"
                                       if report.since else "") + "</p>"]
    for section in SECTIONS:
        out.append(f"<h2>{html.escape(section)}</h2>")
        for p in (p for p in report.panels if p.section == section):
            out.append(f"<figure id='{p.key}'>")
            if p.why_not is not None:
                out.append(f"<h3>{html.escape(p.title)}</h3>"
                           f"<p class='why'>Not drawn: {html.escape(p.why_not)}.</p>")
            elif p.kind == "table":
                out.append(f"<h3>{html.escape(p.title)}</h3>{_table(p)}")
            else:
                out.append((p.svg or "")[(p.svg or "").find("<svg"):])
            if p.caption:
                out.append(f"<figcaption>{html.escape(p.caption)}</figcaption>")
            out.append("</figure>")
    data = orjson.dumps(report.to_dict()).decode().replace("</", "<\\/")
    out.append(f"<script type='application/json' id='report-data'>{data}</script>")
    out.append("</body></html>")
    return "\n".join(out)


def write(report: Report, out: Path) -> tuple[Path, Path]:
    """The HTML file at `out` and the figures' data beside it (`.json`), each written whole
    (a temporary file renamed) or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    data = out.with_suffix(".json")
    for path, content in ((out, to_html(report).encode()),
                          (data, orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
    return out, data
