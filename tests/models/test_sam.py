"""The SAM path end to end with a small randomly initialised model of the real architecture
(tiny ViT encoder, the real prompt encoder and mask decoder): convert, load, embed, decode,
polygon. No pretrained SAM weights can be downloaded here."""

from pathlib import Path

import numpy as np
import pytest

from labelpilot.annotations import mask_to_polygons
from labelpilot.errors import LabelPilotError, ModelError
from labelpilot.models.base import Click, Prompt
from labelpilot.models.convert.sam import convert_sam, make_sam
from labelpilot.models.manifest import ModelFile, ModelManifest
from labelpilot.models.registry import default_segmenter, load_segmenter
from labelpilot.models.runtime import sha256_file
from labelpilot.models.sam import SamSegmenter
from tests.scenes import deepest, scene

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    convert_sam(d, "tiny-sam", arch="sam_tiny", checkpoint=None)
    return d


def test_convert_writes_a_checked_pair(models_dir: Path) -> None:
    m = ModelManifest.load(models_dir / "tiny-sam" / "manifest.json")
    assert m.kind == "sam" and set(m.files) == {"encoder", "decoder"}
    assert m.metrics["onnx_parity"] < 1e-3
    m.verify()
    assert default_segmenter(models_dir) == "tiny-sam"
    assert default_segmenter(None) == "graphcut"


def test_onnx_pipeline_matches_pytorch_on_a_real_image(models_dir: Path) -> None:
    from labelpilot.models.convert.sam_arch import DecoderGraph, EncoderGraph

    seg = load_segmenter("tiny-sam", models_dir)
    assert isinstance(seg, SamSegmenter)
    img, (ring, _) = scene()
    emb = seg.embed(img)
    assert emb.features.shape == (1, 256, 64, 64) and emb.size == (320, 240)
    sam = make_sam("sam_tiny", None)
    # the same preprocessing by hand: resize longest side to 1024, normalise, pad
    import cv2

    s = 1024 / 320
    x = np.zeros((1024, 1024, 3), np.float32)
    x[:768, :1024] = (cv2.resize(img, (1024, 768)).astype(np.float32) - seg.mean) / seg.std
    with torch.no_grad():
        want = EncoderGraph(sam)(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).numpy()
    assert np.abs(want - emb.features).max() < 1e-3
    cx, cy = deepest(ring)
    prompt = Prompt([Click(cx, cy), Click(10, 10, positive=False)])
    masks, iou = seg.logits(emb, prompt)
    with torch.no_grad():
        ref_m, ref_i = DecoderGraph(sam)(
            torch.from_numpy(emb.features),
            torch.tensor([[[cx * s, cy * s], [10 * s, 10 * s], [0, 0]]], dtype=torch.float32),
            torch.tensor([[1.0, 0.0, -1.0]]), torch.zeros(1, 1, 256, 256), torch.zeros(1))
    assert np.abs(ref_m.numpy()[0] - masks).max() < 1e-3 * max(1, np.abs(masks).max())
    assert np.abs(ref_i.numpy()[0] - iou).max() < 1e-3


def test_click_box_and_previous_mask_give_masks_and_polygons(models_dir: Path) -> None:
    seg = load_segmenter("tiny-sam", models_dir)
    img, (ring, rect) = scene(1)
    emb = seg.embed(img)
    one = seg.predict(emb, Prompt([Click(*deepest(ring))]))
    assert len(one) == 3  # an ambiguous single click: three alternatives
    assert all(p.mask.shape == (240, 320) and p.mask.dtype == bool for p in one)
    assert all(p.quality is not None and 0 <= p.quality <= 1 for p in one)
    ys, xs = np.nonzero(rect)
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    boxed = seg.predict(emb, Prompt([Click(*deepest(rect))], box, one[0].mask))
    assert 1 <= len(boxed) <= 3
    # random weights make arbitrary masks; the polygon path still has to hold
    m = boxed[0].mask if boxed[0].mask.any() else np.pad(np.ones((20, 20), bool), 50)[:240, :320]
    assert mask_to_polygons(m)


def test_checkpoint_round_trip_and_a_wrong_checkpoint(models_dir: Path, tmp_path: Path) -> None:
    sam = make_sam("sam_tiny", None, seed=3)
    ckpt = tmp_path / "tiny.pth"
    torch.save(sam.state_dict(), ckpt)
    m = convert_sam(tmp_path / "models", "from-ckpt", arch="sam_tiny", checkpoint=ckpt)
    assert m.metrics["onnx_parity"] < 1e-3 and "tiny.pth" in m.description
    bad = tmp_path / "bad.pth"
    torch.save({"image_encoder.nothing": torch.zeros(1)}, bad)
    with pytest.raises(LabelPilotError, match="not a sam_tiny checkpoint"):
        convert_sam(tmp_path / "models", "bad", arch="sam_tiny", checkpoint=bad)
    assert not (tmp_path / "models" / "bad").exists()
    q = convert_sam(tmp_path / "models", "int8", arch="sam_tiny", checkpoint=ckpt, quantize=True)
    assert q.files["decoder"].path == "decoder.int8.onnx"
    assert q.metrics["int8_mask_agreement"] >= 0.98
    assert not (tmp_path / "models" / "int8" / "decoder.onnx").exists()
    seg = load_segmenter("int8", tmp_path / "models")
    img, (ring, _) = scene()
    assert len(seg.predict(seg.embed(img), Prompt([Click(*deepest(ring))]))) == 3
    with pytest.raises(LabelPilotError, match="unknown SAM architecture"):
        convert_sam(tmp_path / "models", "x", arch="sam_vit_q", checkpoint=None)


def test_an_encoder_and_decoder_that_do_not_match_are_refused(models_dir: Path,
                                                             tmp_path: Path) -> None:
    from labelpilot.models.ocr import builtin_manifest

    det, det_sha = builtin_manifest().file("det")  # one image in, but a 1-channel map out
    dec = models_dir / "tiny-sam" / "decoder.onnx"
    folder = tmp_path / "models" / "mixed"
    folder.mkdir(parents=True)
    m = ModelManifest(name="mixed", version="1", task="segment", kind="sam",
                      files={"encoder": ModelFile(str(det), det_sha),
                             "decoder": ModelFile(str(dec), sha256_file(dec))}, root=folder)
    (folder / "manifest.json").write_bytes(m.to_json())
    with pytest.raises(ModelError, match=f"encoder {det.name} and decoder decoder.onnx do not match"):
        load_segmenter("mixed", tmp_path / "models")
    # and a decoder that is not a SAM decoder at all
    m.files = {"encoder": ModelFile(str(dec), sha256_file(dec)),
               "decoder": ModelFile(str(det), det_sha)}
    (folder / "manifest.json").write_bytes(m.to_json())
    with pytest.raises(ModelError, match="is not a SAM decoder"):
        load_segmenter("mixed", tmp_path / "models")
