// A trained model's learning curve on the Models page: the training loss and the held-out
// figure (detectors' val mAP50, recognizers' val accuracy) against the step, as SVG.

const SVG = "http://www.w3.org/2000/svg";

export type Point = Record<string, number>;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/** The curve, 320 x 120: loss in grey (scaled to its largest value), the held-out figure
 * in blue on 0..1, with its last value written. */
export function curveSvg(points: Point[]): SVGSVGElement {
  const W = 320, H = 120, pad = 18;
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "curve",
    role: "img", "aria-label": "learning curve" });
  const steps = points.map((p) => p.step ?? 0);
  const maxStep = Math.max(1, ...steps);
  const x = (s: number) => pad + (s / maxStep) * (W - 2 * pad);
  const y = (v: number) => H - pad - v * (H - 2 * pad);
  const line = (vals: [number, number][], cls: string) => svg("polyline", { class: cls, fill: "none",
    points: vals.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(" ") });
  const losses = points.filter((p) => Number.isFinite(p.loss));
  const maxLoss = Math.max(1e-9, ...losses.map((p) => p.loss));
  root.append(svg("rect", { x: pad, y: pad, width: W - 2 * pad, height: H - 2 * pad, class: "frame", fill: "none" }));
  if (losses.length) root.append(line(losses.map((p) => [p.step, p.loss / maxLoss]), "loss"));
  const key = ["val_map50", "val_accuracy"].find((k) => points.some((p) => Number.isFinite(p[k])));
  if (key) {
    const held = points.filter((p) => Number.isFinite(p[key]));
    root.append(line(held.map((p) => [p.step, p[key]]), "held-out"));
    for (const p of held) root.append(svg("circle", { cx: x(p.step).toFixed(1), cy: y(p[key]).toFixed(1), r: 2, class: "held-out" }));
    const last = held[held.length - 1][key];
    const t = svg("text", { x: W - pad, y: 12, "text-anchor": "end", class: "label" });
    t.textContent = `${key.replace("val_", "held-out ")} ${last.toFixed(3)}`;
    root.append(t);
  }
  const t = svg("text", { x: pad, y: 12, class: "label" });
  t.textContent = `loss, ${maxStep} steps`;
  root.append(t);
  return root;
}
