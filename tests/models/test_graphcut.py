import numpy as np
import pytest

from labelpilot.errors import PromptError
from labelpilot.evaluation.clicker import gt_box, simulate
from labelpilot.geometry.iou import mask_iou as iou
from labelpilot.models.base import Click, Prompt
from labelpilot.models.graphcut import GraphCutSegmenter
from tests.scenes import deepest, scene


@pytest.fixture(scope="module")
def seg() -> GraphCutSegmenter:
    return GraphCutSegmenter()


def test_one_click_gives_the_object_with_its_hole(seg: GraphCutSegmenter) -> None:
    img, (ring, rect) = scene()
    emb = seg.embed(img)
    x, y = deepest(ring)
    m = seg.predict(emb, Prompt([Click(x, y)]))[0].mask
    assert m.shape == ring.shape and iou(m, ring) > 0.9
    h, w = ring.shape
    assert not m[h // 2, w // 3]  # the hole stays a hole
    m2 = seg.predict(emb, Prompt([Click(*deepest(rect))]))[0].mask
    assert iou(m2, rect) > 0.9


def test_a_box_gives_the_object(seg: GraphCutSegmenter) -> None:
    img, (_, rect) = scene(1)
    emb = seg.embed(img)
    m = seg.predict(emb, Prompt(box=gt_box(rect)))[0].mask
    assert iou(m, rect) > 0.9


def test_negative_click_removes_what_it_points_at(seg: GraphCutSegmenter) -> None:
    img, (ring, rect) = scene(2)
    emb = seg.embed(img)
    both = ring | rect
    # a box around both objects first takes both; a negative click drops the rectangle
    ys, xs = np.nonzero(both)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    first = seg.predict(emb, Prompt(box=box))[0].mask
    assert (first & rect).sum() > 0.8 * rect.sum()
    m = seg.predict(emb, Prompt([Click(*deepest(rect), positive=False)], box, first))[0].mask
    assert (m & rect).sum() < 0.1 * rect.sum() and iou(m, ring) > 0.85


def test_large_images_are_cut_at_the_working_size_and_answered_full_size() -> None:
    img, (ring, _) = scene(3, width=1200, height=900)
    seg = GraphCutSegmenter()
    emb = seg.embed(img)
    assert max(emb.bins.shape) == 480
    m = seg.predict(emb, Prompt([Click(*deepest(ring))]))[0].mask
    assert m.shape == (900, 1200) and iou(m, ring) > 0.9


def test_simulated_clicks_converge(seg: GraphCutSegmenter) -> None:
    img, (ring, _) = scene(4)
    emb = seg.embed(img)
    t = simulate(lambda p: seg.predict(emb, p)[0].mask, ring, max_clicks=5)
    assert t.noc(0.9, 5) <= 2


def test_embedding_round_trip(seg: GraphCutSegmenter) -> None:
    img, (ring, _) = scene(5)
    emb = seg.embed(img)
    again = seg.load_embedding(seg.save_embedding(emb))
    p = Prompt([Click(*deepest(ring))])
    assert (seg.predict(emb, p)[0].mask == seg.predict(again, p)[0].mask).all()


@pytest.mark.parametrize("prompt,message", [
    (Prompt(), "empty prompt"),
    (Prompt([Click(320, 10)]), "outside the image"),
    (Prompt([Click(-1, 10)]), "outside the image"),
    (Prompt(box=(10, 10, 10, 50)), "zero area"),
    (Prompt(box=(400, 10, 500, 50)), "outside the image"),
])
def test_bad_prompts_are_refused_with_the_reason(prompt: Prompt, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        prompt.validate(320, 240)
