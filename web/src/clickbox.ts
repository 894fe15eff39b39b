// Click to box: the detector's box under the click (else the box of the segmenter's mask);
// a second click corrects it, Enter keeps it.

import { ClickBoxResult, api, errorText } from "./api";
import { Latest, registerSmartTool } from "./tools";

function boxIoU(a: number[], b: number[]): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

registerSmartTool((ctx) => {
  let answer: ClickBoxResult | null = null;
  const latest = new Latest();
  return {
    kind: "prompt",
    id: "clickbox",
    name: "Click to box",
    key: "k",
    help: "click to box: click an object (the detector's box under it, else the mask's box); " +
      "a second click corrects it; Enter keeps it",
    mode: "click",
    controls: [],
    async ask(clicks) {
      const ticket = latest.next();
      const t0 = performance.now();
      try {
        const r = await api.clickBox(ctx.imageId, clicks);
        if (!latest.current(ticket)) return;
        // the detector's box here is one this image's reviewer rejected: not offered again
        const rejected = ctx.doc.anns.find((a) => a.status === "rejected" && a.shape.type === "box"
          && boxIoU(a.shape.xyxy, r.box) >= 0.9);
        if (rejected && r.method === "detector") {
          answer = null;
          ctx.canvas.setSmartPreview(null);
          ctx.report(`the detector's box here was rejected (${rejected.label}); draw it with B, ` +
            "or click another object");
          return;
        }
        answer = r;
        ctx.canvas.setSmartPreview([{ type: "box", xyxy: r.box }]);
        ctx.report(`${r.source.replace(/^model:/, "")} (${r.method})` +
          `${r.label ? ` ${r.label}` : ""} ${r.score !== null ? r.score.toFixed(2) : ""}, ${Math.round(performance.now() - t0)} ms`);
      } catch (e) {
        if (latest.current(ticket)) ctx.report(errorText(e));
      }
    },
    async keep() {
      const r = answer;
      if (!r) return;
      // the detector's class when the project has it, else the class chosen in the panel
      const label = r.label && ctx.project.labels.includes(r.label) ? r.label : ctx.label();
      await ctx.doc.create({ label, shape: { type: "box", xyxy: r.box }, text: null,
        attributes: ctx.defaults(label), group: null, status: ctx.humanStatus(), source: r.source });
      this.reset();
      ctx.refresh();
    },
    alternative: () => false,
    reset() {
      answer = null;
      latest.cancel();
      ctx.canvas.clearSmart();
    },
  };
});
