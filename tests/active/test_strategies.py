"""The parts of active learning that need no workspace: k-center greedy, the OCR and
detection informativeness, the backbone embeddings."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from labelpilot.active.diversity import k_center_greedy
from labelpilot.active.uncertainty import score_detections, score_lines
from labelpilot.models.catalogue import install
from labelpilot.models.features import FeatureExtractor
from labelpilot.models.ocr import TextLine
from labelpilot.models.registry import load_detector
from labelpilot.models.runtime import sha256_file
from tests.conftest import page_truth


def clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """30 unit vectors in three tight clusters (10 each) and each one's cluster."""
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 8, dtype=np.float32)
    which = np.repeat(np.arange(3), 10)
    v = centers[which] + rng.normal(0, 0.02, (30, 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True), which


def test_k_center_greedy_covers_every_cluster_before_repeating_one() -> None:
    v, which = clusters()
    picks = k_center_greedy(v, np.zeros((0, 8), np.float32), 3)
    assert sorted(which[[k for k, _ in picks]]) == [0, 1, 2]
    assert picks[0][1] == float("inf") and all(d > 1.0 for _, d in picks[1:])
    # with cluster 0 labeled, the first two picks are in clusters 1 and 2, far away
    picks = k_center_greedy(v, v[which == 0][:3], 2)
    assert sorted(which[[k for k, _ in picks]]) == [1, 2]
    # a fourth pick can only repeat a cluster, at a small distance
    four = k_center_greedy(v, np.zeros((0, 8), np.float32), 4)
    assert four[3][1] < 0.2


def test_k_center_greedy_never_picks_an_image_twice() -> None:
    same = np.ones((5, 4), np.float32) / 2
    picks = k_center_greedy(same, same[:1], 5)
    assert sorted(k for k, _ in picks) == [0, 1, 2, 3, 4]
    assert k_center_greedy(same, same[:0], 9)[-1][0] in range(5)  # budget capped at the pool
    assert len(k_center_greedy(same, same[:0], 9)) == 5
    # seeded first picks differ by seed, and are repeatable
    v, _ = clusters(1)
    a = k_center_greedy(v, v[:0], 3, seed=3)
    assert a == k_center_greedy(v, v[:0], 3, seed=3)


def test_ocr_informativeness_follows_the_weakest_line() -> None:
    sure = [TextLine(np.zeros((4, 2), np.float32), 1.0, "EXIT", 0.99, 0.98)]
    unsure = [*sure, TextLine(np.zeros((4, 2), np.float32), 1.0, "R0TAIL", 0.62, 0.04)]
    a = score_lines(sure, low_confidence=0.8)
    b = score_lines(unsure, low_confidence=0.8)
    assert 0 <= a.score < 0.05 < b.score <= 1
    assert "sure" in a.reason
    assert "R0TAIL" in b.reason
    assert b.parts["ctc_margin"] == pytest.approx(0.96)
    none = score_lines([], low_confidence=0.8)
    assert none.score == 0.5 and "no text" in none.reason


def test_the_recognizer_margin_falls_on_a_damaged_line(ocr_model, tmp_path: Path) -> None:
    """The CTC top-2 margin is read from the recognizer's real outputs: a line smudged
    until it is hard to read has a smaller margin than the same line clean."""
    from skimage import data

    page = cv2.cvtColor(data.page(), cv2.COLOR_GRAY2BGR)
    quads = [np.array(q, np.float32) for q, _ in page_truth()]
    clean = ocr_model.read_quads(page, quads)
    assert all(0.0 <= ln.margin <= 1.0 for ln in clean)
    assert np.mean([ln.margin for ln in clean]) > 0.5
    smudged = cv2.GaussianBlur(page, (0, 0), 2.5)
    noisy = ocr_model.read_quads(smudged, quads)
    assert np.mean([ln.margin for ln in noisy]) < np.mean([ln.margin for ln in clean]) - 0.1
    assert score_lines(noisy, low_confidence=0.8).score > score_lines(clean, low_confidence=0.8).score


@pytest.fixture(scope="module")
def yolox(tmp_path_factory: pytest.TempPathFactory, ):  # type: ignore[no-untyped-def]
    from tests.conftest import SHARED

    d = tmp_path_factory.mktemp("models")
    install(d, "yolox-nano", str(SHARED / "models"))
    return load_detector("yolox-nano", d, threads=1)


def coco(name: str) -> np.ndarray:
    from tests.conftest import SHARED

    im = cv2.imread(str(SHARED / "datasets" / "coco128" / "train2017" / name))
    assert im is not None
    return im


def test_detection_informativeness_on_real_images(yolox) -> None:  # type: ignore[no-untyped-def]
    # a plain giraffe photo the detector is sure of, against the same photo cut in
    # strips and shuffled: its boxes lose their objects and the mirror image disagrees
    im = coco("000000000025.jpg")
    sure = score_detections(yolox, im)
    strips = np.array_split(im, 8, axis=1)
    shuffled = np.concatenate([strips[i] for i in (5, 2, 7, 0, 3, 6, 1, 4)], axis=1)
    scrambled = score_detections(yolox, cv2.resize(shuffled, im.shape[1::-1]))
    assert set(sure.parts) == {"class_entropy", "class_margin", "near_threshold",
                               "flip_disagreement"}
    assert all(0.0 <= v <= 1.0 for v in sure.parts.values())
    assert sure.score < 0.2 and "sure" in sure.reason
    assert scrambled.score > sure.score
    # the mirror image of a symmetric picture agrees with it exactly
    mirror = np.concatenate([im[:, : im.shape[1] // 2], im[:, : im.shape[1] // 2][:, ::-1]], 1)
    assert score_detections(yolox, mirror).parts["flip_disagreement"] < 0.05
    # nothing found: nothing to be unsure of
    blank = score_detections(yolox, np.zeros((240, 320, 3), np.uint8))
    assert blank.details["boxes"] == 0 and blank.parts["class_entropy"] == 0.0


def test_backbone_embeddings_tell_scenes_apart(yolox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx

    sample = yolox.network_input(np.zeros((64, 64, 3), np.uint8))
    fe = FeatureExtractor(yolox.session.path, prepare=yolox.network_input, sample=sample)
    a, b = coco("000000000025.jpg"), coco("000000000009.jpg")
    va, va2, vb = fe.embed(a), fe.embed(cv2.resize(a, None, fx=0.8, fy=0.8)), fe.embed(b)
    assert va.shape == (fe.dim,) and fe.dim >= 64
    assert np.linalg.norm(va) == pytest.approx(1.0, abs=1e-5)
    # the same scene resized is nearer than another scene
    assert np.linalg.norm(va - va2) < np.linalg.norm(va - vb)
    # the key is the backbone file's content: a copy shares it, other weights do not
    assert fe.key.startswith(f"onnx:{sha256_file(yolox.session.path)[:16]}#")
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(Path(yolox.session.path).read_bytes())
    assert FeatureExtractor(copy, prepare=yolox.network_input, sample=sample).key == fe.key
    model = onnx.load(str(copy))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    arr = onnx.numpy_helper.to_array(weight).copy()
    arr *= 1.01
    weight.CopyFrom(onnx.numpy_helper.from_array(arr, weight.name))
    onnx.save(model, str(copy))
    assert FeatureExtractor(copy, prepare=yolox.network_input, sample=sample).key != fe.key


def test_the_cut_graph_computes_the_feature_map_as_the_whole_model_does(yolox) -> None:  # type: ignore[no-untyped-def]
    import onnx
    import onnxruntime as ort

    from labelpilot.models.features import cut_at

    model = onnx.load(str(yolox.session.path))
    x = yolox.network_input(coco("000000000025.jpg"))
    fe = FeatureExtractor(yolox.session.path, prepare=yolox.network_input, sample=x)
    tensor = fe.tensor
    cut = cut_at(onnx, model, tensor)
    assert 0 < len(cut.graph.node) < len(model.graph.node)  # the head is left out
    cut.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    name = model.graph.input[0].name
    part = ort.InferenceSession(cut.SerializeToString()).run([tensor], {name: x})[0]
    whole = ort.InferenceSession(model.SerializeToString()).run([tensor], {name: x})[0]
    assert part.shape == whole.shape and np.allclose(part, whole, atol=1e-5)
