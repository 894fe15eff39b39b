"""The role matrix, cell by cell: every action in `users.PERMISSIONS` tried over the API by
each role (SQLite and PostgreSQL). Below the action's role: 403 and nothing changed; at
or above it: not 403."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labelpilot import users
from labelpilot.users import PERMISSIONS, ROLES
from tests.server.conftest import PASSWORD, Api

BOX = {"label": "cat", "shape": {"type": "box", "xyxy": [1, 2, 30, 40]}}


def _image(api: Api) -> int:
    return int(api.get("admin", "/api/images").json()["data"][0]["id"])


def _annotation(api: Api, author: str) -> dict:  # type: ignore[type-arg]
    r = api.post(author, f"/api/images/{_image(api)}/annotations", json=BOX)
    assert r.status_code == 201, r.text
    return dict(r.json())


def annotate(api: Api, role: str) -> int:
    return int(api.post(role, f"/api/images/{_image(api)}/annotations", json=BOX).status_code)


def edit_reviewed(api: Api, role: str) -> int:
    a = _annotation(api, "reviewer")  # accepted
    assert a["status"] == "accepted"
    # re-open it (un-accept) with a text change
    return int(api.patch(role, f"/api/annotations/{a['id']}",
                         json={"version": a["version"], "text": "changed"}).status_code)


def edit_done_image(api: Api, role: str) -> int:
    image_id = _image(api)
    assert api.patch("admin", f"/api/images/{image_id}",
                     json={"review_state": "done"}).status_code == 200
    return int(api.post(role, f"/api/images/{image_id}/annotations", json=BOX).status_code)


def review(api: Api, role: str) -> int:
    a = _annotation(api, "annotator")
    return int(api.patch(role, f"/api/annotations/{a['id']}",
                         json={"version": a["version"], "status": "accepted"}).status_code)


def set_review_state(api: Api, role: str) -> int:
    return int(api.patch(role, f"/api/images/{_image(api)}",
                         json={"review_state": "in_review"}).status_code)


def set_split(api: Api, role: str) -> int:
    return int(api.patch(role, f"/api/images/{_image(api)}", json={"split": "val"}).status_code)


def submit(api: Api, role: str) -> int:
    return int(api.patch(role, f"/api/images/{_image(api)}",
                         json={"review_state": "submitted"}).status_code)


def import_(api: Api, role: str) -> int:
    # an empty archive: the role is checked first (403), else the job is queued (202)
    return int(api.post(role, "/api/imports", data={"format": "coco"},
                        files={"file": ("empty.zip", b"PK\x05\x06" + bytes(18),
                                        "application/zip")}).status_code)


def add_label_class(api: Api, role: str) -> int:
    return int(api.post(role, f"/api/images/{_image(api)}/annotations",
                        json={**BOX, "label": "zebra"}).status_code)


def release_claim(api: Api, role: str) -> int:
    with api.ws.transaction() as conn:
        users.add_user(conn, username="ann2", password=PASSWORD, role="annotator")
    tok = api.client.post("/api/auth/token", data={"username": "ann2", "password": PASSWORD}
                          ).json()["access_token"]
    api.client.cookies.clear()
    claimed = api.client.post("/api/images/next", headers={"Authorization": f"Bearer {tok}"})
    assert claimed.status_code == 200
    return int(api.post(role, f"/api/images/{claimed.json()['id']}/release").status_code)


def assign(api: Api, role: str) -> int:
    return int(api.post(role, "/api/images/assign",
                        json={"image_ids": [_image(api)], "assignees": ["annotator"]}).status_code)


def prelabel(api: Api, role: str) -> int:
    return int(api.post(role, "/api/autolabel", json={"model": "ocr"}).status_code)


def select(api: Api, role: str) -> int:
    return int(api.post(role, "/api/select", json={"strategy": "random", "budget": 1}
                        ).status_code)


def export(api: Api, role: str) -> int:
    return int(api.post(role, "/api/exports", json={"format": "coco"}).status_code)


def view_analytics(api: Api, role: str) -> int:
    return int(api.get(role, "/api/analytics").status_code)


def cancel_job(api: Api, role: str) -> int:
    job = api.post("admin", "/api/exports", json={"format": "coco"}).json()
    return int(api.post(role, f"/api/jobs/{job['id']}/cancel").status_code)


def train(api: Api, role: str) -> int:
    # an invalid body: the role is checked first (403), else validation answers (422)
    return int(api.post(role, "/api/train", json={"task": "nothing"}).status_code)


def optimize(api: Api, role: str) -> int:
    # an invalid body: the role is checked first (403), else validation answers (422)
    return int(api.post(role, "/api/models/ocr/optimize", json={"device": "nothing"}
                        ).status_code)


def edit_project(api: Api, role: str) -> int:
    return int(api.client.patch("/api/project", json={"name": "renamed"},
                                headers=api.h(role)).status_code)


def manage_users(api: Api, role: str) -> int:
    return int(api.get(role, "/api/users").status_code)


TRIES: dict[str, Callable[[Api, str], int]] = {f.__name__: f for f in (
    annotate, edit_reviewed, edit_done_image, submit, review, set_review_state, set_split,
    add_label_class, assign, release_claim, prelabel, select, export, view_analytics,
    cancel_job, train, optimize, edit_project, manage_users)}


TRIES["import"] = import_  # `import` is a keyword: the function has another name


def test_every_action_of_the_matrix_is_tried() -> None:
    assert set(TRIES) == set(PERMISSIONS)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(PERMISSIONS))
def test_role_matrix_cell(api: Api, action: str, role: str) -> None:
    needed = PERMISSIONS[action][0]
    before = api.get("admin", f"/api/images/{_image(api)}/annotations").json()["count"]
    status = TRIES[action](api, role)
    if ROLES.index(role) < ROLES.index(needed):
        assert status == 403, (action, role, status)
    else:
        assert status != 403 and status < 500, (action, role, status)
    if status == 403 and action in ("annotate", "edit_done_image", "add_label_class"):
        after = api.get("admin", f"/api/images/{_image(api)}/annotations").json()["count"]
        assert after == before


def test_model_provenance_cannot_be_made_up(api: Api) -> None:
    r = api.post("annotator", f"/api/images/{_image(api)}/annotations",
                 json={**BOX, "source": "model:imaginary@9"})
    assert r.status_code == 422 and "names no model of this workspace" in r.json()["detail"]
    r = api.post("annotator", f"/api/images/{_image(api)}/annotations",
                 json={**BOX, "source": "model:graphcut@1"})
    assert r.status_code == 201 and r.json()["source"] == "model:graphcut@1"


def test_the_readme_prints_the_matrix() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for action, (role, what) in PERMISSIONS.items():
        cells = " | ".join("yes" if ROLES.index(r) >= ROLES.index(role) else "—" for r in ROLES)
        assert f"| {what} (`{action}`) | {cells} |" in readme, action
