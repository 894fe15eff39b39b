"""Limits on what a client may send: request bodies counted as they stream in (chunked
ones too), and every field a client writes (text, attributes, polygons, masks, ids)."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from labelpilot.server.app import create_app
from labelpilot.settings import Settings
from labelpilot.transfer import import_dataset
from tests.conftest import write_image
from tests.server.conftest import PASSWORD, add_users
from tests.server.live import free_port, serve
from tests.test_transfer import coco_dir

BOX = {"type": "box", "xyxy": [1, 2, 30, 40]}


@pytest.fixture
def small(make_workspace, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], int]]:  # type: ignore[no-untyped-def]
    """A server with small body limits: 4 MB for JSON, 200 kB for an upload."""
    ws = make_workspace(labels=["cat"])
    import_dataset(ws, coco_dir(tmp_path / "c", 1, extra={"annotations": []}), format="coco")
    add_users(ws)
    app = create_app(ws, Settings(max_request_bytes=4_000_000, max_upload_bytes=200_000),
                     run_jobs=False)
    with TestClient(app) as client:
        token = client.post("/api/auth/token", data={"username": "reviewer",
                                                     "password": PASSWORD}).json()["access_token"]
        client.cookies.clear()
        h = {"Authorization": f"Bearer {token}"}
        image_id = client.get("/api/images", headers=h).json()["data"][0]["id"]
        yield client, h, image_id


def _chunks(data: bytes, size: int = 8192) -> Iterator[bytes]:
    """The body as a generator: sent chunked, with no Content-Length."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _count(client: TestClient, h: dict[str, str], image_id: int) -> int:
    return len(client.get(f"/api/images/{image_id}/annotations", headers=h).json()["data"])


def test_a_chunked_json_body_over_the_limit_is_refused(small) -> None:  # type: ignore[no-untyped-def]
    client, h, image_id = small
    body = json.dumps({"label": "cat", "shape": BOX, "text": "x" * 9_000,
                       "attributes": {"note": "y" * 8_000_000}}).encode()
    r = client.post(f"/api/images/{image_id}/annotations", content=_chunks(body),
                    headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["detail"] == "the request body is over the limit of 4,000,000 bytes"
    assert _count(client, h, image_id) == 0
    # the same with a Content-Length: refused before the body is read
    r = client.post(f"/api/images/{image_id}/annotations", content=body,
                    headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and _count(client, h, image_id) == 0


def test_a_chunked_upload_over_its_limit_is_refused(small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, h, _ = small
    png = write_image(tmp_path / "big.png", 400, 300).read_bytes()
    assert len(png) > 300_000
    boundary = "lp-boundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + png + \
        f"\r\n--{boundary}--\r\n".encode()
    r = client.post("/api/images", content=_chunks(form),
                    headers={**h, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413, r.text
    assert "over the limit of 200,000 bytes" in r.json()["detail"]
    assert client.get("/api/images", headers=h).json()["count"] == 1
    # a small image still goes through the same route
    ok = write_image(tmp_path / "ok.png", 32, 24).read_bytes()
    r = client.post("/api/images", files={"file": ("ok.png", ok)}, headers=h)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("change", "message"), [
    ({"text": "x" * 10_001}, "at most 10000 characters"),
    ({"text": "a\x00b"}, "control character"),
    ({"label": "ca\x07t"}, "control character"),
    ({"attributes": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}},
     "nest deeper than 8"),
    ({"attributes": {"k": "v" * 70_000}}, "over the limit of 65,536"),
    ({"shape": {"type": "polygon", "points": [[1, 1], [9, 1], [9, 9]],
                "holes": [[[2, 2], [3, 2], [3, 3]] * 2000] * 20}}, "over the limit of 100,000"),
    ({"group": 2**31}, "less than or equal to 2147483647"),
])
def test_fields_over_their_limits_are_422(small, change: dict, message: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    client, h, image_id = small
    body = {"label": "cat", "shape": BOX, **change}
    r = client.post(f"/api/images/{image_id}/annotations", json=body, headers=h)
    assert r.status_code == 422, r.text
    assert message in json.dumps(r.json()["detail"])
    assert _count(client, h, image_id) == 0


def test_a_lone_surrogate_is_422_not_500(small) -> None:  # type: ignore[no-untyped-def]
    client, h, image_id = small
    raw = b'{"label": "cat", "shape": {"type": "box", "xyxy": [1, 2, 30, 40]}, "text": "\\ud800"}'
    r = client.post(f"/api/images/{image_id}/annotations", content=raw,
                    headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422 and "unicode" in r.text.lower()


@pytest.mark.parametrize("url", ["/api/images/{big}", "/api/annotations/{big}",
                                 "/api/jobs/{big}", "/api/images/{big}/annotations",
                                 "/api/images?offset={big}"])
@pytest.mark.parametrize("big", [2**31, 2**63])  # past PostgreSQL's integer; past 64 bits
def test_ids_past_the_columns_range_are_422_and_the_connection_lives_on(small, url: str, big: int) -> None:  # type: ignore[no-untyped-def]
    client, h, image_id = small
    r = client.get(url.format(big=big), headers=h)
    assert r.status_code == 422, r.text
    assert client.get(f"/api/images/{image_id}", headers=h).status_code == 200
    r = client.delete(f"/api/annotations/1?version={big}", headers=h)
    assert r.status_code == 422
    r = client.post("/api/annotations/1/combine", headers=h,
                    json={"other": big, "version": 1, "other_version": 1, "op": "union"})
    assert r.status_code == 422


def test_a_live_server_stops_reading_a_chunked_body_at_the_limit(make_workspace, tmp_path: Path  # type: ignore[no-untyped-def]
                                                                 ) -> None:
    ws = make_workspace(labels=["cat"])
    import_dataset(ws, coco_dir(tmp_path / "c", 1), format="coco")
    add_users(ws)
    root = ws.root
    ws.close()
    port = free_port()
    proc = serve(root, port, delay=0.0)  # default limits: 16 MiB for a JSON body
    try:
        base = f"http://127.0.0.1:{port}"
        token = httpx.post(f"{base}/api/auth/token", data={
            "username": "reviewer", "password": PASSWORD}).json()["access_token"]
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"POST /api/images/1/annotations HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        sent = 0
        while sent < 200 << 20:  # the client would go on for 200 MiB
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 65536
        sock.settimeout(10)
        answer = sock.recv(4096).decode(errors="replace")
        sock.close()
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        # it stopped reading near the limit (plus what the sockets buffer), not at the end
        assert sent < 48 << 20, sent
        assert httpx.get(f"{base}/api/health").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
