// Smart mask: every click (right-click: not the object) or dragged box asks the chosen
// interactive segmenter again, with the mask so far; Tab shows its alternatives, Enter
// keeps the mask.

import { SegmentResult, Shape, SmartClick, api, errorText } from "./api";
import { el } from "./dom";
import { EditorContext, Latest, registerSmartTool } from "./tools";

/** Every interactive segmenter of the workspace, the default one chosen. */
function modelPicker(onChange: () => void): HTMLSelectElement {
  const select = el("select", { id: "smart-model", title: "smart mask model" });
  api.models().then((ms) => {
    for (const m of ms.filter((x) => x.interactive)) {
      const o = el("option", { value: m.name }, `${m.name} (${m.kind})`);
      if (m.default) o.selected = true;
      select.appendChild(o);
    }
  }).catch(() => undefined);
  select.onchange = onChange;
  return select;
}

/** The model's estimate of the mask's IoU, when it has one. */
function quality(q: number | null | undefined): string {
  return q === null || q === undefined ? "no quality estimate" : `quality ${q.toFixed(2)}`;
}

registerSmartTool((ctx: EditorContext) => {
  let answer: SegmentResult | null = null;
  const latest = new Latest();
  const model = modelPicker(() => {
    // a new model answers the same prompt from scratch
    answer = null;
    latest.cancel();
    const { smartClicks, smartBox } = ctx.canvas;
    if (smartClicks.length || smartBox) void tool.ask(smartClicks, smartBox);
    ctx.canvas.canvas.focus();
  });

  async function ask(clicks: SmartClick[], box: number[] | null): Promise<void> {
    const ticket = latest.next();
    const best = answer?.proposals[0];
    const { width, height } = ctx.image;
    const t0 = performance.now();
    try {
      const r = await api.segment(ctx.imageId, {
        model: model.value || undefined, clicks, box, tolerance: 1,
        previous: best && clicks.length ? { type: "mask", rle: best.rle, size: [height, width] } : null,
      });
      if (!latest.current(ticket)) return; // a newer prompt is on its way
      answer = r;
      const p = r.proposals[0];
      ctx.canvas.setSmartPreview(p ? p.shapes : null);
      ctx.report(`${r.model}: ${quality(p?.quality)}, ` +
        `${Math.round(performance.now() - t0)} ms` + (r.warnings.length ? ` · ${r.warnings.join("; ")}` : ""));
    } catch (e) {
      if (latest.current(ticket)) ctx.report(errorText(e));
    }
  }

  const tool = {
    kind: "prompt" as const,
    id: "smart",
    name: "Smart mask",
    key: "s",
    help: "smart mask: click the object (right-click: not the object), or drag a box; Tab shows " +
      "the model's alternatives, Enter keeps the mask, Backspace takes back a click",
    mode: "click-or-box" as const,
    controls: [model],
    opened() {
      // the segmentation embedding of this image starts now, before the first click
      if (ctx.project.task === "segment") api.prepareSegment(ctx.imageId).catch(() => undefined);
    },
    ask,
    async keep() {
      const p = answer?.proposals[0];
      if (!answer || !p || !p.shapes.length) return;
      // one object: a mask in one piece is its polygon (holes kept); in several, the mask
      const { width, height } = ctx.image;
      const shape: Shape = p.shapes.length === 1 ? p.shapes[0]
        : { type: "mask", rle: p.rle, size: [height, width] };
      await ctx.doc.create({ label: ctx.label(), shape, text: null, attributes: ctx.defaults(ctx.label()), group: null,
        status: ctx.humanStatus(), source: answer.source });
      tool.reset();
      ctx.refresh();
    },
    alternative() {
      // an ambiguous click: the model's other masks, in turn
      if (!answer || answer.proposals.length < 2) return false;
      answer.proposals.push(answer.proposals.shift()!);
      const p = answer.proposals[0];
      ctx.canvas.setSmartPreview(p.shapes);
      ctx.report(`${answer.model}: alternative, ${quality(p.quality)}`);
      return true;
    },
    reset() {
      answer = null;
      latest.cancel();
      ctx.canvas.clearSmart();
    },
  };
  return tool;
});
