// The labeling canvas's input: the tools (select, pick many, move, reshape, draw boxes,
// polygons, quads, points; brush and eraser strokes; the smart tools' prompts), the
// minimap's clicks, and what one frame shows. What is shown of the shapes is scene.ts's,
// zoom and pan view.ts's, the drawing paint.ts's: plain canvas 2D, shapes as Path2D
// objects in image coordinates under one view transform, so 1,000 polygons redraw in a
// few milliseconds while panning.

import { Annotation, Shape, SmartClick, XY } from "./api";
import { encodeMask, toFull } from "./masks";
import { Minimap, minimapFor, paint } from "./paint";
import { Stroke } from "./stroke";
import { ShapeView } from "./scene";
import { rotatedTowards, rotationHandle, insertVertex, moveVertex, pathOf, removeVertex, shapePoints, translate } from "./shapes";

/** screen pixels between a box's top edge and its rotation handle */
export const ROTATE_OFFSET = 24;

/** The drawing tools, and "prompt": clicks (and, in "click-or-box" mode, a dragged box)
 * go to the active smart tool as its prompt instead of drawing a shape. */
export type Tool = "select" | "box" | "polygon" | "polyline" | "quad" | "point" | "brush" | "eraser" | "prompt";
export type PromptMode = "click" | "click-or-box";

export interface CanvasEvents {
  select(id: number | null): void;
  drawn(shape: Shape): void;
  moved(id: number, shape: Shape): void;
  /** the eraser took every pixel of a mask */
  emptied?(id: number): void;
  /** the smart tool's prompt changed (a click, a box): ask the model for a mask */
  prompt?(clicks: SmartClick[], box: number[] | null): void;
}

export class LabelCanvas extends ShapeView {
  /** the brush's and the eraser's diameter, in image pixels */
  brushSize = 20;
  /** the brush or eraser stroke being painted */
  private stroke: Stroke | null = null;
  private current: number | null = null;

  protected annotationsChanged(ids: Set<number>): void {
    for (const id of [...this.picked]) if (!ids.has(id)) this.picked.delete(id);
    if (this.current !== null && !ids.has(this.current)) this.current = null;
  }
  /** every shape picked (shift-click, lasso, Ctrl+A); the selected one among them */
  readonly picked = new Set<number>();

  /** the shape last picked: its handles show, the side panel edits it. Setting it picks
   * that shape alone. */
  get selected(): number | null {
    return this.current;
  }

  set selected(id: number | null) {
    this.picked.clear();
    if (id !== null) this.picked.add(id);
    this.current = id;
  }
  tool: Tool = "select";
  promptMode: PromptMode = "click";
  private pending: XY[] = [];
  private cursor: XY | null = null;
  private drag: { mode: "pan" | "move" | "box" | "vertex" | "rotate" | "smart" | "minimap" | "lasso"; x: number; y: number; start: XY; id?: number; vertex?: number } | null = null;
  // the smart (click/box -> mask) tool: its prompt and the model's current answer
  smartClicks: SmartClick[] = [];
  smartBox: number[] | null = null;
  private smartPreview: Path2D | null = null;
  private moveOffset: XY = [0, 0];
  private preview: Shape | null = null;
  private minimap: Minimap | null = null;

  constructor(parent: HTMLElement, private events: CanvasEvents) {
    super(parent);
    this.canvas.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    this.canvas.addEventListener("mousedown", (e) => this.onDown(e));
    window.addEventListener("mousemove", (e) => this.onMove(e));
    window.addEventListener("mouseup", (e) => this.onUp(e));
    this.canvas.addEventListener("contextmenu", (e) => {
      if (this.smartTool) e.preventDefault();
    });
    this.canvas.addEventListener("dblclick", (e) => {
      if (this.tool === "polygon" || this.tool === "polyline") return this.finishPolygon();
      const a = this.selectedShape();
      if (a && (a.shape.type === "polygon" || a.shape.type === "polyline") && this.editable(a)) {
        const [sx, sy] = this.local(e);
        this.events.moved(a.id, insertVertex(a.shape, this.clamp(this.toImage(sx, sy))));
      }
    });
  }

  setTool(t: Tool, mode: PromptMode = "click"): void {
    this.tool = t;
    this.promptMode = mode;
    this.pending = [];
    this.clearSmart();
    this.canvas.style.cursor = t === "select" ? "default" : "crosshair";
    this.redraw();
  }

  private local(e: MouseEvent): [number, number] {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  private clamp([x, y]: XY): XY {
    const [w, h] = this.imageSize;
    return [Math.min(w, Math.max(0, x)), Math.min(h, Math.max(0, y))];
  }

  /** The index of the selected shape's vertex under a screen point (6 px), if any. */
  vertexAt(sx: number, sy: number): number | null {
    const a = this.selectedShape();
    if (!a || !["box", "quad", "polygon", "polyline"].includes(a.shape.type) || !this.editable(a)) return null;
    const pts = shapePoints(a.shape);
    for (let i = 0; i < pts.length; i++) {
      const x = pts[i][0] * this.scale + this.tx, y = pts[i][1] * this.scale + this.ty;
      if (Math.hypot(x - sx, y - sy) <= 6) return i;
    }
    return null;
  }

  private onWheel(e: WheelEvent): void {
    e.preventDefault();
    const [sx, sy] = this.local(e);
    this.zoomAt(Math.exp(-e.deltaY * 0.0015), sx, sy);
  }

  private onDown(e: MouseEvent): void {
    this.canvas.focus();
    const [sx, sy] = this.local(e);
    const p = this.clamp(this.toImage(sx, sy));
    const m = this.minimap;
    if (m && e.button === 0 && sx >= m.x && sx <= m.x + m.w && sy >= m.y && sy <= m.y + m.h) {
      this.drag = { mode: "minimap", x: sx, y: sy, start: p };
      this.centerOn((sx - m.x) / m.k, (sy - m.y) / m.k);
      return;
    }
    if (this.smartTool && e.button === 2 && !e.shiftKey) {
      // right click: a negative click (this is not the object)
      this.smartClicks.push({ x: p[0], y: p[1], positive: false });
      this.events.prompt?.(this.smartClicks, this.smartBox);
      this.redraw();
      return;
    }
    if (e.button === 1 || e.button === 2 || (e.shiftKey && this.tool !== "select")) {
      this.drag = { mode: "pan", x: sx, y: sy, start: p };
      return;
    }
    if (this.smartTool) {
      this.drag = { mode: "smart", x: sx, y: sy, start: p };
      this.cursor = p;
      return;
    }
    if (this.tool === "box") {
      this.drag = { mode: "box", x: sx, y: sy, start: p };
      this.cursor = p;
      return;
    }
    if (this.tool === "point") {
      this.events.drawn({ type: "point", xy: p });
      return;
    }
    if (this.tool === "brush" || this.tool === "eraser") {
      this.beginStroke(p);
      return;
    }
    if (this.tool === "polygon" || this.tool === "polyline" || this.tool === "quad") {
      this.pending.push(p);
      if (this.tool === "quad" && this.pending.length === 4) {
        this.events.drawn({ type: "quad", points: this.pending });
        this.pending = [];
      }
      this.redraw();
      return;
    }
    const sel = this.selectedShape();
    const turn = sel && this.editable(sel) ? rotationHandle(sel.shape, ROTATE_OFFSET / this.scale) : null;
    if (sel && turn && Math.hypot(turn.at[0] * this.scale + this.tx - sx, turn.at[1] * this.scale + this.ty - sy) <= 7) {
      // the rotation handle: a box turns about its centre (and becomes a rotated box)
      this.drag = { mode: "rotate", x: sx, y: sy, start: p, id: sel.id };
      this.preview = null;
      return;
    }
    const v = this.vertexAt(sx, sy);
    if (v !== null && sel) {
      if (e.altKey) {
        this.events.moved(sel.id, removeVertex(sel.shape, v));
        return;
      }
      this.drag = { mode: "vertex", x: sx, y: sy, start: p, id: sel.id, vertex: v };
      this.preview = null;
      return;
    }
    const id = this.hit(p[0], p[1]);
    if (e.shiftKey) {
      // shift-click adds a shape to the selection (or takes it out); shift-drag a lasso
      if (id === null) {
        this.drag = { mode: "lasso", x: sx, y: sy, start: p };
        this.cursor = p;
        return;
      }
      if (this.selected !== null) this.picked.add(this.selected);
      if (this.picked.has(id)) this.picked.delete(id);
      else this.picked.add(id);
      this.select(this.picked.has(id) ? id : [...this.picked].pop() ?? null, true);
      return;
    }
    if (id === null || !this.picked.has(id)) this.select(id);
    else this.select(id, true);  // a drag on a picked shape moves every picked one
    this.drag = id === null ? { mode: "pan", x: sx, y: sy, start: p } : { mode: "move", x: sx, y: sy, start: p, id };
    this.moveOffset = [0, 0];
    this.redraw();
  }

  /** The selected annotation, if any. */
  private selectedShape(): Annotation | undefined {
    return this.current === null ? undefined : this.anns.find((a) => a.id === this.current);
  }

  /** Select one shape (`keep`: and keep the others picked), and say so. */
  select(id: number | null, keep = false): void {
    if (!keep) this.picked.clear();
    if (id !== null) this.picked.add(id);
    this.current = id;
    this.events.select(id);
    this.redraw();
  }

  /** Pick every shape in view that may be edited (Ctrl+A). */
  pickAll(): void {
    this.picked.clear();
    for (const a of this.anns) if (this.editable(a)) this.picked.add(a.id);
    this.select([...this.picked].pop() ?? null, true);
  }

  /** The picked shapes, in the annotations' order. */
  pickedAnnotations(): Annotation[] {
    return this.anns.filter((a) => this.picked.has(a.id) || a.id === this.selected);
  }

  private onMove(e: MouseEvent): void {
    const [sx, sy] = this.local(e);
    this.cursor = this.clamp(this.toImage(sx, sy));
    const d = this.drag;
    if (d?.mode === "minimap" && this.minimap) {
      const m = this.minimap;
      this.centerOn((sx - m.x) / m.k, (sy - m.y) / m.k);
      return;
    }
    if (d?.mode === "pan") {
      this.panBy(sx - d.x, sy - d.y);
      d.x = sx;
      d.y = sy;
      return;
    }
    if (this.stroke) {
      this.stroke.to(this.cursor);
      this.redraw();
      return;
    }
    if (d?.mode === "move") {
      this.moveOffset = [this.cursor[0] - d.start[0], this.cursor[1] - d.start[1]];
    }
    if (d?.mode === "rotate") {
      const a = this.anns.find((x) => x.id === d.id);
      if (a) this.preview = rotatedTowards(a.shape, this.cursor);
    }
    if (d?.mode === "vertex" && d.vertex !== undefined) {
      const a = this.anns.find((x) => x.id === d.id);
      if (a) this.preview = moveVertex(a.shape, d.vertex, this.cursor);
    }
    if (d || this.pending.length || this.tool === "brush" || this.tool === "eraser") this.redraw();
  }

  private onUp(_e: MouseEvent): void {
    if (this.stroke) {
      const { full, any } = this.stroke.result();
      const id = this.stroke.id;
      this.stroke = null;
      return this.saveMask(id, full, any);
    }
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    if (d.mode === "smart" && this.cursor) {
      const [x1, y1] = d.start, [x2, y2] = this.cursor;
      if (this.promptMode === "click-or-box" && Math.abs(x2 - x1) * this.scale >= 4 && Math.abs(y2 - y1) * this.scale >= 4) {
        this.smartBox = [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)];
      } else {
        const [w, h] = this.imageSize;
        this.smartClicks.push({ x: Math.min(w - 1, x1), y: Math.min(h - 1, y1), positive: true });
      }
      this.events.prompt?.(this.smartClicks, this.smartBox);
    } else if (d.mode === "box" && this.cursor) {
      const [x1, y1] = d.start, [x2, y2] = this.cursor;
      if (Math.abs(x2 - x1) >= 2 && Math.abs(y2 - y1) >= 2) {
        this.events.drawn({ type: "box", xyxy: [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)] });
      }
    } else if ((d.mode === "vertex" || d.mode === "rotate") && d.id !== undefined) {
      if (this.preview) this.events.moved(d.id, this.preview);
      this.preview = null;
    } else if (d.mode === "move" && d.id !== undefined) {
      const [dx, dy] = this.moveOffset;
      if (Math.hypot(dx, dy) >= 1) {
        for (const a of this.anns) {
          if ((a.id === d.id || this.picked.has(a.id)) && this.editable(a)) this.events.moved(a.id, translate(a.shape, dx, dy));
        }
      }
    } else if (d.mode === "lasso" && this.cursor) {
      const [x1, x2] = [Math.min(d.start[0], this.cursor[0]), Math.max(d.start[0], this.cursor[0])];
      const [y1, y2] = [Math.min(d.start[1], this.cursor[1]), Math.max(d.start[1], this.cursor[1])];
      if (this.selected !== null) this.picked.add(this.selected);
      let last: number | null = this.selected;
      for (const a of this.anns) {
        const [ax1, ay1, ax2, ay2] = this.boundsOf(a);
        if (this.editable(a) && ax1 >= x1 && ay1 >= y1 && ax2 <= x2 && ay2 <= y2) {
          this.picked.add(a.id);
          last = a.id;
        }
      }
      this.select(last, true);
    }
    this.moveOffset = [0, 0];
    this.redraw();
  }

  finishPolygon(): void {
    const min = this.tool === "polyline" ? 2 : 3;
    if ((this.tool === "polygon" || this.tool === "polyline") && this.pending.length >= min) {
      this.events.drawn(this.tool === "polyline" ? { type: "polyline", points: this.pending }
        : { type: "polygon", points: this.pending });
      this.pending = [];
      this.redraw();
    }
  }

  /** A smart tool takes the clicks: click/box -> mask, click -> box. */
  get smartTool(): boolean {
    return this.tool === "prompt";
  }

  /** The model's answer to the smart prompt, drawn filled until accepted or cleared. */
  setSmartPreview(shapes: Shape[] | null): void {
    if (!shapes) this.smartPreview = null;
    else {
      const p = new Path2D();
      for (const s of shapes) p.addPath(pathOf(s));
      this.smartPreview = p;
    }
    this.redraw();
  }

  clearSmart(): void {
    this.smartClicks = [];
    this.smartBox = null;
    this.smartPreview = null;
    this.redraw();
  }

  /** Take back the last smart click (or the box). */
  undoSmart(): boolean {
    if (this.smartClicks.length) this.smartClicks.pop();
    else if (this.smartBox) this.smartBox = null;
    else return false;
    if (!this.smartClicks.length && !this.smartBox) this.smartPreview = null;
    else this.events.prompt?.(this.smartClicks, this.smartBox);
    this.redraw();
    return true;
  }

  cancelDrawing(): void {
    this.pending = [];
    this.drag = null;
    this.redraw();
  }

  protected draw(): void {
    this.minimap = minimapFor(this.canvas, this.img, this.scale, this.tx, this.ty);
    const d = this.drag;
    paint(this.ctx, this.canvas, {
      img: this.img, brightness: this.brightness, contrast: this.contrast,
      scale: this.scale, tx: this.tx, ty: this.ty, anns: this.anns, paths: this.paths,
      visible: (a) => this.isVisible(a), colors: this.colors, skeletons: this.skeletons, selected: this.selected,
      moveOffset: this.moveOffset, rotateOffset: ROTATE_OFFSET, preview: this.preview,
      picked: this.picked,
      masks: this.masks,
      stroke: this.stroke?.layer ?? null,
      brush: (this.tool === "brush" || this.tool === "eraser") && this.cursor
        ? { at: this.cursor, size: this.brushSize, erase: this.tool === "eraser" } : null,
      dragBox: (d?.mode === "box" || d?.mode === "smart" || d?.mode === "lasso") && this.cursor ? [d.start, this.cursor] : null,
      pending: this.pending, cursor: this.cursor,
      smart: this.smartTool ? { clicks: this.smartClicks, box: this.smartBox, preview: this.smartPreview } : null,
      minimap: this.minimap,
    });
  }

  // --- brush and eraser -----------------------------------------------------------

  /** A stroke starts: on the selected mask (the brush adds to it, the eraser takes away),
   * else on a new mask (the brush only). */
  private beginStroke(p: XY): void {
    const sel = this.selectedShape();
    const onMask = sel && sel.shape.type === "mask" && this.editable(sel) ? sel : null;
    if (!onMask && this.tool === "eraser") return;
    const [w, h] = this.imageSize;
    this.stroke = new Stroke(onMask?.id ?? null, onMask ? this.masks.get(onMask.id)?.bits ?? null : null,
      w, h, p, this.tool === "eraser", this.brushSize);
    this.redraw();
  }

  /** A full-image bitmap as the mask `id` (null: a new mask). */
  saveMask(id: number | null, full: Uint8Array, any = full.some((v) => v === 1)): void {
    const [w, h] = this.imageSize;
    const shape: Shape = { type: "mask", rle: encodeMask(full, h, w), size: [h, w] };
    if (id === null) {
      if (any) this.events.drawn(shape);
    } else if (any) {
      this.events.moved(id, shape);
    } else {
      this.events.emptied?.(id);
    }
    this.redraw();
  }

  /** The selected mask as a full-image bitmap, if a mask is selected. */
  selectedMask(): { id: number; full: Uint8Array } | null {
    const sel = this.selectedShape();
    const bits = sel && sel.shape.type === "mask" ? this.masks.get(sel.id)?.bits : null;
    if (!sel || !bits) return null;
    const [w, h] = this.imageSize;
    return { id: sel.id, full: toFull(bits, h, w) };
  }

  // --- hide and lock ------------------------------------------------------------

  /** Hide or show a shape (or a class); a hidden selection is let go. */
  toggle(set: Set<number> | Set<string>, key: number | string): boolean {
    const s = set as Set<number | string>;
    const on = !s.has(key);
    if (on) s.add(key);
    else s.delete(key);
    for (const a of this.anns) if (!this.isVisible(a)) this.picked.delete(a.id);
    const sel = this.selectedShape();
    if (sel && !this.isVisible(sel)) this.select(null, true);
    this.redraw();
    return on;
  }

}
