// Shape geometry in image coordinates: the outline points of every shape type, moving a
// shape or one vertex, adding and removing polygon vertices, and a shape's Path2D.

import { Shape, XY } from "./api";

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
    case "polyline":
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

export function translate(s: Shape, dx: number, dy: number): Shape {
  const mv = (p: XY): XY => [p[0] + dx, p[1] + dy];
  switch (s.type) {
    case "box":
      return { type: "box", xyxy: [s.xyxy[0] + dx, s.xyxy[1] + dy, s.xyxy[2] + dx, s.xyxy[3] + dy] };
    case "quad":
      return { type: "quad", points: s.points.map(mv) };
    case "polyline":
      return { type: "polyline", points: s.points.map(mv) };
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
  if (s.type === "quad" || s.type === "polygon" || s.type === "polyline") {
    const points = s.points.map((q, k) => (k === i ? p : q)) as XY[];
    if (s.type === "polyline") return { type: "polyline", points };
    return s.type === "quad" ? { type: "quad", points } : { type: "polygon", points, holes: s.holes };
  }
  return s;
}

/** A polygon with a vertex added on the edge nearest `p`, or vertex `i` removed. */
export function insertVertex(s: Shape, p: XY): Shape {
  if (s.type !== "polygon" && s.type !== "polyline") return s;
  const open = s.type === "polyline";
  let best = 0, bestD = Infinity;
  s.points.forEach((a, k) => {
    if (open && k === s.points.length - 1) return;  // a line does not close
    const b = s.points[(k + 1) % s.points.length];
    const d = distToSegment(p, a, b);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  });
  const points = [...s.points.slice(0, best + 1), p, ...s.points.slice(best + 1)] as XY[];
  return s.type === "polyline" ? { type: "polyline", points } : { type: "polygon", points, holes: s.holes };
}

export function removeVertex(s: Shape, i: number): Shape {
  if (s.type === "polyline" && s.points.length > 2) return { type: "polyline", points: s.points.filter((_, k) => k !== i) };
  if (s.type !== "polygon" || s.points.length <= 3) return s;
  return { type: "polygon", points: s.points.filter((_, k) => k !== i), holes: s.holes };
}

function distToSegment([px, py]: XY, [ax, ay]: XY, [bx, by]: XY): number {
  const dx = bx - ax, dy = by - ay;
  const t = dx || dy ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy))) : 0;
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

export function pathOf(s: Shape): Path2D {
  const p = new Path2D();
  const pts = shapePoints(s);
  if (s.type === "point") {
    p.arc(pts[0][0], pts[0][1], 3, 0, Math.PI * 2);
    return p;
  }
  pts.forEach(([x, y], i) => (i ? p.lineTo(x, y) : p.moveTo(x, y)));
  if (s.type === "polyline") return p;  // an open line
  p.closePath();
  if (s.type === "polygon") {
    for (const hole of s.holes ?? []) {
      hole.forEach(([x, y], i) => (i ? p.lineTo(x, y) : p.moveTo(x, y)));
      p.closePath();
    }
  }
  return p;
}

/** The shape's bounding box [x1, y1, x2, y2] (a point is a box of size 0). */
export function bounds(s: Shape): [number, number, number, number] {
  const pts = shapePoints(s);
  if (!pts.length) return [0, 0, 0, 0];
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

/** A box or rotated box as centre, size and angle (degrees clockwise); null for others. */
function asRotated(s: Shape): [number, number, number, number, number] | null {
  if (s.type === "rotated_box") return s.cxcywha as [number, number, number, number, number];
  if (s.type === "box") {
    const [x1, y1, x2, y2] = s.xyxy;
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0];
  }
  return null;
}

/** Where a box's rotation handle is: `offset` beyond the middle of its top edge. */
export function rotationHandle(s: Shape, offset: number): { at: XY; edge: XY } | null {
  const r = asRotated(s);
  if (!r) return null;
  const [cx, cy, , h, a] = r;
  const rad = (a * Math.PI) / 180, ux = Math.sin(rad), uy = -Math.cos(rad);
  return { edge: [cx + ux * h / 2, cy + uy * h / 2], at: [cx + ux * (h / 2 + offset), cy + uy * (h / 2 + offset)] };
}

/** The box turned about its centre so that its top faces `p` (a rotated box). */
export function rotatedTowards(s: Shape, p: XY): Shape {
  const r = asRotated(s);
  if (!r) return s;
  const [cx, cy, w, h] = r;
  const angle = (Math.atan2(p[0] - cx, -(p[1] - cy)) * 180) / Math.PI;
  return { type: "rotated_box", cxcywha: [cx, cy, w, h, ((angle % 360) + 360) % 360] };
}
