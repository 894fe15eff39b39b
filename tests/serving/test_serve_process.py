"""`labelpilot serve-models` as a real process: ready after loading, answers a client with
an API key made by `labelpilot users add-key` (and no one without), and on SIGTERM
answers the requests it had accepted before it exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from typer.testing import CliRunner

from labelpilot import users
from labelpilot.cli import app as cli
from labelpilot.workspace import Workspace
from tests.conftest import page_dataset
from tests.imaging import read_bgr
from tests.server.live import free_port


def test_the_process_serves_with_an_api_key_and_finishes_accepted_requests_on_sigterm(
        shared: Path, tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws", task="ocr", labels=["text"])
    with ws.transaction() as conn:
        users.add_user(conn, username="robot", password="correct horse battery",
                       role="annotator")
    made = CliRunner().invoke(cli, ["users", "add-key", str(ws.root), "robot", "--json"])
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)["key"]
    ws.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelpilot.cli", "serve-models", str(ws.root), "--port",
         str(port), "--models", "ocr", "--max-batch", "1"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "not ready in time"
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        h = {"Authorization": f"Bearer {key}"}
        page = read_bgr(page_dataset(tmp_path / "p") / "page.png")
        small = cv2.imencode(".png", page)[1].tobytes()
        big = cv2.imencode(".png", np.tile(page, (2, 2, 1)))[1].tobytes()  # seconds of OCR
        url = base + "/v1/models/ocr/predict"
        r = httpx.post(url, content=small, headers={**h, "Content-Type": "image/png"})
        assert r.status_code == 200 and r.json()["predictions"], r.text
        assert httpx.post(url, content=small, headers={"Content-Type": "image/png"}
                          ).status_code == 401
        # requests accepted before SIGTERM are all answered, then the process ends
        answers: list[Any] = []

        def ask() -> None:
            try:
                answers.append(httpx.post(url, content=big, timeout=120,
                                          headers={**h, "Content-Type": "image/png"}))
            except httpx.HTTPError as e:
                answers.append(type(e).__name__)

        clients = [threading.Thread(target=ask) for _ in range(4)]
        for t in clients:
            t.start()
        time.sleep(1.0)
        unanswered = 4 - len(answers)
        proc.send_signal(signal.SIGTERM)
        for t in clients:
            t.join()
        # uvicorn shuts down, then ends by the signal it caught (its exit status says so)
        assert proc.wait(60) in (0, -signal.SIGTERM)
        out = proc.stdout.read().decode() if proc.stdout else ""
        assert "Traceback" not in out, out
        assert unanswered >= 2  # they were still waiting when the signal came
        assert [getattr(a, "status_code", a) for a in answers] == [200] * 4
        assert all(len(a.json()["predictions"]) > 10 for a in answers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
