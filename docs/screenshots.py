"""Screenshots of the OCR review screen for the README: `python docs/screenshots.py`.

Builds the demo workspace, pre-labels it with the embedded OCR model, signs in with the
Debian Chromium and saves docs/screenshots/ocr-review.png.
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
        users.add_user(conn, username="demo", password="demo-password", role="reviewer")
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
            out = ROOT / "docs" / "screenshots" / "ocr-review.png"
            page.screenshot(path=str(out))
            browser.close()
        print(f"saved {out.relative_to(ROOT)}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
