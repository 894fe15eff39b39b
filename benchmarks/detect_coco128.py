"""Shipped detectors on the real COCO images of shared/datasets/coco128: accuracy and speed of
LabelPilot's plug-ins against a reference run in the same process on the same decoded images.

Reference: OpenCV's cv2.dnn running the same ONNX file, decoded by code written here from
the authors' published post-processing (YOLOX's demo_postprocess, NanoDet's GFL
distribution decoding), class-aware NMS with cv2.dnn.NMSBoxes per class. PP-PicoDet's file
does not load in cv2.dnn (OpenCV 5.0 fails on its in-graph NMS), so its reference is ONNX
Runtime with default session options, the way the file is shipped.

Both sides use COCO's evaluation settings: score >= 0.001, NMS IoU 0.65, 100 boxes per
image; mAP from labelpilot.evaluation.detect (equal to pycocotools, see tests/models/test_detect.py). Box
agreement: the share of boxes (either side) with a same-class box on the other side at
IoU >= 0.9, over all boxes down to score 0.001 (where tiny numeric differences between
runtimes reorder near-ties) and over those scored >= 0.3 (the proposals people see).
Images/s: inference + decoding on already decoded images, 2 threads.

Usage:
    python benchmarks/detect_coco128.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LABELPILOT_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "benchmarks" / "out"
THREADS = 2
SCORE, NMS, MAX = 0.001, 0.65, 100


def load_coco() -> tuple[list[np.ndarray], list[list[Any]]]:
    from labelpilot.evaluation.detect import GtBox

    root = SHARED / "datasets" / "coco128"
    j = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in j["categories"]}
    by_file = {im["file_name"]: im["id"] for im in j["images"]}
    anns: dict[int, list[Any]] = {}
    for a in j["annotations"]:
        x, y, w, h = a["bbox"]
        anns.setdefault(a["image_id"], []).append(
            GtBox((x, y, x + w, y + h), names[a["category_id"]], bool(a["iscrowd"])))
    files = sorted((root / "train2017").glob("*.jpg"))
    return ([np.asarray(cv2.imread(str(f))) for f in files], [anns.get(by_file[f.name], []) for f in files])


# ---- the reference decoders (written from the authors' post-processing) -------------------
def _letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    r = min(size / img.shape[0], size / img.shape[1])
    out = np.full((size, size, 3), 114, np.uint8)
    rs = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)))
    out[:rs.shape[0], :rs.shape[1]] = rs
    return out, r


def _nms_per_class(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep_all = []
    for c in np.unique(classes):
        idx = np.nonzero(classes == c)[0]
        xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes[idx]]
        kept = cv2.dnn.NMSBoxes(xywh, scores[idx].tolist(), SCORE, NMS)
        keep_all += [int(idx[k]) for k in np.array(kept).reshape(-1)]
    keep = np.array(sorted(keep_all, key=lambda i: -scores[i])[:MAX], int)
    return boxes[keep], scores[keep], classes[keep]


def ref_yolox(net: Any, img: np.ndarray, size: int = 416) -> tuple[np.ndarray, ...]:
    x, r = _letterbox(img, size)
    net.setInput(x.transpose(2, 0, 1)[None].astype(np.float32))
    out = net.forward()[0]
    grids, strides = [], []
    for s in (8, 16, 32):
        hs = ws = size // s
        xv, yv = np.meshgrid(np.arange(ws), np.arange(hs))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((hs * ws, 1), s))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    b = np.empty((len(out), 4), np.float32)
    b[:, 0] = out[:, 0] - out[:, 2] / 2
    b[:, 1] = out[:, 1] - out[:, 3] / 2
    b[:, 2] = out[:, 0] + out[:, 2] / 2
    b[:, 3] = out[:, 1] + out[:, 3] / 2
    b /= r
    sc = out[:, 4:5] * out[:, 5:]
    cls = sc.argmax(1)
    score = sc[np.arange(len(sc)), cls]
    ok = score > SCORE
    return _nms_per_class(b[ok], score[ok], cls[ok])


def ref_nanodet(net: Any, img: np.ndarray, size: int = 320) -> tuple[np.ndarray, ...]:
    h, w = img.shape[:2]
    x: Any = cv2.resize(img, (size, size)).astype(np.float32)
    x = (x - np.array([103.53, 116.28, 123.675], np.float32)) / np.array([57.375, 57.12, 58.395],
                                                                         np.float32)
    net.setInput(x.transpose(2, 0, 1)[None])
    outs = net.forward(net.getUnconnectedOutLayersNames())
    cls_maps = sorted([o for o in outs if o.shape[1] == 80], key=lambda o: -o.shape[0])
    reg_maps = sorted([o for o in outs if o.shape[1] == 32], key=lambda o: -o.shape[0])
    boxes, scores, classes = [], [], []
    for s, cm, rm in zip((8, 16, 32), cls_maps, reg_maps, strict=True):
        n = size // s
        for k in range(n * n):
            c = int(cm[k].argmax())
            if cm[k, c] <= SCORE:
                continue
            cy, cx = (k // n + 0.5) * s, (k % n + 0.5) * s
            dist = []
            for side in range(4):
                logits = rm[k, side * 8:(side + 1) * 8]
                p = np.exp(logits - logits.max())
                dist.append(float((p / p.sum()) @ np.arange(8)) * s)
            boxes.append([(cx - dist[0]) * w / size, (cy - dist[1]) * h / size,
                          (cx + dist[2]) * w / size, (cy + dist[3]) * h / size])
            scores.append(float(cm[k, c]))
            classes.append(c)
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)
    b = np.array(boxes, np.float32)
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    return _nms_per_class(b, np.array(scores, np.float32), np.array(classes))


def ref_picodet(sess: Any, img: np.ndarray, size: int = 320) -> tuple[np.ndarray, ...]:
    h, w = img.shape[:2]
    x: Any = cv2.resize(img[..., ::-1], (size, size),
                        interpolation=cv2.INTER_CUBIC).astype(np.float32)
    x = (x - np.array([123.675, 116.28, 103.53], np.float32)) / np.array([58.395, 57.12, 57.375],
                                                                         np.float32)
    out = sess.run(None, {"image": x.transpose(2, 0, 1)[None],
                          "scale_factor": np.array([[size / h, size / w]], np.float32)})[0]
    out = out[out[:, 1] > SCORE]
    out = out[np.argsort(-out[:, 1])][:MAX]
    return out[:, 2:6], out[:, 1], out[:, 0].astype(int)


# ---- measuring ---------------------------------------------------------------------------
def agreement(a: list[tuple[np.ndarray, ...]], b: list[tuple[np.ndarray, ...]],
              min_score: float = 0.0) -> float:
    from labelpilot.geometry.iou import box_iou

    def above(r: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        keep = np.asarray(r[1]) >= min_score
        return np.asarray(r[0])[keep], np.asarray(r[1])[keep], np.asarray(r[2])[keep]

    hit = total = 0
    for (ba, _, ca), (bb, _, cb) in zip(map(above, a), map(above, b), strict=True):
        for x, cx, y, cy in ((ba, ca, bb, cb), (bb, cb, ba, ca)):
            total += len(x)
            if len(x) and len(y):
                iou = box_iou(np.asarray(x, float), np.asarray(y, float), np.zeros(len(y), bool))
                same = np.asarray(cx)[:, None] == np.asarray(cy)[None, :]
                hit += int(((iou >= 0.9) & same).any(1).sum())
    return hit / max(1, total)


def metrics(results: list[tuple[np.ndarray, ...]], gts: list[list[Any]], labels: list[str]
            ) -> dict[str, Any]:
    from labelpilot.evaluation.detect import DetBox, evaluate_detections

    per_image = [([DetBox((float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3])), labels[int(c)],
                           float(s))
                   for bx, s, c in zip(*r, strict=True)], g) for r, g in zip(results, gts, strict=True)]
    return evaluate_detections(per_image, accept_threshold=0.3)


def timed(fn: Any, images: list[np.ndarray], repeat: int) -> tuple[list[Any], float]:
    fn(images[0])  # warm-up
    best = float("inf")
    out: list[Any] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = [fn(im) for im in images]
        best = min(best, time.perf_counter() - t0)
    return out, len(images) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import onnxruntime as ort

    from labelpilot.models.catalogue import install
    from labelpilot.models.registry import load_detector

    cv2.setNumThreads(THREADS)
    images, gts = load_coco()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, file, ref in (("yolox-nano", "yolox_nano_416.onnx", "yolox"),
                                ("nanodet-m", "nanodet_m_320.onnx", "nanodet"),
                                ("picodet-xs", "picodet_xs_320_lcnet_postprocessed.onnx", "picodet")):
            install(Path(d), name, str(SHARED / "models"))
            model = load_detector(name, Path(d), threads=THREADS)
            model.settings.score_threshold, model.settings.nms_iou = SCORE, NMS
            model.settings.max_detections = MAX
            labels = list(model.spec.labels)

            def ours(im: np.ndarray, model: Any = model) -> tuple[np.ndarray, ...]:
                r = model.detect(im)
                return r.boxes, r.scores, r.classes

            lp, lp_ips = timed(ours, images, args.repeat)
            if ref == "picodet":
                so = ort.SessionOptions()
                so.intra_op_num_threads = THREADS
                so.log_severity_level = 3
                sess = ort.InferenceSession(str(SHARED / "models" / file), so,
                                            providers=["CPUExecutionProvider"])
                ref_name = "onnxruntime (as shipped)"

                def reference(im: np.ndarray, sess: Any = sess) -> tuple[np.ndarray, ...]:
                    return ref_picodet(sess, im)
            else:
                net = cv2.dnn.readNetFromONNX(str(SHARED / "models" / file))
                ref_name = "cv2.dnn"
                fn = ref_yolox if ref == "yolox" else ref_nanodet

                def reference(im: np.ndarray, sess: Any = net, fn: Any = fn  # type: ignore[misc]
                              ) -> tuple[np.ndarray, ...]:
                    return fn(sess, im)  # type: ignore[no-any-return]

            rf, rf_ips = timed(reference, images, args.repeat)
            m_lp, m_rf = metrics(lp, gts, labels), metrics(rf, gts, labels)
            row = {"detector": name, "reference": ref_name,
                   "lp_map50": m_lp["map50"], "lp_map50_95": m_lp["map50_95"],
                   "lp_accept_rate": m_lp["accept_rate"], "lp_ips": lp_ips,
                   "ref_map50": m_rf["map50"], "ref_map50_95": m_rf["map50_95"], "ref_ips": rf_ips,
                   "box_agreement": agreement(lp, rf),
                   "box_agreement_0.3": agreement(lp, rf, 0.3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| detector | LabelPilot mAP50 | mAP50:95 | accept rate (score >= 0.3) | images/s | "
          "reference | ref mAP50 | ref mAP50:95 | ref images/s | speed-up | box agreement "
          "(all / score >= 0.3) |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['detector']} | {r['lp_map50']:.3f} | {r['lp_map50_95']:.3f} | "
              f"{r['lp_accept_rate']:.3f} | {r['lp_ips']:.1f} | {r['reference']} | "
              f"{r['ref_map50']:.3f} | {r['ref_map50_95']:.3f} | {r['ref_ips']:.1f} | "
              f"{r['lp_ips'] / r['ref_ips']:.2f}x | {r['box_agreement']:.3f} / "
              f"{r['box_agreement_0.3']:.3f} |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "detect_coco128.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
