// The view of an image on a canvas: fit, zoom about a point, pan, centre on a point or a
// box, follow the window's size. Screen point (sx, sy) is image point
// ((sx - tx) / scale, (sy - ty) / scale). Subclasses paint (`draw`), once per frame.

import { XY } from "./api";

export abstract class View {
  readonly canvas: HTMLCanvasElement;
  protected readonly ctx: CanvasRenderingContext2D;
  protected readonly img = new Image();
  scale = 1;
  tx = 0;
  ty = 0;
  /** true while the view is as fit() left it */
  fitted = false;
  private frame = 0;
  /** frames painted so far (the UI benchmark counts them) */
  frames = 0;

  constructor(parent: HTMLElement) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "label-canvas";
    this.canvas.tabIndex = 0;
    parent.appendChild(this.canvas);
    this.ctx = this.canvas.getContext("2d")!;
    new ResizeObserver(() => this.resize()).observe(parent);
  }

  protected abstract draw(): void;

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

  redraw(): void {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.frames++;
        this.draw();
      });
    }
  }

  /** Put image point (x, y) in the middle of the view. */
  centerOn(x: number, y: number): void {
    this.fitted = false;
    this.tx = this.canvas.width / 2 - x * this.scale;
    this.ty = this.canvas.height / 2 - y * this.scale;
    this.redraw();
  }

  /** Pan so that the box is in view (zooming out only if it does not fit). */
  revealBox([x1, y1, x2, y2]: number[]): void {
    const [vx1, vy1] = this.toImage(0, 0), [vx2, vy2] = this.toImage(this.canvas.width, this.canvas.height);
    if (x1 >= vx1 && y1 >= vy1 && x2 <= vx2 && y2 <= vy2) return;
    const fits = Math.min(this.canvas.width / Math.max(1, x2 - x1), this.canvas.height / Math.max(1, y2 - y1)) * 0.8;
    if (fits < this.scale) this.scale = fits;
    this.centerOn((x1 + x2) / 2, (y1 + y2) / 2);
  }

  /** Zoom so that the box fills most of the view (never smaller than the whole image
   * fitted), centred. */
  zoomToBox([x1, y1, x2, y2]: number[]): void {
    const w = Math.max(8, x2 - x1), h = Math.max(8, y2 - y1);
    const [iw, ih] = [this.img.naturalWidth || w, this.img.naturalHeight || h];
    const whole = Math.min(this.canvas.width / iw, this.canvas.height / ih) * 0.95;
    const fill = Math.min(this.canvas.width / w, this.canvas.height / h) * 0.8;
    this.scale = Math.min(40, Math.max(whole, fill));
    this.centerOn((x1 + x2) / 2, (y1 + y2) / 2);
  }
}
