// The labeling canvas: an image, its annotations, zoom and pan, drawing and editing.
// Plain canvas 2D: shapes are Path2D objects in image coordinates drawn under one view
// transform, so 1,000 polygons redraw in a few milliseconds while panning.

import { Annotation, Shape, SmartClick, XY } from "./api";

/** The drawing tools, and "prompt": clicks (and, in "click-or-box" mode, a dragged box)
 * go to the active smart tool as its prompt instead of drawing a shape. */
export type Tool = "select" | "box" | "polygon" | "quad" | "prompt";
export type PromptMode = "click" | "click-or-box";

export interface CanvasEvents {
  select(id: number | null): void;
  drawn(shape: Shape): void;
  moved(id: number, shape: Shape): void;
  /** the smart tool's prompt changed (a click, a box): ask the model for a mask */
  prompt?(clicks: SmartClick[], box: number[] | null): void;
}

/** Each class its own colour: the one the project gave it, else one of a spread of hues
 * (the golden angle apart, so neighbours in the list differ). */
export function classColors(labels: string[], given: Record<string, string>): Map<string, string> {
  return new Map(labels.map((l, i) => [l, given[l] ?? `hsl(${Math.round((i * 137.5) % 360)}, 75%, 55%)`]));
}

export function shapePoints(s: Shape): XY[] {
  switch (s.type) {
    case "box": {
      const [x1, y1, x2, y2] = s.xyxy;
      return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
    }
    case "quad":
    case "polygon":
      return s.points;
    case "rotated_box": {
      const [cx, cy, w, h, a] = s.cxcywha;
      const r = (a * Math.PI) / 180, c = Math.cos(r), sn = Math.sin(r);
      return ([[-1, -1], [1, -1], [1, 1], [-1, 1]] as XY[]).map(([dx, dy]) => {
        const x = (dx * w) / 2, y = (dy * h) / 2;
        return [cx + x * c - y * sn, cy + x * sn + y * c] as XY;
      });
    }
    case "point":
      return [s.xy];
    case "mask":
      return [];
  }
}

function translate(s: Shape, dx: number, dy: number): Shape {
  const mv = (p: XY): XY => [p[0] + dx, p[1] + dy];
  switch (s.type) {
    case "box":
      return { type: "box", xyxy: [s.xyxy[0] + dx, s.xyxy[1] + dy, s.xyxy[2] + dx, s.xyxy[3] + dy] };
    case "quad":
      return { type: "quad", points: s.points.map(mv) };
    case "polygon":
      return { type: "polygon", points: s.points.map(mv), holes: s.holes?.map((h) => h.map(mv)) };
    case "rotated_box":
      return { type: "rotated_box", cxcywha: [s.cxcywha[0] + dx, s.cxcywha[1] + dy, ...s.cxcywha.slice(2)] };
    case "point":
      return { type: "point", xy: mv(s.xy) };
    default:
      return s;
  }
}

/** The shape with vertex `i` moved to `p` (a box keeps its opposite corner). */
export function moveVertex(s: Shape, i: number, p: XY): Shape {
  if (s.type === "box") {
    const pts = shapePoints(s);
    const [ox, oy] = pts[(i + 2) % 4];
    return { type: "box", xyxy: [Math.min(ox, p[0]), Math.min(oy, p[1]), Math.max(ox, p[0]), Math.max(oy, p[1])] };
  }
  if (s.type === "quad" || s.type === "polygon") {
    const points = s.points.map((q, k) => (k === i ? p : q)) as XY[];
    return s.type === "quad" ? { type: "quad", points } : { type: "polygon", points, holes: s.holes };
  }
  return s;
}

/** A polygon with a vertex added on the edge nearest `p`, or vertex `i` removed. */
export function insertVertex(s: Shape, p: XY): Shape {
  if (s.type !== "polygon") return s;
  let best = 0, bestD = Infinity;
  s.points.forEach((a, k) => {
    const b = s.points[(k + 1) % s.points.length];
    const d = distToSegment(p, a, b);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  });
  const points = [...s.points.slice(0, best + 1), p, ...s.points.slice(best + 1)] as XY[];
  return { type: "polygon", points, holes: s.holes };
}

export function removeVertex(s: Shape, i: number): Shape {
  if (s.type !== "polygon" || s.points.length <= 3) return s;
  return { type: "polygon", points: s.points.filter((_, k) => k !== i), holes: s.holes };
}

function distToSegment([px, py]: XY, [ax, ay]: XY, [bx, by]: XY): number {
  const dx = bx - ax, dy = by - ay;
  const t = dx || dy ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy))) : 0;
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

function pathOf(s: Shape): Path2D {
  const p = new Path2D();
  const pts = shapePoints(s);
  if (s.type === "point") {
    p.arc(pts[0][0], pts[0][1], 3, 0, Math.PI * 2);
    return p;
  }
  pts.forEach(([x, y], i) => (i ? p.lineTo(x, y) : p.moveTo(x, y)));
  p.closePath();
  if (s.type === "polygon") {
    for (const hole of s.holes ?? []) {
      hole.forEach(([x, y], i) => (i ? p.lineTo(x, y) : p.moveTo(x, y)));
      p.closePath();
    }
  }
  return p;
}

export class LabelCanvas {
  /** class name -> colour (classColors) */
  colors = new Map<string, string>();
  readonly canvas: HTMLCanvasElement;
  private ctx: CanvasRenderingContext2D;
  private img = new Image();
  private paths = new Map<number, { path: Path2D; key: string }>();
  anns: Annotation[] = [];
  selected: number | null = null;
  tool: Tool = "select";
  promptMode: PromptMode = "click";
  scale = 1;
  tx = 0;
  ty = 0;
  private pending: XY[] = [];
  private cursor: XY | null = null;
  private drag: { mode: "pan" | "move" | "box" | "vertex" | "smart"; x: number; y: number; start: XY; id?: number; vertex?: number } | null = null;
  // the smart (click/box -> mask) tool: its prompt and the model's current answer
  smartClicks: SmartClick[] = [];
  smartBox: number[] | null = null;
  private smartPreview: Path2D | null = null;
  private moveOffset: XY = [0, 0];
  private preview: Shape | null = null;
  private frame = 0;
  frames = 0;

  constructor(parent: HTMLElement, private events: CanvasEvents) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "label-canvas";
    this.canvas.tabIndex = 0;
    parent.appendChild(this.canvas);
    this.ctx = this.canvas.getContext("2d")!;
    new ResizeObserver(() => this.resize()).observe(parent);
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
      if (a && a.shape.type === "polygon") {
        const [sx, sy] = this.local(e);
        this.events.moved(a.id, insertVertex(a.shape, this.clamp(this.toImage(sx, sy))));
      }
    });
  }

  async loadImage(url: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.img.onload = () => resolve();
      this.img.onerror = () => reject(new Error("the image did not load"));
      this.img.src = url;
    });
    this.fit();
  }

  get imageSize(): [number, number] {
    return [this.img.naturalWidth, this.img.naturalHeight];
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
    if (this.selected !== null && !next.has(this.selected)) this.selected = null;
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

  /** A new size for the window: a fitted image is fitted again; one zoomed or panned
   * keeps the point that was in the middle in the middle. */
  private resize(): void {
    const r = this.canvas.parentElement!.getBoundingClientRect();
    const [cx, cy] = this.toImage(this.canvas.width / 2, this.canvas.height / 2);
    this.canvas.width = Math.max(1, Math.floor(r.width));
    this.canvas.height = Math.max(1, Math.floor(r.height));
    if (this.fitted) return this.fit();
    this.tx = this.canvas.width / 2 - cx * this.scale;
    this.ty = this.canvas.height / 2 - cy * this.scale;
    this.redraw();
  }

  /** true while the view is as fit() left it */
  fitted = false;

  fit(): void {
    const [w, h] = this.imageSize;
    if (!w || !h) return;
    this.fitted = true;
    this.scale = Math.min(this.canvas.width / w, this.canvas.height / h) * 0.95;
    this.tx = (this.canvas.width - w * this.scale) / 2;
    this.ty = (this.canvas.height - h * this.scale) / 2;
    this.redraw();
  }

  oneToOne(): void {
    const cx = this.canvas.width / 2, cy = this.canvas.height / 2;
    this.zoomAt(1 / this.scale, cx, cy);
  }

  zoomAt(factor: number, sx: number, sy: number): void {
    const [ix, iy] = this.toImage(sx, sy);
    this.scale = Math.min(40, Math.max(0.02, this.scale * factor));
    this.fitted = false;
    this.tx = sx - ix * this.scale;
    this.ty = sy - iy * this.scale;
    this.redraw();
  }

  panBy(dx: number, dy: number): void {
    this.fitted = false;
    this.tx += dx;
    this.ty += dy;
    this.redraw();
  }

  toImage(sx: number, sy: number): XY {
    return [(sx - this.tx) / this.scale, (sy - this.ty) / this.scale];
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
      if (!entry) continue;
      if (this.ctx.isPointInPath(entry.path, ix, iy)) {
        const pts = shapePoints(a.shape);
        const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
        const area = (Math.max(...xs) - Math.min(...xs)) * (Math.max(...ys) - Math.min(...ys));
        if (area < bestArea) {
          best = a.id;
          bestArea = area;
        }
      }
    }
    this.ctx.restore();
    return best;
  }

  /** The index of the selected shape's vertex under a screen point (6 px), if any. */
  vertexAt(sx: number, sy: number): number | null {
    const a = this.anns.find((x) => x.id === this.selected);
    if (!a || !["box", "quad", "polygon"].includes(a.shape.type)) return null;
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
    if (this.smartTool && e.button === 2 && !e.shiftKey) {
      // right click: a negative click (this is not the object)
      this.smartClicks.push({ x: p[0], y: p[1], positive: false });
      this.events.prompt?.(this.smartClicks, this.smartBox);
      this.redraw();
      return;
    }
    if (e.button === 1 || e.button === 2 || e.shiftKey) {
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
    this.selected = id;
    this.events.select(id);
    this.drag = id === null ? { mode: "pan", x: sx, y: sy, start: p } : { mode: "move", x: sx, y: sy, start: p, id };
    this.moveOffset = [0, 0];
    this.redraw();
  }

  private onMove(e: MouseEvent): void {
    const [sx, sy] = this.local(e);
    this.cursor = this.clamp(this.toImage(sx, sy));
    const d = this.drag;
    if (d?.mode === "pan") {
      this.panBy(sx - d.x, sy - d.y);
      d.x = sx;
      d.y = sy;
      return;
    }
    if (d?.mode === "move") {
      this.moveOffset = [this.cursor[0] - d.start[0], this.cursor[1] - d.start[1]];
    }
    if (d?.mode === "vertex" && d.vertex !== undefined) {
      const a = this.anns.find((x) => x.id === d.id);
      if (a) this.preview = moveVertex(a.shape, d.vertex, this.cursor);
    }
    if (d || this.pending.length) this.redraw();
  }

  private onUp(_e: MouseEvent): void {
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
      const a = this.anns.find((x) => x.id === d.id);
      if (a && Math.hypot(dx, dy) >= 1) this.events.moved(a.id, translate(a.shape, dx, dy));
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

  redraw(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  private draw(): void {
    this.frame = 0;
    this.frames++;
    const { ctx, canvas } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#1f2937";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(this.scale, 0, 0, this.scale, this.tx, this.ty);
    if (this.img.complete && this.img.naturalWidth) ctx.drawImage(this.img, 0, 0);
    const px = 1 / this.scale;
    const showText = this.scale > 0.4 && this.anns.length < 2000;
    ctx.font = `${13 * px}px sans-serif`;
    for (const a of this.anns) {
      const entry = this.paths.get(a.id);
      if (!entry) continue;
      const isSel = a.id === this.selected;
      ctx.save();
      if (isSel && this.moveOffset[0] + this.moveOffset[1] !== 0) {
        ctx.translate(this.moveOffset[0], this.moveOffset[1]);
      }
      // the class's colour; the status in the line: proposals dashed, rejected dotted and faint
      ctx.strokeStyle = isSel ? "#ef4444" : this.colors.get(a.label) ?? "#fff";
      ctx.globalAlpha = a.status === "rejected" && !isSel ? 0.45 : 1;
      ctx.lineWidth = (isSel ? 3 : 2) * px;
      ctx.setLineDash(a.status === "predicted" ? [6 * px, 4 * px] : a.status === "rejected" ? [2 * px, 3 * px] : []);
      ctx.stroke(entry.path);
      // the class name on every shape (on crowded images only where there is text or a score)
      if (showText && (a.text || a.score !== null || this.anns.length <= 300)) {
        const [x, y] = shapePoints(a.shape)[0] ?? [0, 0];
        const label = (a.text ?? a.label) + (a.status === "predicted" && a.score !== null ? ` ${a.score.toFixed(2)}` : "");
        ctx.fillStyle = "rgba(0,0,0,0.6)";
        const w = ctx.measureText(label).width;
        ctx.fillRect(x, y - 16 * px, w + 6 * px, 16 * px);
        ctx.fillStyle = "#fff";
        ctx.fillText(label, x + 3 * px, y - 4 * px);
      }
      ctx.restore();
    }
    // vertex handles of the selected shape, and the shape being reshaped
    const sel = this.anns.find((a) => a.id === this.selected);
    if (sel && ["box", "quad", "polygon"].includes(sel.shape.type)) {
      ctx.setLineDash([]);
      ctx.fillStyle = "#ef4444";
      for (const [x, y] of shapePoints(this.preview ?? sel.shape)) ctx.fillRect(x - 4 * px, y - 4 * px, 8 * px, 8 * px);
      if (this.preview) {
        ctx.strokeStyle = "#ef4444";
        ctx.lineWidth = 2 * px;
        ctx.stroke(pathOf(this.preview));
      }
    }
    // the shape being drawn
    ctx.setLineDash([]);
    ctx.strokeStyle = "#ef4444";
    ctx.lineWidth = 2 * px;
    if ((this.drag?.mode === "box" || this.drag?.mode === "smart") && this.cursor) {
      const [x1, y1] = this.drag.start;
      ctx.strokeRect(x1, y1, this.cursor[0] - x1, this.cursor[1] - y1);
    }
    if (this.smartTool) {
      if (this.smartPreview) {
        ctx.fillStyle = "rgba(59,130,246,0.35)";
        ctx.fill(this.smartPreview, "evenodd");
        ctx.strokeStyle = "#3b82f6";
        ctx.stroke(this.smartPreview);
      }
      if (this.smartBox) {
        const [x1, y1, x2, y2] = this.smartBox;
        ctx.strokeStyle = "#f59e0b";
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      }
      for (const c of this.smartClicks) {
        ctx.fillStyle = c.positive ? "#10b981" : "#ef4444";
        ctx.beginPath();
        ctx.arc(c.x, c.y, 5 * px, 0, Math.PI * 2);
        ctx.fill();
      }
    }
    if (this.pending.length) {
      ctx.beginPath();
      this.pending.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (this.cursor) ctx.lineTo(this.cursor[0], this.cursor[1]);
      ctx.stroke();
    }
  }
}
