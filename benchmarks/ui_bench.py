"""Web UI speed in headless Chromium: grid of 10,000 images, an image with 1,000 polygons.

Builds a workspace (10,000 small images; one of them carries 1,000 polygons), serves it
with `labelpilot serve`, and measures in the Debian Chromium driven by Playwright:
- time from navigation to a usable grid (first thumbnails laid out);
- time to open the image with 1,000 polygons (image and annotations drawn);
- frames per second while panning that image (requestAnimationFrame-driven pans, 3 s).
Also saves screenshots to benchmarks/out/screenshots/.

Usage:
    python benchmarks/ui_bench.py [--images 10000] [--polygons 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
sys.path.insert(0, str(ROOT))


def build(root: Path, n_images: int, n_polygons: int) -> Path:
    import numpy as np
    from argon2 import PasswordHasher
    from PIL import Image

    from labelpilot import users
    from labelpilot.transfer import import_dataset
    from labelpilot.workspace import Workspace

    shutil.rmtree(root, ignore_errors=True)
    src = root.parent / f"{root.name}-src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "images").mkdir(parents=True)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    for i in range(n_images):
        arr = base.copy()
        arr[i % 60, :, :] = i % 251
        arr[:, (i // 60) % 80, 2] = (i * 13) % 253
        Image.fromarray(arr).save(src / "images" / f"im{i:05d}.png")
    big = Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
    big.save(src / "images" / "crowded.png")
    anns = []
    for k in range(n_polygons):
        cx, cy = rng.uniform(30, 1570), rng.uniform(30, 1170)
        pts = [(cx + 25 * math.cos(t), cy + 18 * math.sin(t))
               for t in np.linspace(0, 2 * math.pi, 8, endpoint=False)]
        anns.append({"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                     "bbox": [cx - 25, cy - 18, 50, 36],
                     "segmentation": [[round(v, 1) for p in pts for v in p]]})
    (src / "crowded.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "crowded.png", "width": 1600, "height": 1200}],
        "annotations": anns, "categories": [{"id": 1, "name": "part"}]}))
    ws = Workspace.create(root, task="segment", labels=["part"])
    import_dataset(ws, src / "images", format="images", link=True)
    import_dataset(ws, src / "crowded.json", format="coco", images_dir=src / "images")
    users.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with ws.transaction() as conn:
        users.add_user(conn, username="bench", password="bench-password", role="admin")
    ws.close()
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--polygons", type=int, default=1000)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from tests.server.live import free_port, serve
    from tests.web.conftest import ARGS, CHROMIUM

    t = time.perf_counter()
    root = build(OUT / "ui-bench", args.images, args.polygons)
    print(f"workspace: {args.images + 1} images, {args.polygons} polygons "
          f"(built in {time.perf_counter() - t:.0f} s)")
    from sqlalchemy import select

    from labelpilot.store.repo import images_t
    from labelpilot.workspace import Workspace

    with Workspace.open(root) as ws, ws.engine.connect() as conn:
        crowded = conn.execute(select(images_t.c.id).where(
            images_t.c.file_name == "crowded.png")).scalar_one()
    port = free_port()
    server = serve(root, port, delay=0.0)
    base = f"http://127.0.0.1:{port}"
    shots = OUT / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720}, bypass_csp=True)
            page.goto(base + "/")
            page.fill("#username", "bench")
            page.fill("#password", "bench-password")
            page.click("button[type=submit]")
            page.wait_for_selector("#start")
            page.screenshot(path=str(shots / "overview.png"))
            grid_ms = []
            for _ in range(3):
                page.goto(base + "/#/")
                page.wait_for_selector("#start")
                t0 = page.evaluate("performance.now()")
                page.evaluate("location.hash = '#/images'")
                page.wait_for_function("document.querySelectorAll('#grid .cell').length > 0")
                grid_ms.append(page.evaluate("performance.now()") - t0)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "grid.png"))
            open_ms = []
            for _ in range(3):
                page.goto(base + "/#/")
                page.wait_for_selector("#start")
                t0 = page.evaluate("performance.now()")
                page.evaluate(f"location.hash = '#/label/{crowded}'")
                try:
                    page.wait_for_function("window.__editorReady !== undefined && "
                                           "__canvas.anns.length > 0 && __canvas.frames > 0")
                except Exception:
                    print("editor did not open:", crowded, page.url, page.inner_text("body")[:500])
                    raise
                open_ms.append(page.evaluate("__editorReady") - t0)
            fps = page.evaluate("""() => new Promise(resolve => {
                const c = window.__canvas; const f0 = c.frames; const t0 = performance.now();
                let dir = 1;
                function step() {
                  c.panBy(4 * dir, 2 * dir);
                  if (performance.now() - t0 > 1500) dir = -1;
                  if (performance.now() - t0 < 3000) requestAnimationFrame(step);
                  else resolve((c.frames - f0) / ((performance.now() - t0) / 1000));
                }
                requestAnimationFrame(step);
            })""")
            page.screenshot(path=str(shots / "editor-1000-polygons.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"\n{'measure':<42}{'value':>10}{'target':>10}")
    print(f"{'grid of ' + str(args.images + 1) + ' images usable (ms, best of 3)':<42}"
          f"{min(grid_ms):>10.0f}{'< 1000':>10}")
    print(f"{'open image with ' + str(args.polygons) + ' polygons (ms, best of 3)':<42}"
          f"{min(open_ms):>10.0f}{'< 500':>10}")
    print(f"{'panning it (frames/s)':<42}{fps:>10.1f}{'>= 30':>10}")
    print(f"\nscreenshots in {shots.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
