"""SAM-family models as ONNX encoder/decoder pairs (SAM ViT-B/L/H, MobileSAM, EdgeSAM and
other exports in the same layout): the encoder runs once per image, the decoder per prompt.

Encoder: one input [1,3,S,S] (RGB, normalised with the manifest's mean/std, the longest
side resized to S, zero padding bottom-right) -> embeddings [1,C,S/16,S/16].
Decoder: the official SAM export's inputs (image_embeddings, point_coords, point_labels,
mask_input, has_mask_input, and optionally orig_im_size) -> masks, iou_predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from labelpilot.errors import ModelError
from labelpilot.models.base import MaskProposal, Prompt
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.runtime import OrtSession

DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input",
                  "has_mask_input")


@dataclass
class SamEmbedding:
    features: np.ndarray  # [1,C,g,g] float32
    size: tuple[int, int]  # original (width, height)
    scale: float  # input pixels per image pixel

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes)


def _shape(meta: object) -> list[object]:
    return list(getattr(meta, "shape", []))


class SamSegmenter:
    def __init__(self, manifest: ModelManifest, *, threads: int | None = None) -> None:
        self.name = manifest.name
        self.version = manifest.version
        pre = manifest.preprocessing
        self.input_size = int(pre.get("input_size", 1024))
        self.mean = np.array(pre.get("mean", [123.675, 116.28, 103.53]), np.float32)
        self.std = np.array(pre.get("std", [58.395, 57.12, 57.375]), np.float32)
        enc, enc_sha = manifest.file("encoder")
        dec, dec_sha = manifest.file("decoder")
        self.encoder = OrtSession(enc, sha256=enc_sha, threads=threads)
        self.decoder = OrtSession(dec, sha256=dec_sha, threads=threads)
        self._check_pair()

    def _check_pair(self) -> None:
        enc_name = self.encoder.path.name
        dec_name = self.decoder.path.name
        dec_in = {i.name: i for i in self.decoder.session.get_inputs()}
        missing = [n for n in DECODER_INPUTS if n not in dec_in]
        if missing:
            raise ModelError(f"{dec_name} is not a SAM decoder: it lacks the inputs "
                             f"{', '.join(missing)} (it has {', '.join(dec_in)})")
        enc_in = self.encoder.session.get_inputs()
        if len(enc_in) != 1:
            raise ModelError(f"{enc_name} is not a SAM image encoder: it takes "
                             f"{len(enc_in)} inputs, not one image")
        out = _shape(self.encoder.session.get_outputs()[0])
        want = _shape(dec_in["image_embeddings"])
        if len(out) != 4 or len(want) != 4 or any(
                isinstance(a, int) and isinstance(b, int) and a != b
                for a, b in zip(out[1:], want[1:], strict=True)):
            raise ModelError(
                f"encoder {enc_name} and decoder {dec_name} do not match: the encoder "
                f"produces embeddings {out}, the decoder expects {want}",
                hint="install the encoder and decoder exported from the same model")
        in_shape = _shape(enc_in[0])
        if isinstance(in_shape[-1], int):
            self.input_size = int(in_shape[-1])
        self.has_orig_size = "orig_im_size" in dec_in
        mask_shape = _shape(dec_in["mask_input"])
        self.mask_size = int(mask_shape[-1]) if isinstance(mask_shape[-1], int) else \
            4 * (int(want[-1]) if isinstance(want[-1], int) else self.input_size // 16)

    # ---- embedding ---------------------------------------------------------------------
    def embed(self, image: np.ndarray) -> SamEmbedding:
        h, w = image.shape[:2]
        s = self.input_size
        scale = s / max(h, w)
        nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = np.zeros((s, s, 3), np.float32)
        x[:nh, :nw] = (resized.astype(np.float32) - self.mean) / self.std
        feats = self.encoder(x.transpose(2, 0, 1)[None])[0]
        return SamEmbedding(np.ascontiguousarray(feats, np.float32), (w, h), scale)

    def save_embedding(self, emb: SamEmbedding) -> dict[str, np.ndarray]:
        return {"features": emb.features, "size": np.array(emb.size),
                "scale": np.array([emb.scale])}

    def load_embedding(self, a: dict[str, np.ndarray]) -> SamEmbedding:
        return SamEmbedding(a["features"].astype(np.float32),
                            (int(a["size"][0]), int(a["size"][1])), float(a["scale"][0]))

    # ---- decoding ----------------------------------------------------------------------
    def logits(self, emb: SamEmbedding, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        pts, labels = [], []
        for c in prompt.clicks:
            pts.append((c.x * emb.scale, c.y * emb.scale))
            labels.append(1.0 if c.positive else 0.0)
        if prompt.box is not None:
            x1, y1, x2, y2 = (v * emb.scale for v in prompt.box)
            pts += [(x1, y1), (x2, y2)]
            labels += [2.0, 3.0]
        else:  # the official export expects a padding point when there is no box
            pts.append((0.0, 0.0))
            labels.append(-1.0)
        mask_in = np.zeros((1, 1, self.mask_size, self.mask_size), np.float32)
        has_mask = np.zeros(1, np.float32)
        if prompt.previous is not None and prompt.previous.any():
            mask_in[0, 0] = self._to_lowres(prompt.previous, emb)
            has_mask[0] = 1.0
        feed = [emb.features, np.array([pts], np.float32), np.array([labels], np.float32),
                mask_in, has_mask]
        if self.has_orig_size:
            feed.append(np.array([emb.size[1], emb.size[0]], np.float32))
        out = self.decoder(*feed)
        return out[0][0], out[1][0]

    def _to_lowres(self, mask: np.ndarray, emb: SamEmbedding) -> np.ndarray:
        """A previous binary mask as decoder mask-input logits (+-20 where certain)."""
        m = self.mask_size
        s = self.input_size
        w, h = emb.size
        nh, nw = int(h * emb.scale + 0.5), int(w * emb.scale + 0.5)
        big = np.zeros((s, s), np.float32)
        big[:nh, :nw] = cv2.resize(mask.astype(np.float32), (nw, nh))
        return (cv2.resize(big, (m, m), interpolation=cv2.INTER_AREA) * 40 - 20).astype(np.float32)

    def _upscale(self, logit: np.ndarray, emb: SamEmbedding) -> np.ndarray:
        w, h = emb.size
        if logit.shape == (h, w):  # exports that resize inside the graph (orig_im_size)
            return logit > 0
        # the low-resolution logits cover the padded input square: crop the image's part
        # there, then resize once (the same as resizing to the input size, cropping and
        # resizing again, up to interpolation, at a fraction of the cost)
        r = logit.shape[-1] / self.input_size
        ch, cw = h * emb.scale * r, w * emb.scale * r
        crop = logit[: int(np.ceil(ch)), : int(np.ceil(cw))]
        # map output pixel centres to crop coordinates: x_crop = (x + 0.5) * cw / w - 0.5
        m = np.array([[cw / w, 0, 0.5 * cw / w - 0.5], [0, ch / h, 0.5 * ch / h - 0.5]],
                     np.float32)
        out = cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        return out > 0

    def predict(self, emb: SamEmbedding, prompt: Prompt) -> list[MaskProposal]:
        masks, iou = self.logits(emb, prompt)
        n_points = len(prompt.clicks) + (2 if prompt.box is not None else 0)
        # one ambiguous prompt (a single click): the three multi-mask outputs, best first;
        # more prompts: the single-mask output first, as SAM's authors do
        order = (list(np.argsort(-iou[1:]) + 1) if n_points <= 1 and masks.shape[0] > 1
                 else [0, *list(np.argsort(-iou[1:]) + 1)[:2]])
        return [MaskProposal(self._upscale(masks[i], emb), float(np.clip(iou[i], 0, 1)))
                for i in order[:3]]
