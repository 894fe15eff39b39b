"""Fine-tune the text recognizer on the workspace's reviewed lines.

Starts from the shipped PP-OCRv6 recognizer (or the same network with fresh weights),
trains with CTC on the accepted lines of the `train` split (validating on `val`, carved
from `train` when there is none; `test` is never read), extends the character set when the
labels need it, keeps checkpoints (resumable), stops early on validation accuracy, exports
the best weights back into the ONNX graph, checks parity, and registers the model.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labelpilot.annotations import text_corners
from labelpilot.errors import LabelPilotError, ValidationError
from labelpilot.geometry.crops import rectify
from labelpilot.models.manifest import ModelFile, ModelManifest
from labelpilot.models.ocr import OcrModel, builtin_manifest, norm_pad
from labelpilot.models.runtime import sha256_file
from labelpilot.store import repo
from labelpilot.train import TrainingCancelled
from labelpilot.train.memory import peak_resident_mb, release_freed_memory, reset_peak, resident_mb
from labelpilot.workspace import Workspace

HEIGHT = 48
MIN_VAL = 8


@dataclass
class TrainConfig:
    init: str = "pretrained"
    epochs: int | None = None
    minutes: float | None = None
    batch: int = 32
    # the sum of padded line widths in one batch, in pixels at HEIGHT: bounds a step's
    # memory whatever the lines' lengths (32 lines of 320 px take ~4 GB; wider lines make
    # smaller batches)
    batch_width: int = 32 * 320
    lr: float | None = None
    seed: int = 0
    patience: int = 4
    eval_every: int = 20
    augment: bool = True
    name: str | None = None
    # the workspace OCR model to start from (a recognizer fine-tuned before); None: the
    # shipped PP-OCRv6 one
    base: str | None = None


@dataclass
class Line:
    crop: np.ndarray
    text: str


@dataclass
class TrainResult:
    model: str
    path: str
    val_accuracy: float
    val_cer: float
    steps: int
    seconds: float
    new_characters: list[str]
    skipped: list[str]
    peak_rss_mb: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)


def _crop(image: np.ndarray, shape: Any) -> np.ndarray:
    return rectify(image, np.asarray(text_corners(shape), dtype=np.float32))


def collect_lines(ws: Workspace, split: str) -> tuple[list[Line], list[str]]:
    """Accepted text lines of one split as crops; and what had to be skipped, and why."""

    lines: list[Line] = []
    skipped: list[str] = []
    with ws.engine.connect() as conn:
        rows, anns = repo.confirmed_labels(conn, split)
    for row in rows:
        mine = [a for a in anns.get(row.id, []) if a.text is not None]
        if not mine:
            continue
        try:
            image = ws.blobs.load_image(row)
        except LabelPilotError as e:
            skipped.append(e.message)
            continue
        for a in mine:
            text = (a.text or "").strip()
            if not text:
                skipped.append(f"{row.file_name}: an empty transcription (annotation {a.id})")
                continue
            try:
                crop = _crop(image, a.shape)
            except ValidationError as e:
                skipped.append(f"{row.file_name}: annotation {a.id}: {e.message}")
                continue
            lines.append(Line(crop, text))
    return lines, skipped


def padded_width(crop: np.ndarray) -> int:
    """The width a crop takes in a batch: scaled to HEIGHT, rounded up to 8 pixels."""
    ratio = crop.shape[1] / max(1, crop.shape[0])
    return max(HEIGHT, math.ceil(ratio * HEIGHT / 8) * 8)


def pack_by_width(widths: list[int], most: int, budget: int) -> list[list[int]]:
    """Consecutive runs of `widths` (indices into it) as batches of at most `most` items
    whose count times their widest item stays within `budget`; an item wider than the
    budget goes alone."""
    batches: list[list[int]] = []
    current: list[int] = []
    widest = 0
    for k, w in enumerate(widths):
        if current and (len(current) >= most or (len(current) + 1) * max(widest, w) > budget):
            batches.append(current)
            current, widest = [], 0
        current.append(k)
        widest = max(widest, w)
    if current:
        batches.append(current)
    return batches


# --- augmentation suited to industrial markings --------------------------------------


def augment(crop: np.ndarray, rng: random.Random) -> np.ndarray:
    out = crop
    h, w = out.shape[:2]
    if rng.random() < 0.5:  # a slightly different perspective
        d = 0.04
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        dst = src + np.array([[rng.uniform(-d, d) * w, rng.uniform(-d, d) * h]
                              for _ in range(4)], dtype=np.float32)
        out = cv2.warpPerspective(out, cv2.getPerspectiveTransform(src, dst), (w, h),
                                  borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.4:  # defocus
        out = cv2.GaussianBlur(out, (3, 3), rng.uniform(0.3, 1.2))
    if rng.random() < 0.5:  # contrast and brightness
        a, b = rng.uniform(0.6, 1.4), rng.uniform(-40, 40)
        out = np.clip(out.astype(np.float32) * a + b, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # dot dropout: printers skip dots
        mask = np.random.default_rng(rng.randrange(1 << 30)).random(out.shape[:2]) < 0.03
        out = out.copy()
        out[mask] = np.median(out.reshape(-1, out.shape[-1]), axis=0).astype(np.uint8)
    return out


# --- the trainer ------------------------------------------------------------------


class Trainer:
    def __init__(self, ws: Workspace, cfg: TrainConfig, *, run_dir: Path,
                 progress: Callable[[dict[str, float]], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> None:
        from labelpilot.extras import require_torch

        self.torch = require_torch()
        self.ws = ws
        self.cfg = cfg
        self.run_dir = run_dir
        self.progress = progress
        self.cancelled = cancelled or (lambda: False)
        self.base = builtin_manifest() if cfg.base in (None, "ocr") else _base_manifest(
            ws, cfg.base)

    def data(self) -> tuple[list[Line], list[Line], list[str]]:
        train, skipped = collect_lines(self.ws, "train")
        if not train:
            raise LabelPilotError("the train split has 0 accepted text lines to learn from",
                                  hint="accept reviewed lines of train images (or import a "
                                       "ppocr-rec set with --split train)")
        val, skipped_val = collect_lines(self.ws, "val")
        skipped += skipped_val
        if not val:
            n_val = max(MIN_VAL, len(train) // 10)
            if len(train) < n_val + MIN_VAL:
                raise LabelPilotError(
                    f"{len(train)} accepted train lines are too few to hold out a validation "
                    f"set: at least {n_val + MIN_VAL} are needed ({MIN_VAL} to train, "
                    f"{n_val} to validate)", hint="review more lines, or assign some to val")
            rng = random.Random(self.cfg.seed)
            order = list(range(len(train)))
            rng.shuffle(order)
            val = [train[i] for i in order[:n_val]]
            train = [train[i] for i in order[n_val:]]
        return train, val, skipped

    def run(self, *, resume: bool = False) -> TrainResult:
        torch = self.torch
        import onnx

        from labelpilot.train.onnx_module import OnnxModule

        torch.manual_seed(self.cfg.seed)
        rng = random.Random(self.cfg.seed)
        reset_peak()
        train, val, skipped = self.data()
        rec_path, _ = self.base.file("rec")
        proto = onnx.load(str(rec_path))
        base_model = OcrModel(self.base, threads=1)
        charset = list(base_model.charset)  # index 0 is the blank
        known = set(charset)
        new_chars = sorted({c for ln in train + val for c in ln.text} - known)
        module = OnnxModule(proto)
        if new_chars:
            module.extend_classes(len(new_chars))
            charset += new_chars
        if self.cfg.init == "scratch":
            for p in module.params.values():
                if p.dim() > 1:
                    torch.nn.init.kaiming_uniform_(p, a=math.sqrt(5))
                else:
                    torch.nn.init.zeros_(p) if p.abs().mean() < 0.5 else torch.nn.init.ones_(p)
        index = {c: i for i, c in enumerate(charset)}
        too_long = []
        for ln in list(train):
            limit = max(1, math.ceil(HEIGHT * ln.crop.shape[1] / max(1, ln.crop.shape[0]) / 8))
            if len(ln.text) > limit:
                too_long.append(f"{ln.text!r} is longer than its crop allows ({limit} steps)")
                train.remove(ln)
        skipped += too_long
        lr = self.cfg.lr or (2e-4 if self.cfg.init == "pretrained" else 1e-3)
        opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-4)
        ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
        state: dict[str, Any] = {"step": 0, "epoch": 0, "best": -1.0, "seconds": 0.0, "history": [],
                 "bad_evals": 0}
        ckpt = self.run_dir / "checkpoint.pt"
        best_path = self.run_dir / "best.pt"
        if resume and ckpt.is_file():
            saved = torch.load(ckpt, weights_only=False)
            module.load_state_dict(saved["module"])
            opt.load_state_dict(saved["opt"])
            state = saved["state"]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        steps_per_epoch = max(1, len(pack_by_width(sorted(padded_width(ln.crop) for ln in train),
                                                   self.cfg.batch, self.cfg.batch_width)))
        total_steps = (self.cfg.epochs or 10**9) * steps_per_epoch
        budget = (self.cfg.minutes or 1e9) * 60
        start = time.monotonic() - state["seconds"]

        def elapsed() -> float:
            return time.monotonic() - start

        def lr_at(step: int) -> float:
            frac = step / total_steps if self.cfg.epochs else elapsed() / budget
            warm = min(1.0, (step + 1) / 20)
            return lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

        def save(path: Path) -> None:
            tmp = path.with_suffix(".tmp")
            torch.save({"module": module.state_dict(), "opt": opt.state_dict(),
                        "state": {**state, "seconds": elapsed()}, "charset": charset}, tmp)
            os.replace(tmp, path)

        done = False
        while not done:
            batches = self._batches(train, rng)
            for idx in batches:
                if self.cancelled():
                    raise TrainingCancelled()
                if state["step"] >= total_steps or elapsed() >= budget:
                    done = True
                    break
                module.train()
                for g in opt.param_groups:
                    g["lr"] = lr_at(state["step"])
                x, targets, lengths = self._tensor([train[i] for i in idx], index, rng)
                logits = module(x, logits=True)  # N, T, C
                logp = logits.log_softmax(-1).permute(1, 0, 2)
                inp = torch.full((x.shape[0],), logp.shape[0], dtype=torch.long)
                loss = ctc(logp, targets, inp, lengths)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), 5.0)
                opt.step()
                state["step"] += 1
                loss_value = loss.item()
                del x, logits, logp, loss
                release_freed_memory()
                if state["step"] % self.cfg.eval_every == 0 or state["step"] == 1:
                    acc, cer = self.evaluate(module, val, charset)
                    point = {"step": state["step"], "seconds": round(elapsed(), 2),
                             "loss": loss_value, "val_accuracy": acc, "val_cer": cer,
                             "rss_mb": round(resident_mb(), 1)}
                    state["history"].append(point)
                    if acc > state["best"]:
                        state["best"] = acc
                        state["bad_evals"] = 0
                        save(best_path)
                    else:
                        state["bad_evals"] += 1
                    save(ckpt)
                    if self.progress:
                        self.progress(point)
                    if state["bad_evals"] >= self.cfg.patience * max(
                            1, steps_per_epoch // self.cfg.eval_every):
                        done = True
                        break
            else:
                state["epoch"] += 1
                if self.cfg.epochs and state["epoch"] >= self.cfg.epochs:
                    done = True
        # final evaluation and the best weights
        acc, cer = self.evaluate(module, val, charset)
        state["history"].append({"step": state["step"], "seconds": round(elapsed(), 2),
                                 "loss": float("nan"), "val_accuracy": acc, "val_cer": cer,
                                 "rss_mb": round(resident_mb(), 1)})
        if acc > state["best"] or not best_path.is_file():
            state["best"] = acc
            save(best_path)
        module.load_state_dict(torch.load(best_path, weights_only=False)["module"])
        best_acc, best_cer = self.evaluate(module, val, charset)
        save(ckpt)
        peak = round(peak_resident_mb(), 1)
        name = self.cfg.name or f"ocr-{time.strftime('%Y%m%d-%H%M%S')}"
        path = self.register(module, charset, name, {
            "val_accuracy": best_acc, "val_cer": best_cer, "train_lines": len(train),
            "val_lines": len(val), "steps": state["step"], "init": self.cfg.init,
            "seconds": round(elapsed(), 1), "peak_rss_mb": peak}, state["history"])
        return TrainResult(name, str(path), best_acc, best_cer, state["step"],
                           round(elapsed(), 1), new_chars, skipped, peak, state["history"])

    def _batches(self, lines: list[Line], rng: random.Random) -> list[list[int]]:
        # Similar widths together (less padding), batches in random order; a batch holds at
        # most `batch` lines and `batch_width` padded pixels.
        order = sorted(range(len(lines)), key=lambda i: lines[i].crop.shape[1]
                       / max(1, lines[i].crop.shape[0]) + rng.random() * 0.5)
        batches = pack_by_width([padded_width(lines[i].crop) for i in order],
                                self.cfg.batch, self.cfg.batch_width)
        out = [[order[k] for k in b] for b in batches]
        rng.shuffle(out)
        return out

    def _tensor(self, lines: list[Line], index: dict[str, int], rng: random.Random
                ) -> tuple[Any, Any, Any]:
        torch = self.torch
        crops = [augment(ln.crop, rng) if self.cfg.augment else ln.crop for ln in lines]
        width = max(padded_width(c) for c in crops)
        x = torch.from_numpy(np.stack([norm_pad(c, HEIGHT, width) for c in crops]))
        targets = torch.tensor([index[c] for ln in lines for c in ln.text], dtype=torch.long)
        lengths = torch.tensor([len(ln.text) for ln in lines], dtype=torch.long)
        return x, targets, lengths

    def evaluate(self, module: Any, lines: list[Line], charset: list[str]
                 ) -> tuple[float, float]:
        from labelpilot.evaluation.ocr import edit_distance

        torch = self.torch
        module.eval()
        right = errors = chars = 0
        widths = [padded_width(ln.crop) for ln in lines]
        order = sorted(range(len(lines)), key=widths.__getitem__)
        chunks = pack_by_width([widths[i] for i in order], 64, 2 * self.cfg.batch_width)
        with torch.no_grad():
            for ks in chunks:
                chunk = [lines[order[k]] for k in ks]
                width = max(widths[order[k]] for k in ks)
                x = torch.from_numpy(np.stack([norm_pad(ln.crop, HEIGHT, width)
                                               for ln in chunk]))
                best = module(x, logits=True).argmax(-1).numpy()
                for seq, ln in zip(best, chunk, strict=True):
                    keep = np.ones(len(seq), dtype=bool)
                    keep[1:] = seq[1:] != seq[:-1]
                    keep &= seq != 0
                    text = "".join(charset[k] for k in seq[keep])
                    right += text == ln.text
                    errors += edit_distance(text, ln.text)
                    chars += max(1, len(ln.text))
        release_freed_memory()
        return right / max(1, len(lines)), errors / max(1, chars)

    def register(self, module: Any, charset: list[str], name: str, metrics: dict[str, Any],
                 history: list[dict[str, float]]) -> Path:
        """Export to ONNX (checking parity with the module), write the manifest."""
        torch = self.torch
        out = self.ws.models_dir / name
        version = _next_version(out / "manifest.json")
        out.mkdir(parents=True, exist_ok=True)
        x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 3, HEIGHT, 160))
                             .astype(np.float32))
        parity = module.save_checked(out / "rec.onnx", x)
        (out / "dict.txt").write_text("\n".join(charset[1:]) + "\n", encoding="utf-8")
        (out / "history.json").write_text(json.dumps(history, indent=1))
        plot_history(history, out / "curves.png")
        det, det_sha = self.base.file("det")
        cls, cls_sha = self.base.file("cls")
        manifest = ModelManifest(
            name=name, version=version, task="ocr", kind="ocr",
            files={"det": ModelFile(str(det), det_sha), "cls": ModelFile(str(cls), cls_sha),
                   "rec": ModelFile("rec.onnx", sha256_file(out / "rec.onnx")),
                   "dict": ModelFile("dict.txt", sha256_file(out / "dict.txt"))},
            labels=["text"], metrics={**metrics, "onnx_parity": parity},
            description=f"PP-OCRv6 small det + recognizer fine-tuned ({self.cfg.init}) on "
                        f"{metrics['train_lines']} lines", root=out)
        (out / "manifest.json").write_bytes(manifest.to_json())
        return out


def _base_manifest(ws: Workspace, name: str) -> ModelManifest:
    """A workspace OCR model to fine-tune further (its recognizer and its characters)."""
    from labelpilot.models.registry import get_manifest

    manifest = get_manifest(name, ws.models_dir)
    if manifest.kind != "ocr" or "rec" not in manifest.files:
        raise LabelPilotError(f"{name} is a {manifest.kind} model, not an OCR model with a "
                              "recognizer to fine-tune", hint="name an OCR model (--base)")
    return manifest


def _next_version(previous: Path) -> str:
    """The version a model trained again under its name gets: one more than the last (its
    proposals, scores and variants then tell the two apart), or 1."""
    if not previous.is_file():
        return "1"
    try:
        old = ModelManifest.load(previous).version
    except LabelPilotError:
        return "1"
    return str(int(old) + 1) if old.isdigit() else f"{old}.1"


def plot_history(history: list[dict[str, float]], path: Path) -> None:
    """Validation accuracy (and loss) against training time, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["seconds"] for h in history], [h["val_accuracy"] for h in history], marker=".")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("validation line accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)
