// One brush or eraser stroke: painted on an image-sized layer (the canvas's own line
// drawing, round caps), starting from the mask it edits; at its end, the layer's pixels
// are the mask.

import { XY } from "./api";
import { MaskBits, maskLayer } from "./masks";

export class Stroke {
  readonly layer = document.createElement("canvas");
  private last: XY;

  /** `id`: the mask annotation it edits (null: a new mask), `from` its pixels */
  constructor(readonly id: number | null, from: MaskBits | null, width: number, height: number,
              start: XY, private erase: boolean, private size: number) {
    this.layer.width = width;
    this.layer.height = height;
    if (from) this.layer.getContext("2d")!.drawImage(maskLayer(from, "#3b82f6", 1), from.x, from.y);
    this.last = start;
    this.to(start);
  }

  /** The stroke continues to `p`. */
  to(p: XY): void {
    const ctx = this.layer.getContext("2d")!;
    ctx.globalCompositeOperation = this.erase ? "destination-out" : "source-over";
    ctx.strokeStyle = "#3b82f6";
    ctx.lineWidth = this.size;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(this.last[0], this.last[1]);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    this.last = p;
  }

  /** The mask the stroke leaves, over the whole image (row-major), and whether any pixel
   * is in it. */
  result(): { full: Uint8Array; any: boolean } {
    const { width: w, height: h } = this.layer;
    const data = this.layer.getContext("2d")!.getImageData(0, 0, w, h).data;
    const full = new Uint8Array(w * h);
    let any = false;
    for (let i = 0; i < full.length; i++) {
      if (data[i * 4 + 3] >= 128) {
        full[i] = 1;
        any = true;
      }
    }
    return { full, any };
  }
}
