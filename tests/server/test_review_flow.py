"""The review flow on the API (issue 16): done only with every proposal decided, an
annotator's submit for review, a reviewer's send-back with a comment (in the audit log),
and the image's place in a list (the editor's next / previous)."""

from __future__ import annotations

from tests.server.conftest import Api

PROPOSAL = {"label": "cat", "shape": {"type": "box", "xyxy": [2, 2, 20, 20]},
            "status": "predicted", "source": "model:graphcut@1"}


def _images(api: Api) -> list[dict]:  # type: ignore[type-arg]
    return list(api.get("admin", "/api/images").json()["data"])


def test_done_needs_every_proposal_decided(api: Api) -> None:
    image_id = _images(api)[0]["id"]
    url = f"/api/images/{image_id}"
    ids = [api.post("admin", f"{url}/annotations", json=PROPOSAL).json()["id"] for _ in range(2)]
    api.patch("reviewer", f"/api/annotations/{ids[0]}", json={"version": 1, "status": "rejected"})
    r = api.patch("reviewer", url, json={"review_state": "done"})
    assert r.status_code == 409 and r.json()["pending"] == 1
    assert r.json()["detail"] == "1 proposal(s) on this image are still undecided"
    assert api.get("reviewer", url).json()["review_state"] != "done"
    # deciding the rest with the request: accepted, then done, in one transaction
    r = api.patch("reviewer", url, json={"review_state": "done", "pending": "accept"})
    assert r.status_code == 200 and r.json()["review_state"] == "done"
    statuses = {a["id"]: a["status"] for a in api.get(
        "reviewer", f"{url}/annotations").json()["data"]}
    assert (statuses[ids[0]], statuses[ids[1]]) == ("rejected", "accepted")
    last = api.get("admin", f"{url}/audit").json()[-1]
    assert (last["action"], last["username"], last["after"]) == (
        "review_state", "reviewer", {"review_state": "done", "comment": None, "pending": "accept"})


def test_annotators_submit_and_reviewers_send_back_with_a_comment(api: Api) -> None:
    first, second = (i["id"] for i in _images(api)[:2])
    url = f"/api/images/{first}"
    assert api.patch("annotator", url, json={"review_state": "done"}).status_code == 403
    r = api.patch("annotator", url, json={"review_state": "submitted"})
    assert r.status_code == 200 and r.json()["review_state"] == "submitted"
    # the queue hands annotators no submitted image; reviewers still get it
    assert api.post("annotator", "/api/images/next").json()["id"] == second
    # sending back needs a comment that says what to change
    r = api.patch("reviewer", url, json={"review_state": "in_review"})
    assert r.status_code == 400 and "needs a comment" in r.json()["detail"]
    r = api.patch("reviewer", url, json={"review_state": "in_review",
                                         "comment": "the left cat is a dog"})
    assert r.status_code == 200 and r.json()["review_state"] == "in_review"
    last = api.get("annotator", f"{url}/audit").json()[-1]
    assert last["before"] == {"review_state": "submitted"}
    assert last["after"]["comment"] == "the left cat is a dog"
    # the filter lists submitted images for the review queue
    api.patch("annotator", url, json={"review_state": "submitted"})
    listed = api.get("reviewer", "/api/images", params={"review_state": "submitted"}).json()
    assert [i["id"] for i in listed["data"]] == [first]


def test_neighbors_walk_the_list_in_its_filter_and_sort(api: Api) -> None:
    from tests.conftest import write_image

    # upload names out of id order: c, a, b (after the fixture's images)
    for name in ("c.png", "a.png", "b.png"):
        p = write_image(api.ws.root.parent / f"up-{name}", 32, 24, seed=ord(name[0]))
        with p.open("rb") as f:
            assert api.post("admin", "/api/images", files={"file": (name, f, "image/png")}
                            ).status_code == 201
    by_name = {i["file_name"]: i["id"] for i in _images(api)}
    names = sorted(by_name)
    q = {"sort": "file_name"}
    b = api.get("annotator", f"/api/images/{by_name['b.png']}/neighbors", params=q).json()
    i = names.index("b.png")
    assert b == {"position": i + 1, "count": len(names), "previous": by_name[names[i - 1]],
                 "next": by_name[names[i + 1]]}
    first = api.get("annotator", f"/api/images/{by_name[names[0]]}/neighbors", params=q).json()
    assert first["previous"] is None and first["position"] == 1
    # a filtered list: an image that left it keeps its place between the others
    for name in ("a.png", "c.png"):
        api.patch("reviewer", f"/api/images/{by_name[name]}", json={"split": "val"})
    q = {"sort": "file_name", "split": "val"}
    got = api.get("annotator", f"/api/images/{by_name['b.png']}/neighbors", params=q).json()
    assert got == {"position": None, "count": 2, "previous": by_name["a.png"],
                   "next": by_name["c.png"]}
    assert api.get("annotator", "/api/images/999999/neighbors").status_code == 404
    assert api.get("annotator", f"/api/images/{by_name['b.png']}/neighbors",
                   params={"sort": "score"}).status_code == 422


def test_a_score_comes_only_with_the_text_it_scores(api: Api) -> None:
    image_id = _images(api)[0]["id"]
    a = api.post("reviewer", f"/api/images/{image_id}/annotations",
                 json={"label": "cat", "shape": {"type": "box", "xyxy": [1, 1, 9, 9]}}).json()
    url = f"/api/annotations/{a['id']}"
    r = api.patch("reviewer", url, json={"version": a["version"], "score": 0.4})
    assert r.status_code == 422 and "a score is sent only with the text" in r.text
    assert api.patch("reviewer", url, json={"version": a["version"], "text": "x",
                                            "score": 1.5}).status_code == 422
    r = api.patch("reviewer", url, json={"version": a["version"], "text": "AB", "score": 0.4,
                                         "status": "accepted"})
    assert r.status_code == 200
    assert (r.json()["text"], r.json()["score"], r.json()["status"]) == ("AB", 0.4, "accepted")


def test_splits_over_the_api(api: Api) -> None:
    r = api.post("reviewer", "/api/project/splits",
                 json={"ratios": {"train": 2, "test": 1}, "seed": 1})
    assert r.status_code == 200, r.text
    assert r.json()["assigned"] == 3 and r.json()["by_split"] == {"test": 1, "train": 2}
    assert set(r.json()["by_class"]) <= {"cat", "dog", "(no label)"}
    first = _images(api)[0]["id"]
    r = api.post("reviewer", "/api/project/splits", json={"split": "val", "image_ids": [first]})
    assert r.json() == {"assigned": 1, "by_split": {"val": 1},
                        "by_class": r.json()["by_class"]}
    assert api.get("reviewer", f"/api/images/{first}").json()["split"] == "val"
    assert api.post("annotator", "/api/project/splits", json={"split": "val"}).status_code == 403
    r = api.post("reviewer", "/api/project/splits", json={"ratios": {"train": 0}})
    assert r.status_code == 400 and "add up to 0" in r.json()["detail"]
    assert api.post("reviewer", "/api/project/splits",
                    json={"ratios": {"holdout": 1}}).status_code == 422


def test_comments_join_the_images_history(api: Api) -> None:
    first, second = (i["id"] for i in _images(api)[:2])
    other = api.post("reviewer", f"/api/images/{second}/annotations",
                     json={"label": "cat", "shape": {"type": "box", "xyxy": [1, 1, 9, 9]}}).json()
    r = api.post("annotator", f"/api/images/{first}/comments", json={"text": " blurry? "})
    assert r.status_code == 201
    assert (r.json()["action"], r.json()["after"], r.json()["annotation_id"]) == (
        "comment", {"text": "blurry?"}, None)
    r = api.post("annotator", f"/api/images/{first}/comments",
                 json={"text": "x", "annotation_id": other["id"]})
    assert r.status_code == 400 and "is not on image" in r.json()["detail"]
    assert api.post("annotator", f"/api/images/{first}/comments",
                    json={"text": ""}).status_code == 422
    assert api.post("annotator", f"/api/images/{first}/comments",
                    json={"text": "   "}).status_code == 400
    assert [e["action"] for e in api.get("reviewer", f"/api/images/{first}/audit").json()] == [
        "comment"]


def test_jobs_are_refused_before_they_start_when_there_is_nothing_to_do(api: Api) -> None:
    check = api.get("admin", "/api/train/check", params={"task": "detect"}).json()
    assert check["ready"] and check["warnings"] == [
        f"{c}: 3 boxes in the train split; 10 or more of each class are needed to learn it "
        "well (label more, or merge the class)" for c in ("cat", "dog")]
    api.post("reviewer", "/api/project/splits", json={"split": "val"})  # none left in train
    r = api.get("admin", "/api/train/check", params={"task": "detect"})
    assert r.json() == {"ready": False, "images": None, "warnings": [], "reason": (
        "the train split has no accepted boxes to learn from: accept reviewed images' labels "
        "and put them in the train split")}
    r = api.post("admin", "/api/train", json={"task": "detect", "epochs": 1})
    assert r.status_code == 400 and "no accepted boxes" in r.json()["detail"]
    assert api.get("admin", "/api/jobs").json() == []  # nothing was queued
    ocr = api.get("admin", "/api/train/check", params={"task": "ocr-rec"}).json()
    assert not ocr["ready"] and "no accepted text lines" in ocr["reason"]
    assert api.get("annotator", "/api/train/check", params={"task": "detect"}).status_code == 403
    assert api.get("reviewer", "/api/autolabel/check").json()["images"] == 3
    for image in _images(api):
        api.patch("reviewer", f"/api/images/{image['id']}", json={"review_state": "done"})
    r = api.get("reviewer", "/api/autolabel/check").json()
    assert (r["ready"], r["images"]) == (False, 0)
    r = api.post("reviewer", "/api/autolabel", json={"model": "ocr"})
    assert r.status_code == 400 and "no new image to pre-label" in r.json()["detail"]


def test_search_file_names_and_transcriptions(api: Api) -> None:
    images = _images(api)
    first = images[0]
    api.post("reviewer", f"/api/images/{first['id']}/annotations",
             json={"label": "cat", "shape": {"type": "box", "xyxy": [1, 1, 9, 9]},
                   "text": "Exit 50% Off"})

    def found(q: str) -> list[int]:
        return [i["id"] for i in api.get("annotator", "/api/images", params={"q": q}).json()["data"]]

    assert found("exit 50%") == [first["id"]]  # in a transcription, any case
    assert found("50_") == []  # % and _ are text, not wildcards
    name = images[1]["file_name"]
    assert found(name.upper()) == [images[1]["id"]]  # in a file name
    assert found("no such thing") == []
    assert api.get("annotator", f"/api/images/{first['id']}/neighbors",
                   params={"q": "exit"}).json()["count"] == 1


def test_file_names_sort_in_their_natural_order(api: Api) -> None:
    from tests.conftest import write_image

    for name in ("img_10.png", "img_9.png", "IMG_100.png"):
        p = write_image(api.ws.root.parent / f"nat-{name}", 32, 24, seed=len(name) + ord(name[4]))
        with p.open("rb") as f:
            assert api.post("admin", "/api/images", files={"file": (name, f, "image/png")}
                            ).status_code == 201
    listed = [i["file_name"] for i in api.get(
        "annotator", "/api/images", params={"sort": "file_name"}).json()["data"]]
    ours = [n for n in listed if n.lower().startswith("img_")]
    assert ours == ["img_9.png", "img_10.png", "IMG_100.png"]
    ids = {i["file_name"]: i["id"] for i in _images(api)}
    nb = api.get("annotator", f"/api/images/{ids['img_10.png']}/neighbors",
                 params={"sort": "file_name"}).json()
    assert (nb["previous"], nb["next"]) == (ids["img_9.png"], ids["IMG_100.png"])


def test_label_classes_rename_merge_and_colour(api: Api) -> None:
    before = api.get("admin", "/api/project").json()
    n_cat = before["stats"]["annotations_by_label"]["cat"]
    n_dog = before["stats"]["annotations_by_label"]["dog"]
    r = api.client.patch("/api/project/labels/cat", headers=api.h("admin"),
                         json={"color": "#FF8800"})
    assert r.status_code == 200 and r.json()["label_colors"] == {"cat": "#ff8800"}
    r = api.client.patch("/api/project/labels/cat", headers=api.h("admin"), json={"name": "dog"})
    assert r.status_code == 409 and "merge 'cat' into it instead" in r.json()["hint"]
    r = api.client.patch("/api/project/labels/cat", headers=api.h("admin"), json={"name": "kitten"})
    assert r.status_code == 200 and "kitten" in r.json()["labels"] and "cat" not in r.json()["labels"]
    assert r.json()["label_colors"] == {"kitten": "#ff8800"}
    assert "kitten" in api.ws.config.labels and "cat" not in api.ws.config.labels
    r = api.client.patch("/api/project/labels/kitten", headers=api.h("admin"),
                         json={"merge_into": "dog"})
    assert r.status_code == 200 and r.json()["labels"] == ["dog"]
    assert r.json()["stats"]["annotations_by_label"] == {"dog": n_cat + n_dog}
    assert api.client.patch("/api/project/labels/dog", headers=api.h("reviewer"),
                            json={"color": "#000000"}).status_code == 403
    assert api.client.patch("/api/project/labels/nope", headers=api.h("admin"),
                            json={"color": "#000000"}).status_code == 404
