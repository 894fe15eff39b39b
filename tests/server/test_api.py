"""The REST API route by route, with each role allowed and forbidden, on both databases."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import write_image
from tests.server.conftest import PASSWORD, Api

BOX = {"label": "cat", "shape": {"type": "box", "xyxy": [1, 2, 30, 40]}}


def test_health_needs_no_token_and_everything_else_does(api: Api) -> None:
    assert api.client.get("/api/health").json()["status"] == "ok"
    for method, url in [("get", "/api/project"), ("get", "/api/images"),
                        ("get", "/api/images/1/annotations"), ("get", "/api/jobs"),
                        ("post", "/api/images/next"), ("get", "/api/users")]:
        r = getattr(api.client, method)(url)
        assert r.status_code == 401, (url, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    r = api.client.get("/api/project", headers={"Authorization": "Bearer lp_nonsense"})
    assert r.status_code == 401 and r.json()["detail"] == "unknown token"


def test_sign_in_and_revoke(api: Api) -> None:
    bad = api.client.post("/api/auth/token", data={"username": "admin", "password": "nope"})
    assert bad.status_code == 401 and bad.json()["detail"] == "wrong username or password"
    r = api.client.post("/api/auth/token", data={"username": "annotator", "password": PASSWORD})
    token = r.json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/auth/me", headers=h).json() == {
        "username": "annotator", "role": "annotator", "active": True,
        "must_change_password": False}
    assert api.client.post("/api/auth/revoke", headers=h).status_code == 204
    r = api.client.get("/api/auth/me", headers=h)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_expired_token(api: Api) -> None:
    from datetime import timedelta

    from labelpilot import users

    with api.ws.engine.begin() as conn:
        token, _ = users.issue_token(conn, users.get_user(conn, "reviewer"),
                                     lifetime=timedelta(seconds=-1))
    r = api.client.get("/api/project", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_users_admin_only(api: Api) -> None:
    assert api.get("reviewer", "/api/users").status_code == 403
    body = {"username": "ann2", "password": "password123", "role": "annotator"}
    assert api.post("annotator", "/api/users", json=body).status_code == 403
    r = api.post("admin", "/api/users", json=body)
    assert r.status_code == 201 and r.json()["role"] == "annotator"
    assert api.post("admin", "/api/users", json=body).status_code == 409  # exists
    assert {u["username"] for u in api.get("admin", "/api/users").json()} >= {"ann2", "admin"}
    r = api.patch("admin", "/api/users/ann2", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    r = api.client.post("/api/auth/token", data={"username": "ann2", "password": "password123"})
    assert r.status_code == 401
    assert api.patch("admin", "/api/users/ghost", json={"active": False}).status_code == 404


def test_project(api: Api) -> None:
    p = api.get("annotator", "/api/project").json()
    assert p["labels"] == ["cat", "dog"] and p["stats"]["images"] == 3
    assert api.patch("reviewer", "/api/project", json={"add_labels": ["cow"]}).status_code == 403
    r = api.patch("admin", "/api/project", json={"add_labels": ["cow"], "name": "farm"})
    assert r.status_code == 200 and r.json()["labels"] == ["cat", "dog", "cow"]
    assert api.ws.config.labels[-1] == "cow" and api.ws.config.name == "farm"


def test_list_images_with_filters(api: Api) -> None:
    r = api.get("annotator", "/api/images")
    assert r.json()["count"] == 3 and r.json()["data"][0]["annotations"] == 2
    assert api.get("annotator", "/api/images", params={"split": "val"}).json()["count"] == 0
    assert api.get("annotator", "/api/images", params={"label": "dog"}).json()["count"] == 3
    assert api.get("annotator", "/api/images", params={"source": "model:x@1"}).json()["count"] == 0
    assert api.get("annotator", "/api/images",
                   params={"review_state": "new", "limit": 2}).json()["count"] == 3
    assert len(api.get("annotator", "/api/images", params={"limit": 2}).json()["data"]) == 2
    assert api.get("annotator", "/api/images", params={"limit": 0}).status_code == 422
    assert api.get("annotator", "/api/images", params={"split": "x"}).status_code == 422


def test_image_bytes_and_thumbnail(api: Api) -> None:
    img = api.get("annotator", "/api/images").json()["data"][0]
    r = api.get("annotator", f"/api/images/{img['id']}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (img["width"], img["height"])
    t = api.get("annotator", f"/api/images/{img['id']}/thumbnail", params={"size": 32})
    assert t.headers["content-type"] == "image/jpeg"
    # served at the next cached size up (128), never enlarged past the image (64 x 48)
    assert Image.open(io.BytesIO(t.content)).size == (64, 48)
    assert api.get("annotator", "/api/images/999/file").status_code == 404


def test_annotation_crud_and_roles(api: Api) -> None:
    image_id = api.get("annotator", "/api/images").json()["data"][0]["id"]
    r = api.post("annotator", f"/api/images/{image_id}/annotations", json=BOX)
    assert r.status_code == 201, r.text
    a = r.json()
    # an annotator's label is 'edited' until a reviewer accepts it
    assert (a["status"], a["version"], a["created_by"], a["source"]) == (
        "edited", 1, "annotator", "human")
    r = api.patch("annotator", f"/api/annotations/{a['id']}", json={"version": 1, "text": "x"})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["text"] == "x"
    r = api.patch("annotator", f"/api/annotations/{a['id']}",
                  json={"version": 2, "status": "accepted"})
    assert r.status_code == 403
    r = api.patch("reviewer", f"/api/annotations/{a['id']}",
                  json={"version": 2, "status": "accepted"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert api.get("annotator", f"/api/annotations/{a['id']}").json()["version"] == 3
    # once accepted, it is the reviewers' to change or delete
    assert api.delete("annotator", f"/api/annotations/{a['id']}",
                      params={"version": 3}).status_code == 403
    assert api.delete("reviewer", f"/api/annotations/{a['id']}",
                      params={"version": 3}).status_code == 204
    assert api.get("annotator", f"/api/annotations/{a['id']}").status_code == 404


@pytest.mark.parametrize(("body", "status"), [
    # a shape of an unknown type
    ({"label": "cat", "shape": {"type": "ellipse"}}, 422),
    # a box with x2 < x1 passes the schema but not the model
    ({"label": "cat", "shape": {"type": "box", "xyxy": [30, 2, 1, 40]}}, 422),
    # a blank label
    ({"label": " ", "shape": {"type": "box", "xyxy": [1, 2, 3, 4]}}, 422),
    # a degenerate box (no area)
    ({"label": "cat", "shape": {"type": "box", "xyxy": [5, 5, 5, 40]}}, 422),
    # a mask whose size is not the image's
    ({"label": "cat", "shape": {"type": "mask", "rle": "0", "size": [2, 2]}}, 422),
])
def test_bad_annotations_are_422(api: Api, body: dict, status: int) -> None:
    image_id = api.get("annotator", "/api/images").json()["data"][0]["id"]
    r = api.post("annotator", f"/api/images/{image_id}/annotations", json=body)
    assert r.status_code == status, r.text
    assert "detail" in r.json()


def test_stale_edit_gets_409_with_the_current_state(api: Api) -> None:
    image_id = api.get("annotator", "/api/images").json()["data"][0]["id"]
    a = api.post("annotator", f"/api/images/{image_id}/annotations", json=BOX).json()
    first = api.patch("annotator", f"/api/annotations/{a['id']}",
                      json={"version": 1, "label": "dog"})
    assert first.status_code == 200
    stale = api.patch("reviewer", f"/api/annotations/{a['id']}",
                      json={"version": 1, "text": "my edit"})
    assert stale.status_code == 409
    body = stale.json()
    assert body["current"]["label"] == "dog" and body["current"]["version"] == 2
    assert "version 2, not 1" in body["detail"]
    # nothing of the stale edit landed
    assert api.get("annotator", f"/api/annotations/{a['id']}").json()["text"] is None
    assert api.delete("annotator", f"/api/annotations/{a['id']}",
                      params={"version": 1}).status_code == 409


def test_bulk_accept_reject_and_audit(api: Api) -> None:
    image_id = api.get("annotator", "/api/images").json()["data"][0]["id"]
    url = f"/api/images/{image_id}/annotations/bulk"
    assert api.post("annotator", url, json={"status": "accepted"}).status_code == 403
    r = api.post("reviewer", url, json={"status": "rejected"})
    assert r.json() == {"changed": 2}
    anns = api.get("annotator", f"/api/images/{image_id}/annotations").json()["data"]
    assert {a["status"] for a in anns} == {"rejected"} and {a["version"] for a in anns} == {2}
    log = api.get("annotator", f"/api/images/{image_id}/audit").json()
    assert [(e["action"], e["username"]) for e in log] == [("rejected", "reviewer")] * 2


def test_audit_records_before_and_after(api: Api) -> None:
    image_id = api.get("annotator", "/api/images").json()["data"][1]["id"]
    a = api.post("annotator", f"/api/images/{image_id}/annotations", json=BOX).json()
    api.patch("reviewer", f"/api/annotations/{a['id']}", json={"version": 1, "label": "dog"})
    log = api.get("admin", f"/api/images/{image_id}/audit").json()
    assert [e["action"] for e in log] == ["create", "update"]
    assert log[1]["before"]["label"] == "cat" and log[1]["after"]["label"] == "dog"
    assert log[1]["username"] == "reviewer"


def test_review_state_and_split(api: Api) -> None:
    image_id = api.get("annotator", "/api/images").json()["data"][0]["id"]
    url = f"/api/images/{image_id}"
    assert api.patch("annotator", url, json={"review_state": "done"}).status_code == 403
    r = api.patch("reviewer", url, json={"review_state": "done", "split": "val"})
    assert r.status_code == 200 and (r.json()["review_state"], r.json()["split"]) == ("done", "val")
    assert api.patch("reviewer", url, json={"split": "holdout"}).status_code == 422


def test_queue_never_hands_one_image_to_two(api: Api) -> None:
    a = api.post("annotator", "/api/images/next").json()
    b = api.post("reviewer", "/api/images/next").json()
    c = api.post("admin", "/api/images/next").json()
    assert len({a["id"], b["id"], c["id"]}) == 3
    assert a["claimed_by"] == "annotator" and a["review_state"] == "in_review"
    # asking again returns the image already claimed, not a new one
    assert api.post("annotator", "/api/images/next").json()["id"] == a["id"]
    assert api.post("annotator", f"/api/images/{b['id']}/release").status_code == 403
    assert api.post("reviewer", f"/api/images/{b['id']}/release").status_code == 204
    api.patch("reviewer", f"/api/images/{a['id']}", json={"review_state": "done"})
    assert api.post("annotator", "/api/images/next").json()["id"] == b["id"]


def test_claim_lease_expires(api: Api) -> None:
    from datetime import timedelta

    from labelpilot import review, users

    with api.ws.engine.begin() as conn:
        u = users.get_user(conn, "annotator")
        first = review.claim_next(conn, user=u, lease=timedelta(seconds=-1))  # already expired
    b = api.post("reviewer", "/api/images/next").json()
    assert first is not None and b["id"] == first.id  # an expired lease is free again


def test_upload(api: Api, tmp_path: Path) -> None:
    data = write_image(tmp_path / "u.png", 50, 40, seed=77).read_bytes()
    r = api.post("annotator", "/api/images", files={"file": ("../../etc/evil name.png", data)},
                 data={"split": "test"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["file_name"] == "evil name.png" and body["split"] == "test" and body["created"]
    # the same name and bytes again: the image already there
    again = api.post("annotator", "/api/images", files={"file": ("evil name.png", data)})
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    # the same bytes under another name: another image, sharing the stored file
    stored = _blobs(api)
    other = api.post("annotator", "/api/images", files={"file": ("other.png", data)})
    assert other.status_code == 201 and other.json()["id"] != body["id"]
    assert other.json()["file_name"] == "other.png" and other.json()["split"] is None
    assert _blobs(api) == stored
    # another picture under a name that is taken: kept under the name and its hash's start
    data2 = write_image(tmp_path / "v.png", 50, 40, seed=78).read_bytes()
    third = api.post("annotator", "/api/images", files={"file": ("other.png", data2)})
    assert third.status_code == 201
    assert third.json()["file_name"] == f"other-{hashlib.sha256(data2).hexdigest()[:8]}.png"


def _blobs(api: Api) -> list[Path]:
    return sorted(p for p in api.ws.blobs.root.glob("*/*") if p.is_file())


@pytest.mark.parametrize(("name", "payload", "status", "message"), [
    # a text file dressed as a JPEG
    ("photo.jpg", b"<html><script>alert(1)</script></html>", 415, "not a readable image"),
    # a GIF: an image, but not a supported one
    ("anim.gif", "gif", 415, "not supported"),
    # a decompression bomb: small file, 400 million pixels
    ("bomb.png", "bomb", 413, "over the limit of 100,000,000"),
    # over the upload byte limit of this server (2 MB)
    ("big.png", b"\x89PNG" + b"0" * 2_100_000, 413, "over the limit of 2,000,000 bytes"),
    # a truncated image
    ("cut.png", "cut", 415, "not a readable image"),
])
def test_upload_attacks_leave_nothing(api: Api, tmp_path: Path, name: str, payload: object,
                                      status: int, message: str) -> None:
    if payload == "gif":
        buf = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buf, format="GIF")
        payload = buf.getvalue()
    elif payload == "bomb":
        buf = io.BytesIO()
        Image.new("1", (20000, 20000)).save(buf, format="PNG")
        payload = buf.getvalue()
    elif payload == "cut":
        payload = write_image(tmp_path / "c.png", 100, 80).read_bytes()[:300]
    before = _blobs(api)
    r = api.post("annotator", "/api/images", files={"file": (name, payload)})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert _blobs(api) == before
    assert api.get("annotator", "/api/images").json()["count"] == 3


def test_export_job_progress_and_download(api: Api) -> None:
    assert api.post("annotator", "/api/exports", json={"format": "coco"}).status_code == 403
    assert api.post("reviewer", "/api/exports", json={"format": "nope"}).status_code == 400
    r = api.post("reviewer", "/api/exports", json={"format": "yolo", "status": "all"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    events = []
    with api.client.stream("GET", f"/api/jobs/{job_id}/events", headers=api.h("annotator")) as s:
        for line in s.iter_lines():
            if line.startswith("data: "):
                events.append(__import__("json").loads(line[6:]))
    assert events[-1]["status"] == "done" and events[-1]["done"] == events[-1]["total"] == 3
    z = api.get("reviewer", f"/api/exports/{job_id}/download")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert "data.yaml" in names
    assert sum(n.startswith("images/train/") and n.endswith(".png") for n in names) == 3
    assert api.get("annotator", "/api/jobs").json()[0]["id"] == job_id


def test_cancel_a_job(make_workspace, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from labelpilot.settings import Settings
    from labelpilot.transfer import import_dataset
    from tests.server.conftest import add_users
    from tests.test_transfer import coco_dir

    ws = make_workspace()
    import_dataset(ws, coco_dir(tmp_path / "c", 8), format="coco")
    add_users(ws)
    with TestClient(create_app(ws, Settings(job_item_delay=0.3, job_workers=1))) as client:
        tok = client.post("/api/auth/token", data={"username": "reviewer",
                                                   "password": PASSWORD}).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        job_id = client.post("/api/exports", json={"format": "coco"}, headers=h).json()["id"]
        deadline = time.monotonic() + 20
        while client.get(f"/api/jobs/{job_id}", headers=h).json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.post(f"/api/jobs/{job_id}/cancel", headers=h).json()["cancel_requested"]
        while (job := client.get(f"/api/jobs/{job_id}", headers=h).json())["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job["status"] == "cancelled" and job["done"] < 8
        assert client.post(f"/api/jobs/{job_id}/cancel", headers=h).status_code == 400
        assert client.get(f"/api/exports/{job_id}/download", headers=h).status_code == 400
    assert not (ws.root / "exports" / f"job-{job_id}.partial").exists()


def test_home_serves_the_ui_or_a_status_page(api: Api, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from labelpilot.server.app import STATIC, create_app

    if (STATIC / "app.js").is_file():
        r = api.client.get("/")
        assert r.status_code == 200 and '<script src="/static/app.js">' in r.text
        assert api.client.get("/static/app.js").status_code == 200
    # Without a built UI: a status page, with user text escaped.
    (tmp_path / "empty").mkdir()
    api.ws.config.name = "<script>alert(1)</script>"
    with TestClient(create_app(api.ws, run_jobs=False, static=tmp_path / "empty")) as client:
        r = client.get("/")
    assert r.status_code == 200 and "&lt;script&gt;" in r.text and "<script>" not in r.text
    assert "3 images" in r.text and "make web" in r.text


def test_first_start_creates_one_admin(make_workspace) -> None:
    from labelpilot import users
    from labelpilot.server.app import ensure_admin

    ws = make_workspace()
    first = ensure_admin(ws)
    assert first is not None and first[0] == "admin" and len(first[1]) >= 12
    with ws.engine.connect() as conn:
        assert users.authenticate(conn, "admin", first[1]).role == "admin"
    assert ensure_admin(ws) is None  # only on a workspace with no users


def test_annotators_cannot_cancel_jobs(api: Api) -> None:
    job_id = api.post("reviewer", "/api/exports", json={"format": "coco"}).json()["id"]
    assert api.post("annotator", f"/api/jobs/{job_id}/cancel").status_code == 403
    assert api.get("annotator", "/api/jobs/999").status_code == 404


def test_recognize_route(make_workspace, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from labelpilot.transfer import import_dataset
    from tests.conftest import page_dataset, page_truth
    from tests.server.conftest import add_users

    ws = make_workspace(task="ocr", labels=["text"])
    import_dataset(ws, page_dataset(tmp_path / "p"), format="icdar")
    add_users(ws)
    with TestClient(create_app(ws)) as client:
        tok = client.post("/api/auth/token", data={"username": "annotator",
                                                   "password": PASSWORD}).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        image_id = client.get("/api/images", headers=h).json()["data"][0]["id"]
        before = client.get(f"/api/images/{image_id}/annotations", headers=h).json()
        quad, text = page_truth()[0]
        r = client.post(f"/api/images/{image_id}/recognize", headers=h,
                        json={"points": [list(p) for p in quad]})
        assert r.status_code == 200, r.text
        assert r.json()["text"] == text and r.json()["model"] == "model:ocr@ppocrv6-small"
        # nothing else changed
        assert client.get(f"/api/images/{image_id}/annotations", headers=h).json() == before
        flat = client.post(f"/api/images/{image_id}/recognize", headers=h,
                           json={"points": [[1, 1], [50, 1], [50, 1], [1, 1]]})
        assert flat.status_code == 422 and "degenerate" in flat.json()["detail"]
        out = client.post(f"/api/images/{image_id}/recognize", headers=h,
                          json={"points": [[1, 1], [900, 1], [900, 20], [1, 20]]})
        assert out.status_code == 422 and "outside" in out.json()["detail"]
        assert client.post(f"/api/images/{image_id}/recognize", headers=h,
                           json={"points": [[1, 1]] * 4, "model": "nope"}).status_code == 404
        assert client.post("/api/images/999/recognize", headers=h,
                           json={"points": [list(p) for p in quad]}).status_code == 404


def test_autolabel_route_runs_a_job(api: Api) -> None:
    assert api.post("annotator", "/api/autolabel", json={}).status_code == 403
    assert api.post("reviewer", "/api/autolabel", json={"model": "nope"}).status_code == 404
    # a detection project has no default model until one is made its pre-labeler
    none = api.post("reviewer", "/api/autolabel", json={"images": "all"})
    assert none.status_code == 400 and "name the model" in none.json()["detail"]
    job_id = api.post("reviewer", "/api/autolabel", json={"images": "all", "model": "ocr"}
                      ).json()["id"]
    deadline = time.monotonic() + 60
    while (job := api.get("reviewer", f"/api/jobs/{job_id}").json())["status"] != "done":
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["result"]["images"] == 3 and job["done"] == 3


def test_sign_in_cookie_serves_reads_only(api: Api) -> None:
    r = api.client.post("/api/auth/token", data={"username": "reviewer", "password": PASSWORD})
    cookie = r.cookies.get("labelpilot_token")
    assert cookie and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    image_id = api.get("reviewer", "/api/images").json()["data"][0]["id"]
    # an <img> request carries the cookie, not a header: reads work
    assert api.client.get(f"/api/images/{image_id}/thumbnail").status_code == 200
    # a write with the cookie alone is refused (no cross-site request can forge one)
    assert api.client.patch(f"/api/images/{image_id}", json={"split": "val"}).status_code == 401
    api.client.post("/api/auth/revoke", headers={"Authorization": f"Bearer {cookie}"})
    assert api.client.get(f"/api/images/{image_id}/thumbnail").status_code == 401


def test_list_images_sorted(api: Api, tmp_path: Path) -> None:
    data = write_image(tmp_path / "a.png", 30, 20, seed=99).read_bytes()
    api.post("annotator", "/api/images", files={"file": ("aaa.png", data)})
    by_name = api.get("annotator", "/api/images", params={"sort": "file_name"}).json()["data"]
    assert [i["file_name"] for i in by_name] == sorted(i["file_name"] for i in by_name)
    assert by_name[0]["file_name"] == "aaa.png"
    by_id = api.get("annotator", "/api/images").json()["data"]
    assert [i["id"] for i in by_id] == sorted(i["id"] for i in by_id)
    assert api.get("annotator", "/api/images", params={"sort": "size"}).status_code == 422


def _finish(api: Api, job_id: int) -> dict:  # type: ignore[type-arg]
    with api.client.stream("GET", f"/api/jobs/{job_id}/events", headers=api.h("reviewer")) as s:
        last = None
        for line in s.iter_lines():
            if line.startswith("data: "):
                last = __import__("json").loads(line[6:])
    assert last is not None
    return dict(last)


def test_masks_not_covering_their_image_are_refused_and_exports_keep_working(api: Api) -> None:
    import numpy as np

    from labelpilot.geometry import rle

    img = api.get("annotator", "/api/images").json()["data"][0]
    size = [img["height"], img["width"]]
    for bad in ("", "0", "1" * 10_000):  # runs adding up to 0 pixels, or to far too many
        r = api.post("annotator", f"/api/images/{img['id']}/annotations",
                     json={"label": "cat", "shape": {"type": "mask", "rle": bad, "size": size}})
        assert r.status_code == 422 and "RLE runs add up to" in r.json()["detail"], r.text
    ok = np.zeros(size, np.uint8)
    ok[5:20, 10:30] = 1
    r = api.post("reviewer", f"/api/images/{img['id']}/annotations", json={
        "label": "cat", "shape": {"type": "mask", "rle": rle.encode(ok), "size": size}})
    assert r.status_code == 201, r.text
    for fmt in ("labelme", "yolo-seg", "cvat", "labelstudio", "masks", "coco"):
        job = api.post("reviewer", "/api/exports", json={"format": fmt}).json()
        assert _finish(api, job["id"])["status"] == "done", fmt


def test_a_failed_export_leaves_no_partial_folder(api: Api, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    from labelpilot.formats import get_format

    def broken(self, dataset, dest):  # type: ignore[no-untyped-def]
        (dest / "half-written.json").write_text("{")
        raise OSError("No space left on device")

    monkeypatch.setattr(type(get_format("coco")), "save", broken)
    job = api.post("reviewer", "/api/exports", json={"format": "coco"}).json()
    done = _finish(api, job["id"])
    assert done["status"] == "failed" and "No space left" in done["error"]
    assert not list((api.ws.root / "exports").glob("*"))


def test_an_event_stream_ends_when_its_user_is_deactivated(make_workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import threading

    from fastapi.testclient import TestClient

    from labelpilot.server.app import create_app
    from labelpilot.settings import Settings
    from labelpilot.transfer import import_dataset
    from tests.server.conftest import add_users
    from tests.test_transfer import coco_dir

    ws = make_workspace()
    import_dataset(ws, coco_dir(tmp_path / "c", 8), format="coco")
    add_users(ws)
    with TestClient(create_app(ws, Settings(job_item_delay=0.5, job_workers=1))) as client:
        tok = {u: client.post("/api/auth/token", data={"username": u, "password": PASSWORD}
                              ).json()["access_token"] for u in ("reviewer", "admin")}
        client.cookies.clear()
        job = client.post("/api/exports", json={"format": "coco"},
                          headers={"Authorization": f"Bearer {tok['reviewer']}"}).json()
        events = []
        with client.stream("GET", f"/api/jobs/{job['id']}/events",
                           headers={"Authorization": f"Bearer {tok['reviewer']}"}) as s:
            for line in s.iter_lines():
                if line.startswith("data: "):
                    events.append(line)
                    if len(events) == 1:  # the admin deactivates the follower meanwhile
                        threading.Thread(target=client.patch, args=("/api/users/reviewer",),
                                         kwargs={"json": {"active": False}, "headers": {
                                             "Authorization": f"Bearer {tok['admin']}"}}).start()
        status = client.get(f"/api/jobs/{job['id']}",
                            headers={"Authorization": f"Bearer {tok['admin']}"}).json()["status"]
        assert status in ("queued", "running")  # the stream ended before the job did


def test_an_event_stream_follows_signals_not_the_clock(make_workspace, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The stream reads its job when the job is signalled to have changed. With its
    fallback look pushed to a minute, it still follows every change, made on PostgreSQL by
    another server (NOTIFY); idle on PostgreSQL, it does not touch the database."""
    import json
    import threading

    from fastapi.testclient import TestClient

    from labelpilot.jobs import engine
    from labelpilot.server.app import create_app
    from labelpilot.server.routes import jobs as job_routes
    from labelpilot.settings import Settings
    from labelpilot.store import jobs as rows
    from labelpilot.workspace import Workspace
    from tests.jobs.test_engine import checkouts, listening, settled
    from tests.server.conftest import add_users

    monkeypatch.setattr(job_routes, "SSE_CHECK_S", 60.0)
    ws = make_workspace()
    add_users(ws)
    postgres = ws.engine.dialect.name == "postgresql"
    with ws.transaction() as conn:
        job_id = engine.submit(conn, kind="export", params={}, user=None,
                               known=["export"]).id
    writer = Workspace.open(ws.root) if postgres else ws  # PostgreSQL: another server
    taken = checkouts(ws)
    events: list[dict] = []
    with TestClient(create_app(ws, Settings(), run_jobs=False)) as client:
        tok = client.post("/api/auth/token", data={"username": "reviewer", "password": PASSWORD}
                          ).json()["access_token"]
        client.cookies.clear()
        first = threading.Event()

        def follow() -> None:
            with client.stream("GET", f"/api/jobs/{job_id}/events",
                               headers={"Authorization": f"Bearer {tok}"}) as s:
                for line in s.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                        first.set()

        t = threading.Thread(target=follow)
        t.start()
        try:
            assert first.wait(20)
            if postgres:
                listening(ws)
                settled(taken)
                idle = len(taken)
                time.sleep(2.0)  # followed by polling, the stream read twice a second
                assert len(taken) == idle  # (SQLite: a look every second, for jobs
                # another process runs, which it is not told of)
            for done in (1, 2):
                with writer.transaction() as conn:
                    rows.set_job(conn, job_id, status="running", total=3, done=done)
                time.sleep(0.5)
            with writer.transaction() as conn:
                rows.set_job(conn, job_id, status="done", total=3, done=3)
            t.join(20)
            assert not t.is_alive(), "the stream did not end with the job"
        finally:
            if writer is not ws:
                writer.close()
    assert [(e["status"], e["done"]) for e in events] == [
        ("queued", 0), ("running", 1), ("running", 2), ("done", 3)]


@pytest.mark.parametrize(("url", "body", "extra"), [
    ("/api/images/{image}/annotations",
     {"label": "cat", "shape": {"type": "box", "xyxy": [1, 2, 30, 40]}}, "colour"),
    ("/api/images/{image}/annotations/bulk", {"status": "accepted"}, "only_stauts"),
    ("/api/images/{image}/recognize", {"points": [[0, 0], [9, 0], [9, 9], [0, 9]]}, "modle"),
    ("/api/users", {"username": "newcomer", "password": "long-password", "role": "annotator"},
     "email"),
    ("/api/exports", {"format": "coco"}, "splits"),
    ("/api/train", {"epochs": 1}, "epoch"),
    ("/api/models/yolox-nano/optimize", {"int8": True}, "in8"),
])
def test_a_misspelt_field_is_said_not_ignored(api: Api, url: str, body: dict, extra: str) -> None:  # type: ignore[type-arg]
    """Every request body refuses fields it does not know (422 naming the field), and the
    request does nothing."""
    image = api.get("admin", "/api/images").json()["data"][0]["id"]
    url = url.format(image=image)
    jobs = len(api.get("admin", "/api/jobs").json())
    anns = len(api.get("admin", f"/api/images/{image}/annotations").json()["data"])
    r = api.post("admin", url, json={**body, extra: 1})
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == extra and e["type"] == "extra_forbidden"
               for e in r.json()["detail"]), r.text
    assert len(api.get("admin", "/api/jobs").json()) == jobs
    assert len(api.get("admin", f"/api/images/{image}/annotations").json()["data"]) == anns
    assert "newcomer" not in {u["username"] for u in api.get("admin", "/api/users").json()}


def test_times_carry_their_zone(api: Api) -> None:
    """RFC 3339 with the zone (the store reads UTC back without one; a browser would read
    such a time as its own local time)."""
    from datetime import datetime

    image = api.get("annotator", "/api/images").json()["data"][0]
    job = api.post("admin", "/api/exports", json={"format": "coco"}).json()
    for value in (image["created_at"], job["created_at"]):
        assert datetime.fromisoformat(value).utcoffset() is not None, value


def test_security_headers_and_head(api: Api) -> None:
    r = api.client.get("/")
    assert r.status_code == 200
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert api.client.head("/").status_code == 200
    assert "Content-Security-Policy" not in api.client.get("/docs").headers  # Swagger's CDN
    assert api.get("annotator", "/api/project").headers["X-Content-Type-Options"] == "nosniff"


def test_expired_tokens_are_purged(api: Api) -> None:
    from datetime import timedelta

    from labelpilot import users
    from labelpilot.store import users as rows

    with api.ws.transaction() as conn:
        old, _ = users.issue_token(conn, users.get_user(conn, "annotator"), timedelta(days=-2))
        fresh, _ = users.issue_token(conn, users.get_user(conn, "annotator"), timedelta(hours=1))
    with api.ws.engine.connect() as conn:
        assert rows.token_owner(conn, users.token_digest(old)) is None
        assert rows.token_owner(conn, users.token_digest(fresh)) is not None


def test_a_full_disk_is_said_plainly(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    import errno

    from labelpilot.store.blobs import BlobStore

    def full(self, sha256, suffix, data):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(BlobStore, "put", full)
    png = write_image(tmp_path / "new.png", 40, 30, seed=77).read_bytes()
    r = api.post("annotator", "/api/images", files={"file": ("new.png", png)})
    assert r.status_code == 507 and "disk is full" in r.json()["detail"]
    assert api.get("annotator", "/api/images").json()["count"] == 3
