"""The analytics over the API: the report's panels with their figures, kept until the data
changes, and the HTML report to download."""

from __future__ import annotations

from tests.server.conftest import Api


def test_analytics_panels_cached_until_the_data_changes(api: Api) -> None:
    r = api.get("reviewer", "/api/analytics")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["cached"] is False
    panels = {p["key"]: p for p in body["panels"]}
    per_class = panels["labels_per_class"]
    assert per_class["svg"].lstrip().startswith("<?xml") and per_class["why_not"] is None
    # the imported COCO set: two classes, all in train, as the project's stats say
    stats = api.get("reviewer", "/api/project").json()["stats"]
    totals = dict(zip(per_class["data"]["x"], per_class["data"]["totals"], strict=True))
    assert totals == {k: v for k, v in stats["annotations_by_label"].items() if v}
    assert set(per_class["data"]["series"]) == {"train"}
    # no model has proposed anything: said, not drawn
    assert panels["proposal_outcomes"]["svg"] is None
    assert "no model has made proposals yet" in panels["proposal_outcomes"]["why_not"]
    again = api.get("admin", "/api/analytics").json()
    assert again["cached"] is True and again["stamp"] == body["stamp"]
    image_id = api.get("admin", "/api/images").json()["data"][0]["id"]
    assert api.post("admin", f"/api/images/{image_id}/annotations", json={
        "label": "dog", "shape": {"type": "box", "xyxy": [1, 1, 20, 20]}}).status_code == 201
    third = api.get("admin", "/api/analytics").json()
    assert third["cached"] is False and third["stamp"] != body["stamp"]
    totals3 = dict(zip(*(third["panels"][0]["data"][k] for k in ("x", "totals")), strict=True))
    assert totals3["dog"] == totals.get("dog", 0) + 1


def test_report_download_is_one_html_file(api: Api) -> None:
    r = api.get("reviewer", "/api/analytics/report.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "attachment" in r.headers["content-disposition"]
    assert r.text.startswith("<!doctype html>") and "<svg" in r.text
    assert api.get("annotator", "/api/analytics/report.html").status_code == 403
