"""Identical uploads racing, within one server and across two servers on one workspace
(SQLite and PostgreSQL): every upload is answered, the image is stored once, and its file
and thumbnail stay readable."""

from __future__ import annotations

import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tests.server.conftest import PASSWORD, add_users
from tests.server.live import free_port, serve


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_identical_uploads_racing_on_two_servers_lose_nothing(make_workspace, tmp_path: Path  # type: ignore[no-untyped-def]
                                                               ) -> None:
    ws = make_workspace()
    add_users(ws)
    root = ws.root
    ws.close()
    bases = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    procs = [serve(root, int(b.rsplit(":", 1)[1]), delay=0.0) for b in bases]
    try:
        token = httpx.post(f"{bases[0]}/api/auth/token", data={
            "username": "annotator", "password": PASSWORD}).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        with httpx.Client(headers=h, timeout=60) as client:
            for round_ in range(4):
                data = _png(round_)
                start = threading.Barrier(16)

                def upload(i: int, data: bytes = data, start: threading.Barrier = start,
                           round_: int = round_) -> httpx.Response:
                    start.wait()
                    # two names for the same bytes: two images sharing one stored file
                    return client.post(f"{bases[i % 2]}/api/images",
                                       files={"file": (f"r{round_}-{i % 4 // 2}.png", data)})

                with ThreadPoolExecutor(16) as pool:
                    answers = list(pool.map(upload, range(16)))
                codes = [r.status_code for r in answers]
                assert set(codes) <= {200, 201} and codes.count(201) == 2, \
                    [(r.status_code, r.text[:200]) for r in answers if r.status_code >= 300]
                ids = {r.json()["file_name"]: r.json()["id"] for r in answers}
                assert sorted(ids) == [f"r{round_}-0.png", f"r{round_}-1.png"]
                assert len(set(ids.values())) == 2
                for image_id in ids.values():
                    for base in bases:
                        f = client.get(f"{base}/api/images/{image_id}/file")
                        assert f.status_code == 200
                        assert hashlib.sha256(f.content).digest() == hashlib.sha256(data).digest()
                        assert client.get(f"{base}/api/images/{image_id}/thumbnail"
                                          ).status_code == 200
            assert client.get(f"{bases[1]}/api/images").json()["count"] == 8
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
    stored = sorted(p.name for p in (root / "blobs").glob("*/*"))
    assert len(stored) == 4 and not any(n.startswith(".") for n in stored)
