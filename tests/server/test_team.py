"""A team's labeling over the API (SQLite and PostgreSQL): images assigned to people and
the queues that follow the assignment, the reviewers' queue, tags per image, attributes
per class checked on every person's edit."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from labelpilot import users
from labelpilot.annotations import Polygon
from labelpilot.geometry import rle
from tests.server.conftest import PASSWORD, Api


def _ids(api: Api) -> list[int]:
    return [i["id"] for i in api.get("admin", "/api/images", params={"sort": "file_name"}).json()["data"]]


def _login(api: Api, name: str, role: str = "annotator") -> dict[str, str]:
    with api.ws.transaction() as conn:
        users.add_user(conn, username=name, password=PASSWORD, role=role)
    tok = api.client.post("/api/auth/token", data={"username": name, "password": PASSWORD}
                          ).json()["access_token"]
    api.client.cookies.clear()
    return {"Authorization": f"Bearer {tok}"}


def test_assigned_images_go_to_their_person_first_and_to_no_one_else(api: Api) -> None:
    a, b, c = _ids(api)
    maria = _login(api, "maria")
    # b to the annotator, c to maria: the annotator's queue starts with b and never gives c
    r = api.post("reviewer", "/api/images/assign", json={"image_ids": [b], "assignees": ["annotator"]})
    assert r.json() == {"assigned": 1, "by_assignee": {"annotator": 1}}
    api.post("reviewer", "/api/images/assign", json={"image_ids": [c], "assignees": ["maria"]})
    first = api.post("annotator", "/api/images/next").json()
    assert first["id"] == b and first["assignee"] == "annotator"
    api.patch("annotator", f"/api/images/{b}", json={"review_state": "submitted"})
    assert api.post("annotator", "/api/images/next").json()["id"] == a  # unassigned next
    api.patch("annotator", f"/api/images/{a}", json={"review_state": "submitted"})
    assert api.post("annotator", "/api/images/next").status_code == 204  # c is maria's
    assert api.client.post("/api/images/next", headers=maria).json()["id"] == c

    # the list filters by assignee; the history says who assigned what
    mine = api.get("admin", "/api/images", params={"assignee": "maria"}).json()
    assert [i["id"] for i in mine["data"]] == [c]
    nobody = api.get("admin", "/api/images", params={"assignee": "@unassigned"}).json()
    assert [i["id"] for i in nobody["data"]] == [a]
    entries = api.get("admin", f"/api/images/{c}/audit").json()
    assert any(e["action"] == "assign" and e["after"] == {"assignee": "maria"}
               and e["username"] == "reviewer" for e in entries)
    stats = api.get("admin", "/api/project").json()["stats"]
    assert stats["images_by_assignee"] == {"annotator": 1, "maria": 1, "nobody": 1}


def test_images_are_shared_out_in_turn_and_reassigning_lets_a_claim_go(api: Api) -> None:
    ids = _ids(api)
    _login(api, "maria")
    r = api.post("admin", "/api/images/assign",
                 json={"image_ids": ids, "assignees": ["annotator", "maria"]}).json()
    assert r == {"assigned": 3, "by_assignee": {"annotator": 2, "maria": 1}}
    got = {i["id"]: i["assignee"] for i in api.get("admin", "/api/images").json()["data"]}
    assert [got[i] for i in ids] == ["annotator", "maria", "annotator"]
    # the annotator holds the first image; given to maria, the claim is let go
    held = api.post("annotator", "/api/images/next").json()
    assert held["id"] == ids[0]
    api.post("admin", "/api/images/assign", json={"image_ids": [ids[0]], "assignees": ["maria"]})
    now = api.get("admin", f"/api/images/{ids[0]}").json()
    assert now["assignee"] == "maria" and now["claimed_by"] is None
    # [] assigns to no one
    api.post("admin", "/api/images/assign", json={"image_ids": ids, "assignees": []})
    assert {i["assignee"] for i in api.get("admin", "/api/images").json()["data"]} == {None}


def test_assigning_to_an_unknown_or_deactivated_person_is_refused_and_changes_nothing(api: Api) -> None:
    ids = _ids(api)
    r = api.post("admin", "/api/images/assign", json={"image_ids": ids, "assignees": ["ghost"]})
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    _login(api, "gone")
    with api.ws.transaction() as conn:
        users.update_user(conn, "gone", active=False)
    r = api.post("admin", "/api/images/assign", json={"image_ids": ids, "assignees": ["gone"]})
    assert r.status_code == 400 and "deactivated" in r.json()["detail"]
    names = [u["username"] for u in api.get("reviewer", "/api/users/assignable").json()]
    assert "gone" not in names and {"annotator", "reviewer", "admin"} <= set(names)
    assert api.get("annotator", "/api/users/assignable").status_code == 403
    r = api.post("admin", "/api/images/assign",
                 json={"image_ids": [ids[0], 999999], "assignees": ["annotator"]})
    assert r.status_code == 404 and "999999" in r.json()["detail"]
    assert {i["assignee"] for i in api.get("admin", "/api/images").json()["data"]} == {None}


def test_the_review_queue_hands_reviewers_the_submitted_images(api: Api) -> None:
    a, b, _ = _ids(api)
    assert api.post("reviewer", "/api/images/next", params={"queue": "review"}).status_code == 204
    for i in (b, a):
        r = api.patch("annotator", f"/api/images/{i}", json={"review_state": "submitted"})
        assert r.status_code == 200
    # the reviewer holds an image of the labeling queue: the review queue still gives a
    # submitted one (oldest id first)
    api.post("reviewer", "/api/images/next")
    got = api.post("reviewer", "/api/images/next", params={"queue": "review"}).json()
    assert got["id"] == a and got["review_state"] == "submitted"
    # annotators have no review queue
    r = api.post("annotator", "/api/images/next", params={"queue": "review"})
    assert r.status_code == 403
    assert api.post("reviewer", "/api/images/next", params={"queue": "other"}).status_code == 422


def test_tags_per_image(api: Api) -> None:
    a, b, _ = _ids(api)
    r = api.patch("annotator", f"/api/images/{a}", json={"tags": [" night ", "blurry", "night"]})
    assert r.status_code == 200 and r.json()["tags"] == ["night", "blurry"]
    api.patch("annotator", f"/api/images/{b}", json={"tags": ["indoor"]})
    assert api.get("admin", "/api/project").json()["tags"] == ["blurry", "indoor", "night"]
    found = api.get("admin", "/api/images", params={"tag": "night"}).json()["data"]
    assert [i["id"] for i in found] == [a]
    assert api.patch("annotator", f"/api/images/{a}", json={"tags": [""]}).status_code == 422
    assert api.get("admin", f"/api/images/{a}").json()["tags"] == ["night", "blurry"]
    history = api.get("admin", f"/api/images/{a}/audit").json()
    assert [e["after"] for e in history if e["action"] == "tags"] == [{"tags": ["night", "blurry"]}]
    # a done image's tags are a reviewer's to change
    api.patch("admin", f"/api/images/{a}", json={"review_state": "done"})
    assert api.patch("annotator", f"/api/images/{a}", json={"tags": []}).status_code == 403
    assert api.patch("reviewer", f"/api/images/{a}", json={"tags": []}).json()["tags"] == []


SCHEMA = [{"name": "occluded", "type": "checkbox"},
          {"name": "colour", "type": "select", "values": ["black", "white", "ginger"]},
          {"name": "age", "type": "number", "min": 0, "max": 30},
          {"name": "note", "type": "text"}]


def test_attributes_per_class_are_declared_and_checked_on_edits(api: Api) -> None:
    r = api.patch("admin", "/api/project/labels/cat", json={"attributes": SCHEMA})
    assert r.status_code == 200, r.text
    declared = r.json()["label_attributes"]["cat"]
    assert [(s["name"], s["default"]) for s in declared] == [
        ("occluded", False), ("colour", "black"), ("age", 0), ("note", "")]
    image = _ids(api)[0]
    box = {"type": "box", "xyxy": [1, 2, 30, 40]}
    good = {"occluded": True, "colour": "ginger", "age": 3.5, "note": "by the door", "source_id": "x"}
    r = api.post("annotator", f"/api/images/{image}/annotations",
                 json={"label": "cat", "shape": box, "attributes": good})
    assert r.status_code == 201 and r.json()["attributes"] == good
    ann = r.json()
    for bad, word in (({"colour": "blue"}, "colour"), ({"age": 31}, "age"),
                      ({"occluded": "yes"}, "occluded"), ({"age": "3"}, "age")):
        r = api.patch("annotator", f"/api/annotations/{ann['id']}",
                      json={"version": ann["version"], "attributes": {**good, **bad}})
        assert r.status_code == 422 and word in r.json()["detail"], r.text
    # a dog has no schema: anything goes
    r = api.post("annotator", f"/api/images/{image}/annotations",
                 json={"label": "dog", "shape": box, "attributes": {"colour": "blue"}})
    assert r.status_code == 201
    # ... until it becomes a cat
    dog = r.json()
    r = api.patch("annotator", f"/api/annotations/{dog['id']}",
                  json={"version": dog["version"], "label": "cat"})
    assert r.status_code == 422 and "colour" in r.json()["detail"]
    # a broken schema is refused, naming the item; [] takes the schema away
    for bad_schema in ([{"name": "x", "type": "slider"}], [{"name": "x", "type": "select"}],
                       [{"name": "x", "type": "number", "min": 5, "max": 1}],
                       [{"name": "x", "type": "text"}, {"name": "x", "type": "text"}]):
        r = api.patch("admin", "/api/project/labels/cat", json={"attributes": bad_schema})
        assert r.status_code == 422 and "item" in r.json()["detail"], r.text
    assert api.patch("reviewer", "/api/project/labels/cat", json={"attributes": []}).status_code == 403
    r = api.patch("admin", "/api/project/labels/cat", json={"attributes": []})
    assert "cat" not in r.json()["label_attributes"]


def _shape(api: Api, image: int, shape: dict[str, Any], who: str = "reviewer") -> dict[str, Any]:
    r = api.post(who, f"/api/images/{image}/annotations", json={"label": "cat", "shape": shape})
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_merge_and_subtract_shapes(api: Api) -> None:
    image = _ids(api)[0]
    a = _shape(api, image, {"type": "box", "xyxy": [0, 0, 20, 20]})
    b = _shape(api, image, {"type": "box", "xyxy": [10, 0, 30, 20]})
    # union of two overlapping boxes: one polygon, 600 px², the other gone
    r = api.post("annotator", f"/api/annotations/{a['id']}/combine",
                 json={"version": a["version"], "other": b["id"], "other_version": b["version"],
                       "op": "union"})
    assert r.status_code == 403  # an annotator may not change or delete accepted shapes
    r = api.post("reviewer", f"/api/annotations/{a['id']}/combine",
                 json={"version": a["version"], "other": b["id"], "other_version": b["version"],
                       "op": "union"})
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["shape"]["type"] == "polygon"
    assert Polygon(merged["shape"]["points"]).area() == pytest.approx(600)
    assert api.get("admin", f"/api/annotations/{b['id']}").status_code == 404
    # a hole cut out of it stays a polygon with a hole
    c = _shape(api, image, {"type": "box", "xyxy": [5, 5, 10, 10]})
    r = api.post("reviewer", f"/api/annotations/{a['id']}/combine",
                 json={"version": merged["version"], "other": c["id"], "other_version": c["version"],
                       "op": "subtract"})
    holed = r.json()["shape"]
    assert len(holed["holes"]) == 1
    assert Polygon(holed["points"], holed["holes"]).area() == pytest.approx(575)
    assert api.get("admin", f"/api/annotations/{c['id']}").status_code == 200  # kept
    # two pieces apart: one mask with both
    d = _shape(api, image, {"type": "box", "xyxy": [40, 0, 50, 10]})
    now = api.get("admin", f"/api/annotations/{a['id']}").json()
    r = api.post("reviewer", f"/api/annotations/{a['id']}/combine",
                 json={"version": now["version"], "other": d["id"], "other_version": d["version"],
                       "op": "union"})
    assert r.json()["shape"]["type"] == "mask"
    px = rle.decode(r.json()["shape"]["rle"], *r.json()["shape"]["size"])
    assert px[2, 45] and px[2, 15] and not px[2, 35] and not px[7, 7]
    # a stale version changes nothing; cutting everything away is refused
    e = _shape(api, image, {"type": "box", "xyxy": [0, 30, 10, 40]})
    f = _shape(api, image, {"type": "box", "xyxy": [0, 30, 10, 40]})
    r = api.post("reviewer", f"/api/annotations/{e['id']}/combine",
                 json={"version": e["version"] + 5, "other": f["id"], "other_version": f["version"],
                       "op": "union"})
    assert r.status_code == 409
    r = api.post("reviewer", f"/api/annotations/{e['id']}/combine",
                 json={"version": e["version"], "other": f["id"], "other_version": f["version"],
                       "op": "subtract"})
    assert r.status_code == 422 and "nothing would be left" in r.json()["detail"]
    assert api.get("admin", f"/api/annotations/{f['id']}").status_code == 200
    assert api.get("admin", f"/api/annotations/{e['id']}").json()["version"] == e["version"]


def _rgb(im: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    r, g, b = im.getpixel((x, y))  # type: ignore[misc]
    return int(r), int(g), int(b)


def test_thumbnails_with_the_labels_drawn_over_them(api: Api) -> None:
    image = _ids(api)[0]
    before = api.get("admin", "/api/images", params={"sort": "file_name"}).json()["data"][0]
    # a red class, a box over the whole left half
    api.patch("admin", "/api/project/labels/cat", json={"color": "#ff0000"})
    w, h = before["width"], before["height"]
    box = _shape(api, image, {"type": "box", "xyxy": [2, 2, w // 2, h - 2]})
    after = api.get("admin", "/api/images", params={"sort": "file_name"}).json()["data"][0]
    assert after["labels_version"] != before["labels_version"]
    plain = api.get("admin", f"/api/images/{image}/thumbnail", params={"size": 256})
    drawn = api.get("admin", f"/api/images/{image}/thumbnail",
                    params={"size": 256, "shapes": "true", "v": after["labels_version"]})
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/jpeg"
    p = Image.open(io.BytesIO(plain.content)).convert("RGB")
    d = Image.open(io.BytesIO(drawn.content)).convert("RGB")
    assert p.size == d.size
    k = d.width / w
    # on the box's left edge: red; far from it: as the plain thumbnail
    r, g, b = _rgb(d, round(2 * k), d.height // 2)
    assert r > 180 and g < 90 and b < 90, (r, g, b)
    far = (d.width - 3, d.height // 2)
    assert sum(abs(x - y) for x, y in zip(_rgb(d, *far), _rgb(p, *far), strict=True)) < 40
    # rejected labels are not drawn
    api.patch("reviewer", f"/api/annotations/{box['id']}",
              json={"version": box["version"], "status": "rejected"})
    gone = api.get("admin", f"/api/images/{image}/thumbnail", params={"size": 256, "shapes": "true"})
    g2 = _rgb(Image.open(io.BytesIO(gone.content)).convert("RGB"), round(2 * k), d.height // 2)
    assert not (g2[0] > 180 and g2[1] < 90), g2
