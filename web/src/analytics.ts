// The Analytics page: the report's figures (SVG drawn by the server from the same data the
// tests check against the store), their captions, and tables whose rows open the image in
// the editor. Figures go in as images (data: URLs), user text through text nodes.

import { api, AnalyticsPanel } from "./api";
import { el } from "./dom";

function figureImage(p: AnalyticsPanel): HTMLElement {
  return el("img", {
    class: "figure", alt: p.title,
    src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(p.svg ?? "")}`,
  });
}

function table(p: AnalyticsPanel): HTMLElement {
  const d = p.data as { columns: string[]; rows: unknown[][]; image_ids?: number[]; count?: number };
  if (!d.rows.length) return el("p", { class: "hint" }, "None found.");
  const rows = d.rows.map((row, i) => {
    const id = d.image_ids?.[i];
    const cells = row.map((v, k) => {
      const text = v === null || v === undefined ? "" : String(v);
      // the first cell names the image: a link into the editor
      return el("td", {}, k === 0 && id !== undefined ? el("a", { href: `#/label/${id}` }, text) : text);
    });
    return el("tr", {}, ...cells);
  });
  const out = el("div", {}, el("table", { class: "stats analytics-table" },
    el("tr", {}, ...d.columns.map((c) => el("th", {}, c))), ...rows));
  if (typeof d.count === "number" && d.count > d.rows.length) {
    out.append(el("p", { class: "hint" }, `showing ${d.rows.length} of ${d.count}`));
  }
  return out;
}

function panel(p: AnalyticsPanel): HTMLElement {
  const fig = el("figure", { class: "panel analytics", "data-key": p.key, "data-kind": p.kind });
  if (p.why_not !== null) {
    fig.append(el("h3", {}, p.title), el("p", { class: "why" }, `Not drawn: ${p.why_not}.`));
  } else if (p.kind === "table") {
    fig.append(el("h3", {}, p.title), table(p));
  } else {
    fig.append(figureImage(p));
  }
  if (p.caption) fig.append(el("figcaption", {}, p.caption));
  return fig;
}

export async function analyticsView(head: HTMLElement): Promise<HTMLElement> {
  const report = await api.analytics();
  const built = new Date(report.built_at);
  const sections = report.sections.map((s) => el("section", {},
    el("h2", {}, s), ...report.panels.filter((p) => p.section === s).map(panel)));
  return el("div", { class: "page" }, head, el("main", { class: "overview analytics-page" },
    el("h2", { id: "analytics-title" }, `Analytics: ${report.workspace}`),
    el("p", { class: "hint", id: "analytics-meta" },
      `${report.cached ? "unchanged since" : "built"} ${built.toLocaleString()} ` +
      `(${report.seconds.toFixed(1)} s). `,
      el("a", { href: "/api/analytics/report.html", download: "", id: "analytics-download" },
        "Download the report (one HTML file)")),
    ...sections));
}
