// Click to box: the detector's box under the click (else the box of the segmenter's mask);
// a second click corrects it, Enter keeps it.

import { ApiError, ClickBoxResult, api } from "./api";
import { Latest, registerSmartTool } from "./tools";

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
        answer = r;
        ctx.canvas.setSmartPreview([{ type: "box", xyxy: r.box }]);
        ctx.report(`${r.source.replace(/^model:/, "")} (${r.method})` +
          `${r.label ? ` ${r.label}` : ""} ${r.score !== null ? r.score.toFixed(2) : ""}, ${Math.round(performance.now() - t0)} ms`);
      } catch (e) {
        if (latest.current(ticket)) ctx.report(e instanceof ApiError ? e.detail : String(e));
      }
    },
    async keep() {
      const r = answer;
      if (!r) return;
      // the detector's class when the project has it, else the class chosen in the panel
      const label = r.label && ctx.project.labels.includes(r.label) ? r.label : ctx.label();
      await ctx.doc.create({ label, shape: { type: "box", xyxy: r.box }, text: null,
        attributes: {}, group: null, status: "edited", source: r.source });
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
