"""The segmentation commands end to end: import masks, eval-interactive, models add and
convert, segment everything through autolabel."""

import json
from pathlib import Path

from tests.cli.test_cli import run
from tests.server.test_segment_api import scenes_dataset

KEYS = ("instances", "noc85", "noc90", "miou_at_1", "miou_at_3", "miou_at_5",
        "click_latency_p50_ms", "click_latency_p95_ms")


def workspace(tmp_path: Path, db_url: str | None) -> Path:
    ws = tmp_path / "ws"
    extra = ["--database-url", db_url] if db_url else []
    assert run("init", ws, "--task", "segment", *extra)[0] == 0
    src, _ = scenes_dataset(tmp_path / "scenes", 3)
    code, out, err = run("import", ws, src, "--format", "masks", "--split", "test", "--json")
    assert code == 0, err
    assert json.loads(out)["annotations_added"] == 6
    return ws


def test_eval_interactive_json_and_table(tmp_path: Path, db_url: str | None) -> None:
    ws = workspace(tmp_path, db_url)
    code, out, err = run("eval-interactive", ws, "--split", "test", "--max-clicks", "5", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert all(k in r for k in KEYS) and r["instances"] == 6 and r["model"] == "model:graphcut@1"
    assert 1 <= r["noc90"] <= 5 and 0 <= r["miou_at_1"] <= r["miou_at_5"] + 1e-9
    assert r["miou_at_5"] <= 1
    assert len(r["miou_curve"]) == 5
    code, out, _ = run("eval-interactive", ws, "--first", "box", "--max-clicks", "3")
    assert code == 0 and "noc90" in out
    code, _, err = run("eval-interactive", ws, "--split", "train")
    assert code != 0 and "no accepted masks or polygons" in err
    code, _, err = run("eval-interactive", ws, "--first", "scribble")
    assert code != 0 and "click or box" in err


def test_models_add_convert_and_segment_everything(tmp_path: Path, shared: Path,
                                                   db_url: str | None) -> None:
    ws = workspace(tmp_path, db_url)
    code, out, _ = run("models", "catalogue", "--json")
    assert code == 0 and {"deeplabv3-pascal", "selfie-person"} <= {e["name"] for e in json.loads(out)}
    code, out, err = run("models", "add", ws, "deeplabv3-pascal", "--from",
                         shared / "models" / "deeplabv3_mnv2_pascal_257.onnx")
    assert code == 0, err
    code, _, err = run("models", "add", ws, "selfie-person", "--from",
                       shared / "models" / "yolox_nano_416.onnx")
    assert code != 0 and "SHA-256" in err
    code, out, err = run("models", "convert", ws, "tiny-sam", "--arch", "sam_tiny")
    assert code == 0, err
    code, out, _ = run("models", "list", ws, "--json")
    names = {m["name"]: m for m in json.loads(out)}
    assert names["tiny-sam"]["task"] == "segment" and "graphcut" in names
    # without --model, eval-interactive now takes the installed SAM-family model
    code, out, err = run("eval-interactive", ws, "--max-clicks", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["model"] == "model:tiny-sam@1"
    # segment everything on every image, as a job, with the graph cut
    code, out, err = run("autolabel", ws, "--model", "graphcut", "--images", "all", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["kind"] == "segment-everything" and job["status"] == "done"
    assert job["result"]["added"] > 0
    code, out, _ = run("stats", ws, "--json")
    assert json.loads(out)["annotations_by_source"].get("model:graphcut@1", 0) == job["result"]["added"]
