// What the canvas shows of an image's annotations: each shape's outline (Path2D) or mask
// layer, hit-testing (the smallest shape under a point), bounding boxes, shapes and
// classes hidden or locked (this session's view, not data), brightness and contrast, and
// the crop of one shape. The input and the tools are canvas.ts's.

import { Annotation } from "./api";
import { MaskCache } from "./masks";
import { bounds, pathOf } from "./shapes";
import { View } from "./view";

export abstract class ShapeView extends View {
  /** class name -> colour (classColors) */
  colors = new Map<string, string>();
  /** keypoint classes' schemas (their skeletons are drawn) */
  skeletons: Record<string, { keypoints: string[]; skeleton: number[][] }> = {};
  anns: Annotation[] = [];
  protected paths = new Map<number, { path: Path2D; key: string }>();
  /** mask annotations as bitmaps and coloured layers */
  protected readonly masks = new MaskCache();
  /** shapes (by id) and classes hidden from view or locked against edits, for this session */
  readonly hidden = new Set<number>();
  readonly locked = new Set<number>();
  readonly hiddenClasses = new Set<string>();
  readonly lockedClasses = new Set<string>();
  /** image adjustments (1 = as it is) */
  brightness = 1;
  contrast = 1;

  setAnnotations(anns: Annotation[]): void {
    this.anns = anns;
    const next = new Map<number, { path: Path2D; key: string }>();
    for (const a of anns) {
      const key = `${a.version}`;
      const old = this.paths.get(a.id);
      next.set(a.id, old && old.key === key ? old : { path: pathOf(a.shape), key });
    }
    this.paths = next;
    this.masks.update(anns, this.colors);
    this.annotationsChanged(new Set(next.keys()));
    this.redraw();
  }

  /** the annotations were replaced: `ids` are the ones there now */
  protected annotationsChanged(_ids: Set<number>): void {}

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
      if (this.under(a, entry.path, ix, iy)) {
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

  /** Is image point (ix, iy) on the shape: in a mask's pixels, near a line (6 screen
   * pixels), inside any other outline. */
  private under(a: Annotation, path: Path2D, ix: number, iy: number): boolean {
    if (a.shape.type === "mask") return this.masks.contains(a.id, ix, iy);
    if (a.shape.type === "polyline") {
      this.ctx.lineWidth = 12 / this.scale;
      return this.ctx.isPointInStroke(path, ix, iy);
    }
    return this.ctx.isPointInPath(path, ix, iy);
  }

  /** A shape's bounding box; a mask's from its pixels. */
  boundsOf(a: Annotation): number[] {
    if (a.shape.type !== "mask") return bounds(a.shape);
    const m = this.masks.get(a.id)?.bits;
    return m ? [m.x, m.y, m.x + m.w, m.y + m.h] : [0, 0, 0, 0];
  }

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
