"""Class-specific helpers: pretrained semantic-segmentation ONNX models (person, Pascal
VOC classes, road scenes) behind the interactive session interface. A positive click picks
the class under it (or the model's one class); the mask is that class's region connected
to the positive clicks, without the parts holding a negative click, inside the box if any.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from labelpilot.errors import ModelError
from labelpilot.models.base import MaskProposal, Prompt
from labelpilot.models.manifest import ModelManifest
from labelpilot.models.runtime import OrtSession


@dataclass
class SemanticEmbedding:
    probs: np.ndarray  # float16 [K, h, w] class probabilities at the model's output size
    size: tuple[int, int]  # original (width, height)

    @property
    def nbytes(self) -> int:
        return int(self.probs.nbytes)


class SemanticSegmenter:
    """Preprocessing keys: input_size [w, h], layout NHWC|NCHW, channels RGB|BGR,
    mean, std (x' = (x - mean) / std, x in 0..255), output logits|softmax|sigmoid,
    background (class index, or null), target (class index a click defaults to, or null)."""

    def __init__(self, manifest: ModelManifest, *, threads: int | None = None) -> None:
        self.name = manifest.name
        self.version = manifest.version
        self.labels = manifest.labels
        p = manifest.preprocessing
        self.input_w, self.input_h = (int(v) for v in p["input_size"])
        self.layout = p.get("layout", "NHWC")
        self.bgr = p.get("channels", "RGB") == "BGR"
        self.mean = np.array(p.get("mean", [0, 0, 0]), np.float32)
        self.std = np.array(p.get("std", [1, 1, 1]), np.float32)
        self.output = p.get("output", "logits")
        self.background = p.get("background")
        self.target = p.get("target")
        path, sha = manifest.file("model")
        self.session = OrtSession(path, sha256=sha, threads=threads)
        if len(self.session.input_names) != 1:
            raise ModelError(f"{path.name}: a segmentation helper takes one image input, "
                             f"this model takes {self.session.input_names}")

    def embed(self, image: np.ndarray) -> SemanticEmbedding:
        h, w = image.shape[:2]
        x = cv2.resize(image, (self.input_w, self.input_h), interpolation=cv2.INTER_LINEAR)
        if self.bgr:
            x = x[..., ::-1]
        x = (x.astype(np.float32) - self.mean) / self.std
        x = x[None] if self.layout == "NHWC" else x.transpose(2, 0, 1)[None]
        out = self.session(np.ascontiguousarray(x))[0][0]
        if self.layout == "NHWC":  # (h, w, K) -> (K, h, w)
            out = np.moveaxis(out, -1, 0)
        out = out.astype(np.float32)
        if self.output == "logits":
            if out.shape[0] == 1:
                out = 1 / (1 + np.exp(-out))
            else:
                e = np.exp(out - out.max(0, keepdims=True))
                out = e / e.sum(0, keepdims=True)
        # "softmax" / "sigmoid": already probabilities
        return SemanticEmbedding(out.astype(np.float16), (w, h))

    def save_embedding(self, emb: SemanticEmbedding) -> dict[str, np.ndarray]:
        return {"probs": emb.probs, "size": np.array(emb.size)}

    def load_embedding(self, a: dict[str, np.ndarray]) -> SemanticEmbedding:
        return SemanticEmbedding(a["probs"], (int(a["size"][0]), int(a["size"][1])))

    def class_map(self, emb: SemanticEmbedding) -> tuple[np.ndarray, np.ndarray]:
        """(per-pixel class index, its probability) at the image's size."""
        w, h = emb.size
        probs = emb.probs.astype(np.float32)
        if probs.shape[0] == 1:  # one class: probability vs background
            p = cv2.resize(probs[0], (w, h), interpolation=cv2.INTER_LINEAR)
            return (p > 0.5).astype(np.int32), np.maximum(p, 1 - p)
        up = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in probs])
        return up.argmax(0).astype(np.int32), up.max(0)

    def predict(self, emb: SemanticEmbedding, prompt: Prompt) -> list[MaskProposal]:
        w, h = emb.size
        cls, conf = self.class_map(emb)
        one_class = emb.probs.shape[0] == 1
        pos = [c for c in prompt.clicks if c.positive]
        if pos:
            wanted = {int(cls[int(c.y), int(c.x)]) for c in pos}
        elif prompt.box is not None:  # the box's most common non-background class
            x1, y1, x2, y2 = (int(v) for v in prompt.box)
            inside = cls[max(0, y1):y2, max(0, x1):x2].ravel()
            counts = np.bincount(inside, minlength=2)
            if self.background is not None and len(counts) > self.background:
                counts[self.background] = 0
            wanted = {int(counts.argmax())}
        else:
            wanted = set()
        if one_class:
            wanted = {1}
        elif self.target is not None and (not wanted or wanted <= {self.background}):
            wanted = {int(self.target)}
        wanted.discard(-1 if self.background is None else int(self.background))
        region = np.isin(cls, list(wanted)) if wanted else np.zeros((h, w), bool)
        if prompt.box is not None:
            bx1, by1, bx2, by2 = prompt.box
            box = np.zeros((h, w), bool)
            box[max(0, int(by1)):int(np.ceil(by2)), max(0, int(bx1)):int(np.ceil(bx2))] = True
            region &= box
        n, lab = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
        keep = set()
        ys, xs = np.nonzero(region)
        reach = 0.1 * float(np.hypot(h, w))
        for c in pos:
            k = int(lab[int(c.y), int(c.x)])
            if k == 0 and ys.size:  # just off the model's region: its nearest part, if close
                d2 = (xs - c.x) ** 2 + (ys - c.y) ** 2
                i = int(d2.argmin())
                if d2[i] <= reach ** 2:
                    k = int(lab[ys[i], xs[i]])
            if k:
                keep.add(k)
        if not pos and n > 1:  # a box alone: its largest part
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            keep = {int(sizes.argmax())}
        for c in prompt.clicks:
            if not c.positive:
                keep.discard(int(lab[int(c.y), int(c.x)]))
        mask = np.isin(lab, list(keep)) if keep else np.zeros((h, w), bool)
        quality = float(conf[mask].mean()) if mask.any() else 0.0
        return [MaskProposal(mask, quality)]
