// Masks in the browser: COCO compressed RLE (column-major runs, as the server stores them)
// decoded to a bitmap of the mask's bounding box and encoded back, each mask's coloured
// layer for the canvas, and filling a mask's holes.

/** A mask's pixels inside its bounding box (row-major, 1 = inside). */
export interface MaskBits {
  x: number;
  y: number;
  w: number;
  h: number;
  bits: Uint8Array;
}

/** COCO's compressed counts -> run lengths (arithmetic, not 32-bit shifts: runs may be
 * long). */
export function decodeCounts(s: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = true;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

export function encodeCounts(counts: number[]): string {
  let out = "";
  counts.forEach((c, i) => {
    let x = c - (i > 2 ? counts[i - 2] : 0);
    let more = true;
    while (more) {
      let ch = ((x % 32) + 32) % 32;
      x = Math.floor(x / 32);
      more = ch & 0x10 ? x !== -1 : x !== 0;
      if (more) ch |= 0x20;
      out += String.fromCharCode(ch + 48);
    }
  });
  return out;
}

/** A mask (image `height` x `width`) as the bitmap of its bounding box; null when empty. */
export function decodeMask(rle: string, height: number, width: number): MaskBits | null {
  const counts = decodeCounts(rle);
  let x1 = width, y1 = height, x2 = -1, y2 = -1;
  let at = 0;
  counts.forEach((n, i) => {
    if (i % 2 === 1 && n > 0) {
      const first = at, last = at + n - 1;
      const c1 = Math.floor(first / height), c2 = Math.floor(last / height);
      x1 = Math.min(x1, c1);
      x2 = Math.max(x2, c2);
      if (c2 > c1) {
        // a run over a column break reaches the bottom of one column and the top of the next
        y1 = 0;
        y2 = height - 1;
      } else {
        y1 = Math.min(y1, first % height);
        y2 = Math.max(y2, last % height);
      }
    }
    at += n;
  });
  if (x2 < 0) return null;
  const w = x2 - x1 + 1, h = y2 - y1 + 1;
  const bits = new Uint8Array(w * h);
  at = 0;
  counts.forEach((n, i) => {
    if (i % 2 === 1) {
      for (let k = at; k < at + n; k++) {
        const cx = Math.floor(k / height) - x1, cy = (k % height) - y1;
        bits[cy * w + cx] = 1;
      }
    }
    at += n;
  });
  return { x: x1, y: y1, w, h, bits };
}

/** A full-image row-major bitmap (1 = inside) as COCO compressed RLE. */
export function encodeMask(full: Uint8Array, height: number, width: number): string {
  const counts: number[] = [];
  let value = 0, run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const v = full[y * width + x] ? 1 : 0;
      if (v !== value) {
        counts.push(run);
        run = 0;
        value = v;
      }
      run++;
    }
  }
  counts.push(run);
  return encodeCounts(counts);
}

/** The mask's pixels drawn in `color` (a canvas of its bounding box's size). */
export function maskLayer(m: MaskBits, color: string, alpha = 0.45): HTMLCanvasElement {
  const layer = document.createElement("canvas");
  layer.width = m.w;
  layer.height = m.h;
  const ctx = layer.getContext("2d")!;
  ctx.fillStyle = color;
  ctx.fillRect(0, 0, 1, 1);
  const [r, g, b] = ctx.getImageData(0, 0, 1, 1).data;
  const img = ctx.createImageData(m.w, m.h);
  const a = Math.round(alpha * 255);
  for (let i = 0; i < m.bits.length; i++) {
    if (m.bits[i]) {
      img.data[i * 4] = r;
      img.data[i * 4 + 1] = g;
      img.data[i * 4 + 2] = b;
      img.data[i * 4 + 3] = a;
    }
  }
  ctx.putImageData(img, 0, 0);
  return layer;
}

/** The mask with every hole filled: background not reachable from the border. */
export function fillHoles(full: Uint8Array, height: number, width: number): Uint8Array {
  const out = full.slice();
  const seen = new Uint8Array(full.length);
  const stack: number[] = [];
  const push = (i: number) => {
    if (!full[i] && !seen[i]) {
      seen[i] = 1;
      stack.push(i);
    }
  };
  for (let x = 0; x < width; x++) {
    push(x);
    push((height - 1) * width + x);
  }
  for (let y = 0; y < height; y++) {
    push(y * width);
    push(y * width + width - 1);
  }
  while (stack.length) {
    const i = stack.pop()!;
    const x = i % width, y = (i - x) / width;
    if (x > 0) push(i - 1);
    if (x < width - 1) push(i + 1);
    if (y > 0) push(i - width);
    if (y < height - 1) push(i + width);
  }
  for (let i = 0; i < out.length; i++) if (!full[i] && !seen[i]) out[i] = 1;
  return out;
}

/** A mask's bitmap spread over the whole image (row-major). */
export function toFull(m: MaskBits, height: number, width: number): Uint8Array {
  const full = new Uint8Array(height * width);
  for (let y = 0; y < m.h; y++) {
    for (let x = 0; x < m.w; x++) {
      if (m.bits[y * m.w + x]) full[(m.y + y) * width + m.x + x] = 1;
    }
  }
  return full;
}

/** The mask annotations of an image as bitmaps and coloured layers, made again only when a
 * mask's version or colour changes. */
export class MaskCache {
  private entries = new Map<number, { key: string; bits: MaskBits | null; layer: HTMLCanvasElement | null }>();

  update(anns: { id: number; version: number; label: string; shape: { type: string } }[],
         colors: Map<string, string>): void {
    const next = new Map<number, { key: string; bits: MaskBits | null; layer: HTMLCanvasElement | null }>();
    for (const a of anns) {
      const shape = a.shape as { type: string; rle?: string; size?: number[] };
      if (shape.type !== "mask" || !shape.rle || !shape.size) continue;
      const color = colors.get(a.label) ?? "#ffffff";
      const key = `${a.version}:${color}`;
      const old = this.entries.get(a.id);
      if (old && old.key === key) {
        next.set(a.id, old);
      } else {
        const bits = decodeMask(shape.rle, shape.size[0], shape.size[1]);
        next.set(a.id, { key, bits, layer: bits ? maskLayer(bits, color) : null });
      }
    }
    this.entries = next;
  }

  get(id: number): { bits: MaskBits | null; layer: HTMLCanvasElement | null } | undefined {
    return this.entries.get(id);
  }

  /** Is image pixel (x, y) in mask `id`? */
  contains(id: number, ix: number, iy: number): boolean {
    const m = this.entries.get(id)?.bits;
    if (!m) return false;
    const x = Math.floor(ix) - m.x, y = Math.floor(iy) - m.y;
    return x >= 0 && y >= 0 && x < m.w && y < m.h && m.bits[y * m.w + x] === 1;
  }
}
