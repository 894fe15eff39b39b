"""The OCR pipeline on a real scanned page (scikit-image) with hand-made ground truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from labelpilot.annotations import text_corners
from labelpilot.errors import ValidationError
from labelpilot.evaluation.ocr import GtLine, PredLine, match
from tests.conftest import page_truth

TITLE = "Region-based segmentation"


def _page() -> np.ndarray:
    return cv2.cvtColor(data.page(), cv2.COLOR_GRAY2BGR)


def test_reads_the_page_in_reading_order(ocr_model) -> None:
    truth = page_truth()
    lines = ocr_model.read(_page())
    gt = [GtLine(p, t) for p, t in truth]
    pred = [PredLine([tuple(x) for x in ln.points.tolist()], ln.text) for ln in lines]
    pairs, _ = match(gt, pred)
    assert len(pairs) >= 6  # every clear line found (the faint, tilted fifth may merge)
    assert [gi for gi, _ in sorted(pairs, key=lambda p: p[1])] == sorted(gi for gi, _ in pairs)
    exact = sum(pred[pi].text == gt[gi].text for gi, pi in pairs)
    assert exact >= 5
    assert lines[0].text == TITLE and lines[0].score > 0.9


@pytest.mark.parametrize(("rotation", "name"), [
    (cv2.ROTATE_90_CLOCKWISE, "vertical, reading downwards"),
    (cv2.ROTATE_90_COUNTERCLOCKWISE, "vertical, reading upwards"),
    (cv2.ROTATE_180, "upside down"),
])
def test_rotated_pages_read_right_with_quads_from_the_text_start(ocr_model, rotation: int,
                                                                 name: str) -> None:
    image = cv2.rotate(_page(), rotation)
    lines = ocr_model.read(image)
    title = next((ln for ln in lines if ln.text == TITLE), None)
    assert title is not None, (name, [ln.text for ln in lines])
    # The quad's first corner is where the title starts: the 'R' of the upright page,
    # wherever the rotation moved it.
    h, w = _page().shape[:2]
    start = {cv2.ROTATE_90_CLOCKWISE: (h - 7, 2), cv2.ROTATE_90_COUNTERCLOCKWISE: (7, w - 2),
             cv2.ROTATE_180: (w - 2, h - 7)}[rotation]
    assert np.hypot(*(title.points[0] - np.array(start))) < 25, title.points.tolist()


def test_recognize_one_quad(ocr_model) -> None:
    quad, text = page_truth()[0]
    got, score = ocr_model.recognize_quad(_page(), quad)
    assert got == text and score > 0.9
    with pytest.raises(ValidationError, match="degenerate"):
        ocr_model.recognize_quad(_page(), [(10, 10), (50, 10), (50, 10), (10, 10)])
    with pytest.raises(ValidationError, match="outside the 384x191 image"):
        ocr_model.recognize_quad(_page(), [(300, 10), (500, 10), (500, 40), (300, 40)])


def test_recognizer_batches_match_one_by_one(ocr_model) -> None:
    from labelpilot.geometry.crops import rectify

    image = _page()
    crops = [rectify(image, np.asarray(q)) for q, _ in page_truth()]
    together = ocr_model.recognize(crops)
    alone = [ocr_model.recognize([c])[0] for c in crops]
    # Padding a crop to the batch's width may move a character at most, on one line.
    from labelpilot.evaluation.ocr import edit_distance

    distances = [edit_distance(a, b) for (a, _), (b, _) in zip(together, alone, strict=True)]
    assert sum(d > 0 for d in distances) <= 1 and max(distances) <= 1, (together, alone)
    np.testing.assert_allclose([s for _, s in together], [s for _, s in alone], atol=0.05)


def test_predictions_carry_model_score_and_flags(ocr_model) -> None:
    anns = ocr_model.predict(_page())
    assert anns and all(a.status == "predicted" and a.source == "model:ocr@ppocrv6-small"
                        for a in anns)
    assert all(0 <= a.score <= 1 for a in anns)
    low = [a for a in anns if a.attributes.get("low_confidence")]
    assert all(a.score < 0.8 for a in low)
    assert ocr_model.predict(np.full((64, 64, 3), 255, np.uint8)) == []  # a blank image


def _plate(shared, k: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    lpr = shared / "datasets" / "lpr_plates"
    name = (lpr / "test_rec_gt.txt").read_text(encoding="utf-8").splitlines()[k].split("\t")[0]
    image = cv2.imdecode(np.fromfile(str(lpr / name), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_whole_image_lines_read_a_crop_without_the_detector(ocr_model, shared) -> None:
    # a licence-plate crop (94x24): the whole image is one line; the detector is not asked
    image = _plate(shared)
    h, w = image.shape[:2]
    (line,) = ocr_model.read_whole(image)
    assert line.points.tolist() == [[0, 0], [w, 0], [w, h], [0, h]]
    assert (line.text, line.score) == ocr_model.recognize([image])[0]
    assert line.text.startswith("京P") and line.score > 0.9
    (ann,) = ocr_model.predict_whole(image)
    assert ann.text == line.text and ann.status == "predicted"
    assert text_corners(ann.shape) == ((0, 0), (w, 0), (w, h), (0, h))
    assert ocr_model.predict_whole(image, min_score=1.01) == []
    # upside down: the orientation classifier turns it, the quad starts bottom right
    (turned,) = ocr_model.read_whole(cv2.rotate(image, cv2.ROTATE_180))
    assert turned.text == line.text
    assert turned.points.tolist()[0] == [w, h]
    # a blank image reads nothing: no proposal
    assert ocr_model.read_whole(np.full((24, 94, 3), 255, np.uint8)) == []


def test_whole_image_lines_read_a_tall_crop_top_down(ocr_model, shared) -> None:
    image = _plate(shared)
    (flat,) = ocr_model.read_whole(image)
    tall = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)  # 24x94: the text runs downwards
    (line,) = ocr_model.read_whole(tall)
    assert line.text == flat.text
    assert line.points.tolist()[0] == [24, 0]  # the text starts at the top right
