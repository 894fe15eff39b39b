"""Screenshots for the README: `python docs/screenshots.py`.

Builds the demo workspace, pre-labels it with the embedded OCR model, signs in with the
Debian Chromium and saves docs/screenshots/: ocr-review.png (proposals to review),
editor-panel.png (a class's attributes, the image's tags, the line's crop, hide and lock
switches), brush.png (a mask painted with the brush) and grid.png (thumbnails with their
labels, the filters, assignment).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from playwright.sync_api import sync_playwright
    from tests.server.live import free_port, serve
    from tests.web.conftest import ARGS, CHROMIUM

    from labelpilot import users
    from labelpilot.demo import build_demo
    from labelpilot.jobs import engine, kinds

    root = ROOT / "benchmarks" / "out" / "shots-demo"
    shutil.rmtree(root, ignore_errors=True)
    ws = build_demo(root)
    with ws.transaction() as conn:
        # the demo's labels are ground truth: let the model propose on top of a clean copy
        conn.exec_driver_sql("DELETE FROM annotations")
        conn.exec_driver_sql("UPDATE images SET review_state = 'new'")
        users.add_user(conn, username="demo", password="demo-password", role="admin")
        job = kinds.submit(conn, kind="autolabel", params={"images": "new"}, user="demo")
    engine.run_job(ws, job.id, kinds.HANDLERS)
    ws.close()
    port = free_port()
    server = serve(root, port, delay=0.0)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 720}, bypass_csp=True)
            base = f"http://127.0.0.1:{port}"
            page.goto(base + "/")
            page.fill("#username", "demo")
            page.fill("#password", "demo-password")
            page.click("button[type=submit]")
            page.wait_for_selector("#start")
            page.evaluate("location.hash = '#/label/1'")
            page.wait_for_function("window.__editorReady !== undefined")
            page.keyboard.press("Tab")
            page.wait_for_timeout(300)
            shots = ROOT / "docs" / "screenshots"
            page.screenshot(path=str(shots / "ocr-review.png"))
            # attributes, tags, the line's crop
            token = page.evaluate("sessionStorage.getItem('labelpilot.token')")
            page.evaluate("""async (t) => { await fetch('/api/project/labels/text', {method: 'PATCH',
                headers: {'Authorization': 'Bearer ' + t, 'Content-Type': 'application/json'},
                body: JSON.stringify({attributes: [{name: 'legible', type: 'checkbox', default: true},
                  {name: 'kind', type: 'select', values: ['lot', 'expiry', 'serial']}]})}); }""",
                          token)
            page.reload()
            page.wait_for_function("window.__editorReady !== undefined")
            page.fill("#add-tag", "blurry")
            page.press("#add-tag", "Enter")
            page.wait_for_selector("#tags .tag")
            page.focus("canvas.label-canvas")
            page.keyboard.press("Tab")
            page.wait_for_selector("#line-crop:not([hidden])")
            page.screenshot(path=str(shots / "editor-panel.png"))
            # a mask painted with the brush
            page.keyboard.press("Escape")
            page.keyboard.press("m")
            box = page.locator("canvas.label-canvas").bounding_box()
            assert box is not None
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx - 150, cy + 100)
            page.mouse.down()
            for dx, dy in ((-60, 140), (60, 150), (160, 120), (150, 90)):
                page.mouse.move(cx + dx, cy + dy, steps=8)
            page.mouse.up()
            page.wait_for_function("__doc.saving === 0")
            page.mouse.move(cx + 40, cy + 60)
            page.screenshot(path=str(shots / "brush.png"))
            # the grid
            page.evaluate("location.hash = '#/images'")
            page.wait_for_selector("#grid .cell img")
            page.wait_for_function("Array.from(document.querySelectorAll('#grid .cell img'))"
                                   ".every((i) => i.complete)")
            page.screenshot(path=str(shots / "grid.png"))
            browser.close()
        print(f"saved {', '.join(sorted(p.name for p in shots.glob('*.png')))} in "
              f"{shots.relative_to(ROOT)}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
