// Re-recognize: read the selected text line again with the workspace's OCR model.

import { Annotation, XY, api } from "./api";
import { shapePoints } from "./shapes";
import { registerSmartTool } from "./tools";

const TEXT_SHAPES = ["quad", "box", "polygon"];

function boundingQuad(pts: XY[]): XY[] {
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const [x1, y1, x2, y2] = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
}

/** What the workspace's OCR model reads in the annotation's region. */
export async function readLine(imageId: number, a: Annotation): Promise<{ text: string; score: number }> {
  const pts = shapePoints(a.shape);
  return api.recognize(imageId, pts.length === 4 ? pts : boundingQuad(pts));
}

registerSmartTool((ctx) => ({
  kind: "action",
  id: "recognize",
  name: "Re-recognize text",
  key: "t",
  help: "re-recognize the selected text line",
  unavailable() {
    const a = ctx.selected();
    return a && TEXT_SHAPES.includes(a.shape.type) ? null : "select a text line first";
  },
  async run() {
    const a = ctx.selected()!;
    const r = await readLine(ctx.imageId, a);
    await ctx.doc.update(a.id, { text: r.text, score: r.score });
    return `read "${r.text}" (score ${r.score.toFixed(2)})`;
  },
}));
