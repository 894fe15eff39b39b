"""`labelpilot models convert`: a PyTorch SAM checkpoint -> an ONNX encoder/decoder pair
in the workspace's model folder, with a parity check against PyTorch. Needs `[train]`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.errors import LabelPilotError
from labelpilot.models.manifest import ModelFile, ModelManifest
from labelpilot.models.runtime import sha256_file

PARITY_TOLERANCE = 1e-3


def _torch() -> Any:
    from labelpilot.extras import require_torch

    return require_torch()


def make_sam(arch: str, checkpoint: Path | None, seed: int = 0) -> Any:
    """The PyTorch model: the checkpoint's weights, or random ones (seeded)."""
    torch = _torch()
    from labelpilot.models.convert.sam_arch import build

    if checkpoint is not None and not checkpoint.is_file():
        raise LabelPilotError(f"checkpoint {checkpoint} does not exist")
    torch.manual_seed(seed)
    sam = build(arch, str(checkpoint) if checkpoint else None)
    if checkpoint is None:  # random weights: give the zero-initialised tables some values
        with torch.no_grad():
            for n, p in sam.named_parameters():
                if "rel_pos" in n or "pos_embed" in n:
                    p.normal_(0, 0.02)
    return sam


def convert_sam(models_dir: Path, name: str, *, arch: str, checkpoint: Path | None,
                seed: int = 0, quantize: bool = False) -> ModelManifest:
    """Export `checkpoint` (None: random weights, for tests and latency checks) of `arch`
    as `models_dir/name/{encoder,decoder}.onnx` + manifest; refused if ONNX Runtime's
    output differs from PyTorch's by more than PARITY_TOLERANCE. `quantize`: the decoder's
    weights to INT8 (dynamic quantization, as the official SAM export offers), kept only if
    its masks agree with the FP32 decoder's on QUANT_AGREEMENT of the pixels."""
    torch = _torch()
    from labelpilot.models.convert.sam_arch import DecoderGraph, EncoderGraph

    sam = make_sam(arch, checkpoint, seed)
    out = models_dir / name
    tmp = models_dir / f".{name}.converting"
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = sam.cfg
    s, g = cfg.img_size, cfg.grid
    enc, dec = EncoderGraph(sam).eval(), DecoderGraph(sam).eval()
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.normal(0, 1, (1, 3, s, s)).astype(np.float32))
    with torch.no_grad():
        emb = enc(image)
    n = 3
    dec_in = (emb, torch.from_numpy(rng.uniform(0, s, (1, n, 2)).astype(np.float32)),
              torch.tensor([[1.0, 0.0, -1.0]]),
              torch.from_numpy(rng.normal(0, 1, (1, 1, 4 * g, 4 * g)).astype(np.float32)),
              torch.tensor([1.0]))
    dec_names = ["image_embeddings", "point_coords", "point_labels", "mask_input",
                 "has_mask_input"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(enc, (image,), str(tmp / "encoder.onnx"), dynamo=False,
                          input_names=["image"], output_names=["image_embeddings"],
                          opset_version=17)
        torch.onnx.export(dec, dec_in, str(tmp / "decoder.onnx"), dynamo=False,
                          input_names=dec_names, output_names=["masks", "iou_predictions"],
                          dynamic_axes={"point_coords": {1: "points"},
                                        "point_labels": {1: "points"}},
                          opset_version=17)
    parity = _parity(tmp, enc, dec, image, dec_in, dec_names)
    if parity > PARITY_TOLERANCE:
        raise LabelPilotError(f"the exported ONNX pair differs from PyTorch by {parity:.2e} "
                              f"(tolerance {PARITY_TOLERANCE}); not registered")
    decoder = "decoder.onnx"
    metrics: dict[str, float] = {"onnx_parity": parity}
    if quantize:
        metrics["int8_mask_agreement"] = _quantize_decoder(tmp, dec_in, dec_names)
        decoder = "decoder.int8.onnx"
    manifest = ModelManifest(
        name=name, version="1", task="segment", kind="sam",
        files={"encoder": ModelFile("encoder.onnx", sha256_file(tmp / "encoder.onnx")),
               "decoder": ModelFile(decoder, sha256_file(tmp / decoder))},
        labels=[], preprocessing={"input_size": s, "mean": [123.675, 116.28, 103.53],
                                  "std": [58.395, 57.12, 57.375]},
        metrics=metrics,
        description=f"{arch} converted from {checkpoint.name if checkpoint else 'random weights'}")
    (tmp / "manifest.json").write_bytes(manifest.to_json())
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return ModelManifest.load(out / "manifest.json")


QUANT_AGREEMENT = 0.98


def _quantize_decoder(folder: Path, dec_in: tuple[Any, ...], names: list[str]) -> float:
    import logging

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the model is for CNNs
    try:
        quantize_dynamic(str(folder / "decoder.onnx"), str(folder / "decoder.int8.onnx"),
                         weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    feed = {k: v.numpy() for k, v in zip(names, dec_in, strict=True)}
    fp = ort.InferenceSession(str(folder / "decoder.onnx"), so,
                              providers=["CPUExecutionProvider"]).run(None, feed)[0]
    q = ort.InferenceSession(str(folder / "decoder.int8.onnx"), so,
                             providers=["CPUExecutionProvider"]).run(None, feed)[0]
    agreement = float(((fp > 0) == (q > 0)).mean())
    if agreement < QUANT_AGREEMENT:
        raise LabelPilotError(f"the INT8 decoder's masks agree with the FP32 ones on only "
                              f"{agreement:.1%} of the pixels (needed {QUANT_AGREEMENT:.0%}); "
                              "convert without --quantize")
    (folder / "decoder.onnx").unlink()
    return agreement


def _parity(folder: Path, enc: Any, dec: Any, image: Any, dec_in: tuple[Any, ...],
            names: list[str]) -> float:
    import onnxruntime as ort

    torch = _torch()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    e = ort.InferenceSession(str(folder / "encoder.onnx"), so, providers=["CPUExecutionProvider"])
    d = ort.InferenceSession(str(folder / "decoder.onnx"), so, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want_emb = enc(image).numpy()
        want_masks, want_iou = (t.numpy() for t in dec(*dec_in))
    got_emb = e.run(None, {"image": image.numpy()})[0]
    got_masks, got_iou = d.run(None, {k: v.numpy() for k, v in zip(names, dec_in, strict=True)})
    scale = max(1.0, float(np.abs(want_masks).max()))
    return max(float(np.abs(got_emb - want_emb).max()),
               float(np.abs(got_masks - want_masks).max()) / scale,
               float(np.abs(got_iou - want_iou).max()))
