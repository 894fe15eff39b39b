// Painting the labeling canvas: the image (with brightness and contrast), every visible
// shape in its class's colour with its name, the selection's handles, what is being
// drawn, the smart tool's prompt and answer, and a minimap when the image overflows.

import { Annotation, Shape, SmartClick, XY } from "./api";
import { pathOf, rotationHandle, shapePoints } from "./shapes";

/** What one frame shows: the canvas's state, read-only. */
export interface Scene {
  img: HTMLImageElement;
  brightness: number;
  contrast: number;
  scale: number;
  tx: number;
  ty: number;
  anns: Annotation[];
  paths: Map<number, { path: Path2D }>;
  visible(a: Annotation): boolean;
  colors: Map<string, string>;
  /** keypoint classes' schemas: their points (grouped by instance) joined by the skeleton */
  skeletons: Record<string, { keypoints: string[]; skeleton: number[][] }>;
  selected: number | null;
  /** every picked shape (drawn as selected, moved together) */
  picked: Set<number>;
  /** mask annotations' coloured layers, placed at their bounding box */
  masks: { get(id: number): { bits: { x: number; y: number; w: number; h: number } | null; layer: HTMLCanvasElement | null } | undefined };
  /** the brush stroke being painted (image-sized), and the brush under the cursor */
  stroke: HTMLCanvasElement | null;
  brush: { at: XY; size: number; erase: boolean } | null;
  moveOffset: XY;
  /** screen pixels between a box's top edge and its rotation handle */
  rotateOffset: number;
  preview: Shape | null;
  /** a box being dragged (drawing, or the smart tool's box prompt) */
  dragBox: [XY, XY] | null;
  pending: XY[];
  cursor: XY | null;
  smart: { clicks: SmartClick[]; box: number[] | null; preview: Path2D | null } | null;
  minimap: Minimap | null;
}

/** The minimap's place on the canvas (screen pixels) and its scale to the image. */
export interface Minimap { x: number; y: number; w: number; h: number; k: number }

const MINIMAP_SIDE = 160;

/** Where the minimap goes, when the image does not fit the view; null when it does. */
export function minimapFor(canvas: HTMLCanvasElement, img: HTMLImageElement, scale: number,
                           tx: number, ty: number): Minimap | null {
  const w = img.naturalWidth, h = img.naturalHeight;
  if (!w || !h) return null;
  const inside = tx >= -1 && ty >= -1 && tx + w * scale <= canvas.width + 1 && ty + h * scale <= canvas.height + 1;
  if (inside) return null;
  const k = MINIMAP_SIDE / Math.max(w, h);
  const mw = w * k, mh = h * k;
  return { x: canvas.width - mw - 10, y: canvas.height - mh - 10, w: mw, h: mh, k };
}

export function paint(ctx: CanvasRenderingContext2D, canvas: HTMLCanvasElement, s: Scene): void {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#1f2937";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(s.scale, 0, 0, s.scale, s.tx, s.ty);
  const ready = s.img.complete && s.img.naturalWidth > 0;
  const filter = s.brightness !== 1 || s.contrast !== 1 ? `brightness(${s.brightness}) contrast(${s.contrast})` : "none";
  if (ready) {
    ctx.filter = filter;
    ctx.drawImage(s.img, 0, 0);
    ctx.filter = "none";
  }
  const px = 1 / s.scale;
  paintSkeletons(ctx, s, px);
  paintShapes(ctx, s, px);
  paintEditing(ctx, s, px);
  if (s.minimap && ready) paintMinimap(ctx, canvas, s, s.minimap, filter);
}

function paintShapes(ctx: CanvasRenderingContext2D, s: Scene, px: number): void {
  const showText = s.scale > 0.4 && s.anns.length < 2000;
  ctx.font = `${13 * px}px sans-serif`;
  for (const a of s.anns) {
    const entry = s.paths.get(a.id);
    if (!entry || !s.visible(a)) continue;
    const isSel = a.id === s.selected || s.picked.has(a.id);
    ctx.save();
    if (isSel && s.moveOffset[0] + s.moveOffset[1] !== 0) ctx.translate(s.moveOffset[0], s.moveOffset[1]);
    // the class's colour; the status in the line: proposals dashed, rejected dotted and faint
    ctx.strokeStyle = isSel ? "#ef4444" : s.colors.get(a.label) ?? "#fff";
    ctx.globalAlpha = a.status === "rejected" && !isSel ? 0.45 : 1;
    ctx.lineWidth = (isSel ? 3 : 2) * px;
    ctx.setLineDash(a.status === "predicted" ? [6 * px, 4 * px] : a.status === "rejected" ? [2 * px, 3 * px] : []);
    const mask = a.shape.type === "mask" ? s.masks.get(a.id) : undefined;
    if (mask) {
      // a mask: its pixels in the class's colour, the picked ones framed
      if (mask.layer && mask.bits && !(s.stroke && isSel)) ctx.drawImage(mask.layer, mask.bits.x, mask.bits.y);
      if (isSel && mask.bits) ctx.strokeRect(mask.bits.x, mask.bits.y, mask.bits.w, mask.bits.h);
    } else {
      ctx.stroke(entry.path);
    }
    // the class name on every shape (on crowded images only where there is text or a score)
    if (showText && (a.text || a.score !== null || s.anns.length <= 300)) {
      const [x, y] = shapePoints(a.shape)[0] ?? (mask?.bits ? [mask.bits.x, mask.bits.y] : [0, 0]);
      const name = a.text ?? (typeof a.attributes.keypoint === "string" ? a.attributes.keypoint : a.label);
      const label = name + (a.status === "predicted" && a.score !== null ? ` ${a.score.toFixed(2)}` : "");
      ctx.fillStyle = "rgba(0,0,0,0.6)";
      const w = ctx.measureText(label).width;
      ctx.fillRect(x, y - 16 * px, w + 6 * px, 16 * px);
      ctx.fillStyle = "#fff";
      ctx.fillText(label, x + 3 * px, y - 4 * px);
    }
    ctx.restore();
  }
}

/** Each keypoint instance (its class's points sharing a group) joined by the class's
 * skeleton, in the class's colour. */
function paintSkeletons(ctx: CanvasRenderingContext2D, s: Scene, px: number): void {
  const instances = new Map<string, Map<string, XY>>();
  for (const a of s.anns) {
    const schema = s.skeletons[a.label];
    if (!schema || a.shape.type !== "point" || a.group === null || a.status === "rejected" || !s.visible(a)) continue;
    const key = `${a.label}\u0000${a.group}`;
    if (!instances.has(key)) instances.set(key, new Map());
    instances.get(key)!.set(String(a.attributes.keypoint ?? ""), a.shape.xy);
  }
  ctx.setLineDash([]);
  ctx.lineWidth = 2 * px;
  for (const [key, points] of instances) {
    const label = key.split("\u0000")[0];
    const { keypoints, skeleton } = s.skeletons[label];
    ctx.strokeStyle = s.colors.get(label) ?? "#fff";
    ctx.beginPath();
    for (const [i, j] of skeleton) {
      const p = points.get(keypoints[i - 1]), q = points.get(keypoints[j - 1]);
      if (!p || !q) continue;
      ctx.moveTo(p[0], p[1]);
      ctx.lineTo(q[0], q[1]);
    }
    ctx.stroke();
  }
}

function paintEditing(ctx: CanvasRenderingContext2D, s: Scene, px: number): void {
  // vertex handles of the selected shape, and the shape being reshaped
  const sel = s.anns.find((a) => a.id === s.selected);
  if (sel && s.visible(sel) && ["box", "rotated_box", "quad", "polygon", "polyline"].includes(sel.shape.type)) {
    const shown = s.preview ?? sel.shape;
    ctx.setLineDash([]);
    ctx.fillStyle = "#ef4444";
    if (shown.type !== "rotated_box") {
      for (const [x, y] of shapePoints(shown)) ctx.fillRect(x - 4 * px, y - 4 * px, 8 * px, 8 * px);
    }
    // a box's rotation handle, above its top edge
    const turn = rotationHandle(shown, s.rotateOffset * px);
    if (turn) {
      ctx.strokeStyle = "#ef4444";
      ctx.lineWidth = 1.5 * px;
      ctx.beginPath();
      ctx.moveTo(turn.edge[0], turn.edge[1]);
      ctx.lineTo(turn.at[0], turn.at[1]);
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(turn.at[0], turn.at[1], 5 * px, 0, Math.PI * 2);
      ctx.fill();
    }
    if (s.preview) {
      ctx.strokeStyle = "#ef4444";
      ctx.lineWidth = 2 * px;
      ctx.stroke(pathOf(s.preview));
    }
  }
  ctx.setLineDash([]);
  ctx.strokeStyle = "#ef4444";
  ctx.lineWidth = 2 * px;
  if (s.dragBox) {
    const [[x1, y1], [x2, y2]] = s.dragBox;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
  if (s.smart) {
    if (s.smart.preview) {
      ctx.fillStyle = "rgba(59,130,246,0.35)";
      ctx.fill(s.smart.preview, "evenodd");
      ctx.strokeStyle = "#3b82f6";
      ctx.stroke(s.smart.preview);
    }
    if (s.smart.box) {
      const [x1, y1, x2, y2] = s.smart.box;
      ctx.strokeStyle = "#f59e0b";
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    }
    for (const c of s.smart.clicks) {
      ctx.fillStyle = c.positive ? "#10b981" : "#ef4444";
      ctx.beginPath();
      ctx.arc(c.x, c.y, 5 * px, 0, Math.PI * 2);
      ctx.fill();
    }
  }
  if (s.stroke) {
    ctx.globalAlpha = 0.5;
    ctx.drawImage(s.stroke, 0, 0);
    ctx.globalAlpha = 1;
  }
  if (s.brush) {
    ctx.strokeStyle = s.brush.erase ? "#f59e0b" : "#3b82f6";
    ctx.beginPath();
    ctx.arc(s.brush.at[0], s.brush.at[1], s.brush.size / 2, 0, Math.PI * 2);
    ctx.stroke();
  }
  if (s.pending.length) {
    ctx.beginPath();
    s.pending.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (s.cursor) ctx.lineTo(s.cursor[0], s.cursor[1]);
    ctx.stroke();
  }
}

/** The whole image small in a corner, with the part in view outlined. */
function paintMinimap(ctx: CanvasRenderingContext2D, canvas: HTMLCanvasElement, s: Scene, m: Minimap,
                      filter: string): void {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "rgba(0,0,0,0.6)";
  ctx.fillRect(m.x - 3, m.y - 3, m.w + 6, m.h + 6);
  ctx.filter = filter;
  ctx.drawImage(s.img, m.x, m.y, m.w, m.h);
  ctx.filter = "none";
  // the view: the canvas's corners in image coordinates
  const x1 = Math.max(0, -s.tx / s.scale), y1 = Math.max(0, -s.ty / s.scale);
  const x2 = Math.min(s.img.naturalWidth, (canvas.width - s.tx) / s.scale);
  const y2 = Math.min(s.img.naturalHeight, (canvas.height - s.ty) / s.scale);
  ctx.strokeStyle = "#facc15";
  ctx.lineWidth = 2;
  ctx.strokeRect(m.x + x1 * m.k, m.y + y1 * m.k, Math.max(2, (x2 - x1) * m.k), Math.max(2, (y2 - y1) * m.k));
}
