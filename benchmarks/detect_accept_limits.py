"""Where the accept rate of a detector is lost: on the custom auto-label test set (the
same workspace `detect_custom.py` builds), the share of ground-truth boxes found at IoU 0.5
and 0.7 by object size (COCO's small < 32x32 px <= medium < 96x96 px <= large), with
YOLOX-Nano run at several input sizes (the network is fully convolutional; the ONNX input
is re-declared), and the accept rate against the score threshold.

Usage:
    python benchmarks/detect_accept_limits.py [--classes person,car,bowl] [--sizes 416,512,640,800]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
from detect_custom import build, parse_classes

from labelpilot.evaluation.detect import DetBox, GtBox, evaluate_detections
from labelpilot.geometry.iou import box_iou
from labelpilot.models.detect import DetectorModel
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.runtime import sha256_file
from labelpilot.store import repo
from labelpilot.workspace import Workspace


def at_size(base: ModelManifest, size: int, folder: Path) -> DetectorModel:
    m = onnx.load(str(base.file("model")[0]))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = size
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "N"
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(folder / "model.onnx"))
    j = json.loads(base.to_json())
    j["preprocessing"]["input_size"] = [size, size]
    j["files"]["model"] = {"path": "model.onnx", "sha256": sha256_file(folder / "model.onnx")}
    (folder / "manifest.json").write_text(json.dumps(j))
    return DetectorModel(ModelManifest.load(folder / "manifest.json"), threads=2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", default="person,car,bowl")
    ap.add_argument("--sizes", default="416,512,640,800")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lp-limits-") as t:
        ws = Workspace.open(build(Path(t), parse_classes(args.classes), 30, 30))
        with ws.engine.connect() as conn:
            rows, anns = repo.confirmed_labels(conn, "test")
        images = [(ws.blobs.load_image(r), [(np.array(a.shape.bbox()), a.label)
                                       for a in anns.get(r.id, [])
                                       if not a.attributes.get("iscrowd")]) for r in rows]
        base = ModelManifest.load(ws.models_dir / "yolox-nano" / "manifest.json")
        print("| input px | boxes S/M/L | found at IoU 0.5 S/M/L | at IoU 0.7 S/M/L | accept rate |")
        print("|---:|---|---|---|---:|")
        for size in (int(s) for s in args.sizes.split(",")):
            model = at_size(base, size, Path(t) / f"m{size}")
            count = {k: [0, 0, 0] for k in "SML"}
            for img, gts in images:
                dets = [(np.array(a.shape.bbox()), a.label) for a in model.predict(img)]
                for box, lab in gts:
                    area = float(np.prod(box[2:] - box[:2]))
                    k = "S" if area < 32 ** 2 else "M" if area < 96 ** 2 else "L"
                    same = np.array([d for d, dl in dets if dl == lab]).reshape(-1, 4)
                    best = float(box_iou(box[None], same).max(initial=0.0))
                    count[k][0] += 1
                    count[k][1] += best >= 0.5
                    count[k][2] += best >= 0.7
            total = sum(c[0] for c in count.values())
            print(f"| {size} | {'/'.join(str(count[k][0]) for k in 'SML')} | "
                  f"{'/'.join(str(count[k][1]) for k in 'SML')} | "
                  f"{'/'.join(str(count[k][2]) for k in 'SML')} | "
                  f"{sum(c[2] for c in count.values()) / total:.3f} |")
        model = DetectorModel(base, threads=2)
        model.settings.score_threshold = 0.05
        per_image: list[tuple[list[DetBox], list[GtBox]]] = []
        for img, gts in images:
            found = [DetBox(a.shape.bbox(), a.label, float(a.score or 0)) for a in model.predict(img)]
            per_image.append((found, [GtBox(tuple(b), lab) for b, lab in gts]))
        print("\n| score threshold | accept rate | proposals |")
        print("|---:|---:|---:|")
        for th in (0.05, 0.1, 0.2, 0.3, 0.4):
            r = evaluate_detections(per_image, accept_threshold=th)
            n = sum(d.score >= th for dets, _ in per_image for d in dets)
            print(f"| {th} | {r['accept_rate']:.3f} | {n} |")
        ws.close()


if __name__ == "__main__":
    main()
