// The brush's controls: its size (also [ and ]) and "Fill holes" for the selected mask.

import { el, toast } from "./dom";
import type { Editor } from "./editor";
import { fillHoles } from "./masks";

export function brushControls(ed: Editor): { root: HTMLElement; resize(factor: number): void } {
  const size = el("input", { id: "brush-size", type: "number", min: "1", max: "500", step: "1",
    value: String(ed.canvas.brushSize), title: "brush size in image pixels ([ and ])",
    "aria-label": "brush size" });
  size.addEventListener("keydown", (e) => e.stopPropagation());
  size.onchange = () => {
    const n = Number(size.value);
    if (Number.isFinite(n) && n >= 1) ed.canvas.brushSize = Math.min(500, n);
  };
  const fill = el("button", { id: "fill-holes", title: "fill the holes of the selected mask" }, "Fill holes");
  fill.onclick = () => {
    const m = ed.canvas.selectedMask();
    if (!m) return void toast("Select a mask first.");
    const [w, h] = ed.canvas.imageSize;
    ed.canvas.saveMask(m.id, fillHoles(m.full, h, w), true);
  };
  const root = el("span", { class: "brush-controls", id: "brush-controls" }, "size ", size, fill);
  root.hidden = true;
  return {
    root,
    resize(factor: number) {
      ed.canvas.brushSize = Math.max(1, Math.min(500, Math.round(ed.canvas.brushSize * factor)));
      size.value = String(ed.canvas.brushSize);
      ed.canvas.redraw();
    },
  };
}
