"""The analytics: the report's panels (figures as SVG, their data, captions), built once and
kept until the data changes; and the report as one HTML file to download."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from labelpilot.server.deps import CanViewAnalytics

if TYPE_CHECKING:
    from labelpilot.analytics.report import ReportCache

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


_MAKING = threading.Lock()


def _cache(request: Request) -> ReportCache:
    """The app's report cache, made on first use (pandas and matplotlib load only then)."""
    from labelpilot.analytics.report import ReportCache

    with _MAKING:
        if request.app.state.reports is None:
            request.app.state.reports = ReportCache(request.app.state.workspace)
        return request.app.state.reports  # type: ignore[no-any-return]


@router.get("")
def analytics(request: Request, user: CanViewAnalytics) -> dict[str, Any]:
    """Every panel of the report: `kind` (bar, stacked, hist, area, heatmap, reliability,
    table), `title`, `caption`, `data` (the numbers drawn), `svg` (the figure; null for
    tables and for figures that cannot be drawn, which say why in `why_not`). `cached`
    tells whether the data had changed since the last build."""
    report, built = _cache(request).get()
    return {**report.to_dict(with_svg=True), "cached": not built}


@router.get("/report.html")
def report_html(request: Request, user: CanViewAnalytics) -> Response:
    """The report as one self-contained HTML file (what `labelpilot report` writes)."""
    from labelpilot.analytics.report import to_html

    report, _ = _cache(request).get()
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in report.workspace) or "report"
    return Response(to_html(report), media_type="text/html; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}-report.html"'})
