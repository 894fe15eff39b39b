// The labeling canvas: an image, its annotations, zoom and pan (and a minimap), drawing
// and editing, shapes hidden or locked (each, or a whole class), brightness and contrast.
// Plain canvas 2D: shapes are Path2D objects in image coordinates drawn under one view
// transform, so 1,000 polygons redraw in a few milliseconds while panning (paint.ts).

import { Annotation, Shape, SmartClick, XY } from "./api";
import { MaskBits, decodeMask, encodeMask, maskLayer, toFull } from "./masks";
import { Minimap, minimapFor, paint } from "./paint";
import { View } from "./view";
import { bounds, insertVertex, moveVertex, pathOf, removeVertex, shapePoints, translate } from "./shapes";

/** The drawing tools, and "prompt": clicks (and, in "click-or-box" mode, a dragged box)
 * go to the active smart tool as its prompt instead of drawing a shape. */
export type Tool = "select" | "box" | "polygon" | "quad" | "point" | "brush" | "eraser" | "prompt";
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

export class LabelCanvas extends View {
  /** class name -> colour (classColors) */
  colors = new Map<string, string>();
  /** keypoint classes' schemas (their skeletons are drawn) */
  skeletons: Record<string, { keypoints: string[]; skeleton: number[][] }> = {};
  private paths = new Map<number, { path: Path2D; key: string }>();
  /** mask annotations as bitmaps and coloured layers (made when a mask's version or colour changes) */
  private masks = new Map<number, { key: string; bits: MaskBits | null; layer: HTMLCanvasElement | null }>();
  /** the brush's and the eraser's diameter, in image pixels */
  brushSize = 20;
  /** the brush stroke being painted: an image-sized layer, the mask it started from */
  private stroke: { layer: HTMLCanvasElement; id: number | null; last: XY } | null = null;
  anns: Annotation[] = [];
  private current: number | null = null;
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
  private drag: { mode: "pan" | "move" | "box" | "vertex" | "smart" | "minimap" | "lasso"; x: number; y: number; start: XY; id?: number; vertex?: number } | null = null;
  // the smart (click/box -> mask) tool: its prompt and the model's current answer
  smartClicks: SmartClick[] = [];
  smartBox: number[] | null = null;
  private smartPreview: Path2D | null = null;
  private moveOffset: XY = [0, 0];
  private preview: Shape | null = null;
  /** shapes (by id) and classes hidden from view or locked against edits, for this session */
  readonly hidden = new Set<number>();
  readonly locked = new Set<number>();
  readonly hiddenClasses = new Set<string>();
  readonly lockedClasses = new Set<string>();
  /** image adjustments (1 = as it is) */
  brightness = 1;
  contrast = 1;
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
      if (this.tool === "polygon") return this.finishPolygon();
      const a = this.anns.find((x) => x.id === this.selected);
      if (a && a.shape.type === "polygon" && this.editable(a)) {
        const [sx, sy] = this.local(e);
        this.events.moved(a.id, insertVertex(a.shape, this.clamp(this.toImage(sx, sy))));
      }
    });
  }

  setAnnotations(anns: Annotation[]): void {
    this.anns = anns;
    const next = new Map<number, { path: Path2D; key: string }>();
    for (const a of anns) {
      const key = `${a.version}`;
      const old = this.paths.get(a.id);
      next.set(a.id, old && old.key === key ? old : { path: pathOf(a.shape), key });
    }
    this.paths = next;
    const masks = new Map<number, { key: string; bits: MaskBits | null; layer: HTMLCanvasElement | null }>();
    for (const a of anns) {
      if (a.shape.type !== "mask") continue;
      const color = this.colors.get(a.label) ?? "#ffffff";
      const key = `${a.version}:${color}`;
      const old = this.masks.get(a.id);
      if (old && old.key === key) {
        masks.set(a.id, old);
      } else {
        const bits = decodeMask(a.shape.rle, a.shape.size[0], a.shape.size[1]);
        masks.set(a.id, { key, bits, layer: bits ? maskLayer(bits, color) : null });
      }
    }
    this.masks = masks;
    for (const id of [...this.picked]) if (!next.has(id)) this.picked.delete(id);
    if (this.current !== null && !next.has(this.current)) this.current = null;
    this.redraw();
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

  hit(ix: number, iy: number): number | null {
    // the smallest shape under the point wins (a word inside a paragraph box)
    let best: number | null = null;
    let bestArea = Infinity;
    // paths are in image coordinates, and so is the point: test without the view transform
    this.ctx.save();
    this.ctx.setTransform(1, 0, 0, 1, 0, 0);
    for (const a of this.anns) {
      const entry = this.paths.get(a.id);
      if (!entry || !this.isVisible(a) || this.isLocked(a)) continue;
      if (a.shape.type === "mask" ? this.inMask(a.id, ix, iy) : this.ctx.isPointInPath(entry.path, ix, iy)) {
        const [x1, y1, x2, y2] = this.boundsOf(a);
        const area = (x2 - x1) * (y2 - y1);
        if (area < bestArea) {
          best = a.id;
          bestArea = area;
        }
      }
    }
    this.ctx.restore();
    return best;
  }

  private inMask(id: number, ix: number, iy: number): boolean {
    const m = this.masks.get(id)?.bits;
    if (!m) return false;
    const x = Math.floor(ix) - m.x, y = Math.floor(iy) - m.y;
    return x >= 0 && y >= 0 && x < m.w && y < m.h && m.bits[y * m.w + x] === 1;
  }

  /** A shape's bounding box; a mask's from its pixels. */
  boundsOf(a: Annotation): number[] {
    if (a.shape.type !== "mask") return bounds(a.shape);
    const m = this.masks.get(a.id)?.bits;
    return m ? [m.x, m.y, m.x + m.w, m.y + m.h] : [0, 0, 0, 0];
  }

  /** The index of the selected shape's vertex under a screen point (6 px), if any. */
  vertexAt(sx: number, sy: number): number | null {
    const a = this.anns.find((x) => x.id === this.selected);
    if (!a || !["box", "quad", "polygon"].includes(a.shape.type) || !this.editable(a)) return null;
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
    if (this.tool === "polygon" || this.tool === "quad") {
      this.pending.push(p);
      if (this.tool === "quad" && this.pending.length === 4) {
        this.events.drawn({ type: "quad", points: this.pending });
        this.pending = [];
      }
      this.redraw();
      return;
    }
    const v = this.vertexAt(sx, sy);
    if (v !== null && this.selected !== null) {
      const a = this.anns.find((x) => x.id === this.selected)!;
      if (e.altKey) {
        this.events.moved(a.id, removeVertex(a.shape, v));
        return;
      }
      this.drag = { mode: "vertex", x: sx, y: sy, start: p, id: a.id, vertex: v };
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
      this.paintStroke(this.cursor);
      return;
    }
    if (d?.mode === "move") {
      this.moveOffset = [this.cursor[0] - d.start[0], this.cursor[1] - d.start[1]];
    }
    if (d?.mode === "vertex" && d.vertex !== undefined) {
      const a = this.anns.find((x) => x.id === d.id);
      if (a) this.preview = moveVertex(a.shape, d.vertex, this.cursor);
    }
    if (d || this.pending.length || this.tool === "brush" || this.tool === "eraser") this.redraw();
  }

  private onUp(_e: MouseEvent): void {
    if (this.stroke) return this.endStroke();
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
    } else if (d.mode === "vertex" && d.id !== undefined) {
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
    if (this.tool === "polygon" && this.pending.length >= 3) {
      this.events.drawn({ type: "polygon", points: this.pending });
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
      moveOffset: this.moveOffset, preview: this.preview,
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
    const sel = this.anns.find((a) => a.id === this.selected);
    const onMask = sel && sel.shape.type === "mask" && this.editable(sel) ? sel : null;
    if (!onMask && this.tool === "eraser") return;
    const [w, h] = this.imageSize;
    const layer = document.createElement("canvas");
    layer.width = w;
    layer.height = h;
    const bits = onMask ? this.masks.get(onMask.id)?.bits : null;
    if (bits) layer.getContext("2d")!.drawImage(maskLayer(bits, "#3b82f6", 1), bits.x, bits.y);
    this.stroke = { layer, id: onMask?.id ?? null, last: p };
    this.paintStroke(p);
  }

  private paintStroke(p: XY): void {
    const st = this.stroke!;
    const ctx = st.layer.getContext("2d")!;
    ctx.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = "#3b82f6";
    ctx.lineWidth = this.brushSize;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(st.last[0], st.last[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    st.last = p;
    this.redraw();
  }

  /** The stroke ends: its pixels become the mask (saved as one change). */
  private endStroke(): void {
    const st = this.stroke!;
    this.stroke = null;
    const [w, h] = this.imageSize;
    const data = st.layer.getContext("2d")!.getImageData(0, 0, w, h).data;
    const full = new Uint8Array(w * h);
    let any = false;
    for (let i = 0; i < full.length; i++) {
      if (data[i * 4 + 3] >= 128) {
        full[i] = 1;
        any = true;
      }
    }
    this.saveMask(st.id, full, any);
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
    const sel = this.anns.find((a) => a.id === this.selected);
    const bits = sel && sel.shape.type === "mask" ? this.masks.get(sel.id)?.bits : null;
    if (!sel || !bits) return null;
    const [w, h] = this.imageSize;
    return { id: sel.id, full: toFull(bits, h, w) };
  }

  // --- hide, lock, look -----------------------------------------------------------

  isVisible(a: Annotation): boolean {
    return !this.hidden.has(a.id) && !this.hiddenClasses.has(a.label);
  }

  isLocked(a: Annotation): boolean {
    return this.locked.has(a.id) || this.lockedClasses.has(a.label);
  }

  /** may the shape be moved or reshaped here (visible and not locked) */
  editable(a: Annotation): boolean {
    return this.isVisible(a) && !this.isLocked(a);
  }

  /** Hide or show a shape (or a class); a hidden selection is let go. */
  toggle(set: Set<number> | Set<string>, key: number | string): boolean {
    const s = set as Set<number | string>;
    const on = !s.has(key);
    if (on) s.add(key);
    else s.delete(key);
    for (const a of this.anns) if (!this.isVisible(a)) this.picked.delete(a.id);
    const sel = this.anns.find((a) => a.id === this.selected);
    if (sel && !this.isVisible(sel)) this.select(null, true);
    this.redraw();
    return on;
  }

  /** Brightness and contrast of the image as drawn (1 = as it is). */
  adjust(brightness: number, contrast: number): void {
    this.brightness = brightness;
    this.contrast = contrast;
    this.redraw();
  }

  /** Pan so that the shape is in view (zooming out only if it does not fit). */
  reveal(id: number): void {
    const a = this.anns.find((x) => x.id === id);
    if (a) this.revealBox(this.boundsOf(a));
  }

  /** Zoom so that the shape fills most of the view. */
  zoomTo(id: number): void {
    const a = this.anns.find((x) => x.id === id);
    if (a) this.zoomToBox(this.boundsOf(a));
  }

  /** The image under a shape's bounding box, drawn into `out` (the OCR line preview). */
  crop(id: number, out: HTMLCanvasElement, height = 48): boolean {
    const a = this.anns.find((x) => x.id === id);
    if (!a || !this.img.naturalWidth) return false;
    const [x1, y1, x2, y2] = this.boundsOf(a);
    const w = Math.max(1, x2 - x1), h = Math.max(1, y2 - y1);
    const k = Math.min(height / h, 320 / w);
    out.width = Math.max(1, Math.round(w * k));
    out.height = Math.max(1, Math.round(h * k));
    const c = out.getContext("2d")!;
    c.filter = this.brightness !== 1 || this.contrast !== 1 ? `brightness(${this.brightness}) contrast(${this.contrast})` : "none";
    c.drawImage(this.img, x1, y1, w, h, 0, 0, out.width, out.height);
    return true;
  }
}
