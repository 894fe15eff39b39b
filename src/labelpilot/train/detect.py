"""Custom auto-label: fine-tune a shipped ONNX detector on the accepted boxes of the
`train` split, export it (the same graph, new weights, parity-checked), register it.

The model is YOLOX-Nano (the catalogue's `yolox-nano`, COCO-pretrained) run as a trainable
module by `train.onnx_module`. Its 80 class channels are reused, so no layer changes shape
and the exported graph is the one that was trained: a project class is said by the COCO
class of its name, and by the COCO classes the pretrained model finds on its training
boxes (a project's "animal" by dog, horse, zebra...; see `_class_channels`). The exported
manifest names those channels after the project's classes and leaves the rest unnamed
(never reported). `--init scratch` re-initialises every weight (the benchmark's baseline).

Training: letterboxed 416x416 batches with flips and scale/brightness jitter; targets
assigned as YOLOX does (SimOTA: anchors in the box's centre region, ranked by how well the
model already classifies and fits the box, a dynamic number per box); losses: 1 - IoU^2 on
positives; objectness: 1 on positives and, elsewhere, what the starting model said (a
frozen copy), so objects the project does not label are not unlearnt; class scores of the
project's channels: on positives, the class's channel that already says it best is taught
(IoU-aware target), and away from the project's boxes they are pushed down where the
model sees an object. AdamW with warm-up and cosine decay over the time budget; the
weights kept are the best on held-out images, the starting ones included.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from labelpilot.annotations import object_boxes
from labelpilot.errors import LabelPilotError
from labelpilot.models.manifest import ModelFile, ModelManifest
from labelpilot.models.runtime import sha256_file
from labelpilot.store import repo
from labelpilot.train import TrainingCancelled
from labelpilot.train.memory import peak_resident_mb, release_freed_memory, reset_peak
from labelpilot.workspace import Workspace

SIZE = 416
STRIDES = (8, 16, 32)


@dataclass
class DetectTrainConfig:
    init: str = "pretrained"
    minutes: float | None = 5.0
    epochs: int | None = None
    name: str = "custom-detector"
    batch: int = 4
    lr: float = 1e-4
    body_lr: float = 1.0  # the pretrained body learns at this share of lr
    seed: int = 0
    base: str = "yolox-nano"
    # Also measure on the val images (and checkpoint) at least this often, in seconds of
    # wall time; None: only at each quarter of an epoch-bounded run.
    eval_seconds: float | None = 30.0


@dataclass
class DetectTrainResult:
    name: str
    classes: list[str]
    skipped_classes: list[str]
    train_images: int
    train_boxes: int
    steps: int
    seconds: float
    onnx_parity: float
    test: dict[str, Any] | None = None
    kept_step: int = 0  # the step whose weights were kept (best on validation; 0 = the start)
    val_map50: float = -1.0
    # project class -> the base model's classes whose channels say it (the first trained)
    base_classes: dict[str, list[str]] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def _torch() -> Any:
    from labelpilot.extras import require_torch

    return require_torch()


def training_boxes(ws: Workspace, split: str) -> tuple[list[tuple[Any, list[tuple[Any, str]]]],
                                                        list[str], list[str]]:
    """[(image row, [(x1,y1,x2,y2), label])], the classes with examples, the project's
    classes without any (warned and skipped)."""
    with ws.engine.connect() as conn:
        rows, anns = repo.confirmed_labels(conn, split)
        project = repo.label_names(conn)
    items = []
    for r in rows:
        boxes = [(box, a.label) for box, a in object_boxes(anns.get(r.id, []))
                 if not a.attributes.get("iscrowd")]
        if boxes:
            items.append((r, boxes))
    used = sorted({lab for _, bs in items for _, lab in bs})
    return items, used, [c for c in project if c not in used]


class DetectTrainer:
    def __init__(self, ws: Workspace, cfg: DetectTrainConfig,
                 progress: Callable[[dict[str, float]], None] | None = None,
                 cancelled: Callable[[], bool] | None = None,
                 warn: Callable[[str], None] | None = None,
                 run_dir: Path | None = None) -> None:
        """`run_dir`: where a checkpoint is kept at each evaluation (every 30 s, or each
        quarter of an epoch-bounded run), so that `run(resume=True)` goes on from it."""
        self.ws, self.cfg, self.run_dir = ws, cfg, run_dir
        self.progress, self.cancelled = progress, cancelled or (lambda: False)
        self.warn = warn or (lambda m: None)
        self.torch = _torch()

    # ---- data -------------------------------------------------------------------------
    def _base(self) -> ModelManifest:
        from labelpilot.models.registry import get_manifest

        try:
            m = get_manifest(self.cfg.base, self.ws.models_dir)
        except LabelPilotError:
            raise LabelPilotError(f"custom auto-label starts from {self.cfg.base!r}, which is "
                                  "not installed in this workspace",
                                  hint=f"labelpilot models add DIR {self.cfg.base}") from None
        if m.preprocessing.get("layout") != "yolox" or len(m.labels) != 80:
            raise LabelPilotError(f"{self.cfg.base} is not an 80-class YOLOX model")
        return m

    def _sample(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One augmented training input (CHW) and its boxes: letterboxed at a random scale
        and place, brightness jitter, a horizontal flip half the time."""
        h, w = image.shape[:2]
        r = SIZE / max(h, w) * random.uniform(0.7, 1.0)
        nw, nh = max(1, int(w * r)), max(1, int(h * r))
        canvas = np.full((SIZE, SIZE, 3), 114, np.float32)
        ox, oy = random.randint(0, SIZE - nw), random.randint(0, SIZE - nh)
        img = cv2.resize(image, (nw, nh)).astype(np.float32)
        img = np.clip(img * random.uniform(0.75, 1.25) + random.uniform(-20, 20), 0, 255)
        canvas[oy:oy + nh, ox:ox + nw] = img
        b = boxes.copy()
        b[:, :4] = b[:, :4] * r + np.array([ox, oy, ox, oy], np.float32)
        if random.random() < 0.5:
            canvas = canvas[:, ::-1]
            b[:, [0, 2]] = SIZE - b[:, [2, 0]]
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)), b

    # ---- targets and loss ------------------------------------------------------------
    def _grid(self) -> tuple[Any, Any]:
        torch = self.torch
        g, s = [], []
        for st in STRIDES:
            n = SIZE // st
            yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            g.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1))
            s.append(torch.full((n * n,), st))
        return torch.cat(g).float(), torch.cat(s).float()

    def _loss(self, out: Any, targets: list[np.ndarray], channels: Any, group_mask: Any,
              teacher_obj: Any = None) -> Any:
        """YOLOX's losses for one batch. `channels`: the channel each class trains;
        `group_mask` [classes, channels]: the channels that say each class; `teacher_obj`:
        the starting model's objectness, the target away from the project's boxes."""
        torch = self.torch
        grid, stride = self._grid_cache
        xy = (out[..., :2] + grid) * stride[:, None]
        wh = torch.exp(out[..., 2:4].clamp(-10, 10)) * stride[:, None]
        pred = torch.cat([xy - wh / 2, xy + wh / 2], -1)  # [B, A, 4]
        obj, cls = out[..., 4].clamp(1e-6, 1 - 1e-6), out[..., 5:].clamp(1e-6, 1 - 1e-6)
        centres = (grid + 0.5) * stride[:, None]
        box_losses, obj_t, cls_losses = [], torch.zeros_like(obj), []
        ignore = torch.zeros_like(obj, dtype=torch.bool)
        trained = group_mask.any(0).nonzero().reshape(-1)  # the channels the project uses
        column = torch.full((group_mask.shape[1],), -1, dtype=torch.long)
        column[trained] = torch.arange(len(trained))
        n_pos = 0

        def bce(p: Any, t: Any) -> Any:
            return torch.nn.functional.binary_cross_entropy(p, t, reduction="none")

        for b, t in enumerate(targets):
            if not len(t):
                continue
            gt = torch.from_numpy(t[:, :4]).float()
            lab = torch.from_numpy(t[:, 4]).long()
            inside = ((centres[None, :, 0] > gt[:, None, 0]) & (centres[None, :, 0] < gt[:, None, 2])
                      & (centres[None, :, 1] > gt[:, None, 1]) & (centres[None, :, 1] < gt[:, None, 3]))
            gc = (gt[:, :2] + gt[:, 2:]) / 2
            near = ((centres[None] - gc[:, None]).abs() < 2.5 * stride[None, :, None]).all(-1)
            cand = inside & near
            cand |= near & ~cand.any(1, keepdim=True)  # tiny boxes: the centre region alone
            ious = _box_iou(gt, pred[b].detach())  # [G, A]
            # SimOTA's cost (as YOLOX trains): how well the model already says the box's
            # class there (the best of the class's channels) and fits it, in the centre region
            with torch.no_grad():
                said = (cls[b].detach()[None] * group_mask[lab][:, None]).amax(-1)  # [G, A]
                score = (said * obj[b].detach()[None]).sqrt().clamp(1e-8, 1)
                cost = -score.log() - 3.0 * (ious + 1e-8).log() + 1e5 * (~cand).float()
            assigned = torch.full((pred.shape[1],), -1, dtype=torch.long)
            best = torch.full((pred.shape[1],), float("inf"))
            for g in range(len(gt)):
                c = cand[g].nonzero().reshape(-1)
                if not len(c):
                    continue
                k = max(1, min(len(c), int(ious[g, c].topk(min(10, len(c))).values.sum().item())))
                pick = c[cost[g, c].topk(k, largest=False).indices]
                better = cost[g, pick] < best[pick]
                assigned[pick[better]] = g
                best[pick[better]] = cost[g, pick[better]]
            pos = (assigned >= 0).nonzero().reshape(-1)
            if not len(pos):
                continue
            n_pos += len(pos)
            g_idx = assigned[pos]
            iou = _box_iou_pairs(pred[b, pos], gt[g_idx])
            box_losses.append((1 - iou ** 2).sum())
            obj_t[b, pos] = 1.0
            # the class's channel that already says it best there is the one taught (a dog
            # in a project's "animal" stays the base's dog); all its other channels go down
            said = cls[b, pos].detach() * group_mask[lab[g_idx]]
            target = torch.zeros(len(pos), len(trained))
            target[torch.arange(len(pos)), column[said.argmax(-1)]] = iou.detach().clamp(0.1, 1)
            cls_losses.append(bce(cls[b, pos][:, trained], target).sum())
            ignore[b] |= near.any(0)
        n = max(1, n_pos)
        # objectness: 1 on the project's objects; elsewhere what the starting model said
        # (`teacher_obj`), so a COCO object the project does not label stays an object and
        # is kept out by its class score instead; from scratch (no teacher), 0 elsewhere
        positive = obj_t > 0
        if teacher_obj is not None:
            obj_t = torch.where(positive, obj_t, teacher_obj)
        loss_obj = bce(obj, obj_t).sum() / n
        # class scores of the trained channels: down where something the project does not
        # label looks like an object (weighted by objectness; near a box nothing is pushed)
        negative = ~positive & ~ignore
        away = bce(cls[..., trained], torch.zeros_like(cls[..., trained])) \
            * obj.detach()[..., None]
        cls_losses.append(away[negative].sum())
        loss_box = torch.stack(box_losses).sum() / n if box_losses else out.sum() * 0
        loss_cls = torch.stack(cls_losses).sum() / n
        self.last_parts = {"box": float(loss_box.detach().item()),
                           "obj": float(loss_obj.detach().item()),
                           "cls": float(loss_cls.detach().item()), "positives": float(n_pos)}
        return 5 * loss_box + loss_obj + loss_cls

    def _class_channels(self, base: ModelManifest, model: Any, classes: list[str],
                        images: list[tuple[np.ndarray, np.ndarray]]) -> list[list[int]]:
        """Which of the base model's output channels say each project class, found on the
        training boxes: the pretrained `model` is run over the training images and each box
        votes for the class of the detection that covers it (IoU >= 0.5). A class's first
        channel (the one it trains) is the base class of the same name, else its most voted
        free one ("animal" from "dog"), else any free one. Other channels join a class when
        they found its boxes and at least half of their detections are its boxes (a
        project's "vehicle" takes "car", "bus" and "truck"; "person" is not taken for a
        project that does not label people)."""
        from labelpilot.geometry.iou import box_iou

        names = list(base.labels)
        votes: dict[str, Counter[int]] = {c: Counter() for c in classes}
        fired: dict[int, list[str | None]] = {}  # channel -> what its confident boxes were
        for img, boxes in images:
            d = model.detect(img, score_threshold=0.05)
            if not len(d.boxes):
                continue
            ious = box_iou(boxes[:, :4], d.boxes)  # [boxes, detections]
            for b, j in enumerate(ious.argmax(1)):
                if ious[b, j] >= 0.5:
                    votes[classes[int(boxes[b, 4])]][int(d.classes[j])] += 1
            for j, b in enumerate(ious.argmax(0)):
                if d.scores[j] >= 0.3:
                    hit = classes[int(boxes[b, 4])] if ious[b, j] >= 0.5 else None
                    fired.setdefault(int(d.classes[j]), []).append(hit)
        groups: dict[str, list[int]] = {c: [names.index(c)] for c in classes if c in names}
        taken = {g[0] for g in groups.values()}
        for c in sorted((c for c in classes if c not in groups),
                        key=lambda c: -max(votes[c].values(), default=0)):
            pick = next((k for k, _ in votes[c].most_common()
                         if k not in taken and names[k] not in classes), None)
            if pick is None:
                pick = next(k for k in range(len(names)) if k not in taken
                            and names[k] not in classes)
            groups[c] = [pick]
            taken.add(pick)
        # the other channels that say a class, the most voted first; each joins one class
        extra = sorted(((n, k, c) for c in classes for k, n in votes[c].items()),
                       reverse=True)
        for _, k, c in extra:
            hits = fired.get(k, [])
            if k in taken or names[k] in classes or not hits:
                continue
            if sum(h == c for h in hits) / len(hits) >= 0.5:
                groups[c].append(k)
                taken.add(k)
        return [groups[c] for c in classes]

    def _val_map(self, module: Any, base_model: Any, val: list[tuple[np.ndarray, list[Any]]],
                 labels_by_channel: dict[int, str]) -> float:
        """mAP@0.5 of the module on the held-out images (the project's classes only)."""
        from labelpilot.evaluation.detect import DetBox, GtBox, evaluate_detections

        torch = self.torch
        per_image = []
        mask = np.zeros(len(base_model.manifest.labels), np.float32)
        mask[list(labels_by_channel)] = 1  # the project's channels only, as exported
        with torch.no_grad():
            for img, boxes in val:
                x, sx, sy = base_model.preprocess(img)
                out = module(torch.from_numpy(x)).numpy()[0]
                h, w = img.shape[:2]
                d = base_model.decode_yolox_grid(out, scale=(sx, sy), size=(w, h),
                                                 class_mask=mask, min_score=0.01)
                dets = [DetBox((float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3])),
                               labels_by_channel[int(k)], float(sc))
                        for bx, sc, k in zip(d.boxes, d.scores, d.classes, strict=True)]
                per_image.append((dets, [GtBox(tuple(bx), lab) for bx, lab in boxes]))
        return float(evaluate_detections(per_image)["map50"])  # type: ignore[arg-type]

    @staticmethod
    def _conv_params(module: Any) -> list[str]:
        """ONNX names of the convolutions' weights and biases (the trainable layers)."""
        out = []
        for op, inputs, _, _ in module.nodes:
            if op == "Conv":
                out += [n for n in inputs[1:3] if n and n in module.names]
        return out

    # ---- the run ---------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> DetectTrainResult:
        torch = self.torch
        import onnx

        from labelpilot.train.onnx_module import OnnxModule

        cfg = self.cfg
        if cfg.init not in ("pretrained", "scratch"):
            raise LabelPilotError(f"--init must be pretrained or scratch, not {cfg.init!r}")
        reset_peak()
        items, classes, skipped = training_boxes(self.ws, "train")
        if not items:
            raise LabelPilotError("the train split has no accepted boxes to learn from",
                                  hint="label some images and put them in the train split "
                                       "(labelpilot import ... --split train, or in the UI)")
        for c in skipped:
            self.warn(f"class {c!r} has no accepted boxes in the train split: skipped")
        base = self._base()
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        images = [(self.ws.blobs.load_image(r), np.array(
            [[*bx, classes.index(lab)] for bx, lab in boxes], np.float32)) for r, boxes in items]
        from labelpilot.models.detect import DetectorModel

        base_model = DetectorModel(base, threads=2)  # finds the classes, decodes validation
        # from scratch the base's classes mean nothing: each class has its own channel
        groups = self._class_channels(base, base_model, classes,
                                      images if cfg.init == "pretrained" else [])
        chan = [g[0] for g in groups]  # the channel each class trains
        self.base_classes = {c: [base.labels[k] for k in g]
                            for c, g in zip(classes, groups, strict=True)}
        channels = torch.tensor(chan)
        group_mask = torch.zeros(len(classes), len(base.labels), dtype=torch.bool)
        for i, g in enumerate(groups):
            group_mask[i, g] = True
        path, sha = base.file("model")
        proto = onnx.load(str(path))
        module = OnnxModule(proto)
        if cfg.init == "scratch":
            with torch.no_grad():
                for n in self._conv_params(module):
                    p = module.param(n)
                    if p.dim() == 4:
                        torch.nn.init.kaiming_normal_(p, nonlinearity="relu")
                        p.mul_(0.5)
                    else:
                        p.zero_()
        self._grid_cache = self._grid()
        # validation: the val split, else a fifth of train (at least 2 images) held out; the
        # weights kept are the best on it, the starting ones included (so a few images can
        # not make a pretrained detector worse on held-out data)
        val_items, _, _ = training_boxes(self.ws, "val")
        if val_items:
            val = [(self.ws.blobs.load_image(r), bs) for r, bs in val_items]
        else:
            n_val = max(2, len(images) // 5) if len(images) >= 6 else 0
            order = list(range(len(images)))
            random.Random(cfg.seed).shuffle(order)
            val = [(images[i][0], items[i][1]) for i in order[:n_val]]
            images = [images[i] for i in order[n_val:]]
        labels_by_channel = {k: c for c, g in zip(classes, groups, strict=True) for k in g}
        # only the layers the graph computes with (not Resize's scales); the prediction
        # layers at the full rate, the pretrained body at body_lr x that
        pred = {module.names[n] for n in module.names if n.startswith("head.") and "_preds" in n}
        conv = {module.names[n] for n in self._conv_params(module)}
        head_params = [p for k, p in module.params.items() if k in pred]
        body_params = [p for k, p in module.params.items() if k in conv and k not in pred]
        param_groups: list[dict[str, Any]] = [{"params": head_params, "scale": 1.0},
                  {"params": body_params,
                   "scale": cfg.body_lr if cfg.init == "pretrained" else 1.0}]
        base_lr = cfg.lr if cfg.init == "pretrained" else cfg.lr * 4
        opt = torch.optim.AdamW(param_groups, lr=base_lr, weight_decay=5e-4)
        budget = (cfg.minutes or 0) * 60
        steps_per_epoch = max(1, math.ceil(len(images) / cfg.batch))
        total = cfg.epochs * steps_per_epoch if cfg.epochs else None
        # what a checkpoint carries besides the weights and the optimizer
        state: dict[str, Any] = {"step": 0, "seconds": 0.0, "best_score": -1.0, "best_step": 0,
                                 "history": []}
        best_state: dict[str, Any] | None = None
        ckpt = self.run_dir / "checkpoint.pt" if self.run_dir else None
        if resume and ckpt is not None and ckpt.is_file():
            saved = torch.load(ckpt, weights_only=False)
            if saved.get("classes") != classes or saved.get("init") != cfg.init:
                raise LabelPilotError(f"the checkpoint in {self.run_dir} is of another run "
                                      "(other classes or init)", hint="start a new training run")
            module.load_state_dict(saved["module"])
            opt.load_state_dict(saved["opt"])
            state, best_state = saved["state"], saved["best"]
            random.seed(cfg.seed + state["step"])
            torch.manual_seed(cfg.seed + state["step"])
        elif val:
            state["best_score"] = self._val_map(module, base_model, val, labels_by_channel)
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        # the starting model, frozen: what it says of objects the project does not label
        # is kept (pretrained only; from scratch there is nothing to keep)
        teacher = None
        if cfg.init == "pretrained":
            teacher = OnnxModule(proto)
            teacher.eval()
            for prm in teacher.parameters():
                prm.requires_grad_(False)
        t0 = time.time() - state["seconds"]

        def save() -> None:
            if ckpt is None:
                return
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"module": module.state_dict(), "opt": opt.state_dict(),
                        "state": {**state, "seconds": time.time() - t0}, "best": best_state,
                        "classes": classes, "init": cfg.init}, tmp)
            tmp.replace(ckpt)

        history: list[dict[str, float]] = state["history"]
        every = cfg.eval_seconds if cfg.eval_seconds is not None else math.inf
        next_eval = time.time() + every
        module.train()
        while True:
            step = state["step"]
            elapsed = time.time() - t0
            frac = (step / total) if total else (elapsed / budget if budget else 1.0)
            if self.cancelled():
                raise TrainingCancelled()
            if frac >= 1.0:
                break
            warm = min(1.0, (step + 1) / 20)
            for gparam in opt.param_groups:
                gparam["lr"] = base_lr * gparam["scale"] * warm * \
                    0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
            batch = random.sample(images, min(cfg.batch, len(images)))
            xs, ts = [], []
            for img, bx in batch:
                x, t = self._sample(img, bx)
                keep = (t[:, 2] - t[:, 0] > 2) & (t[:, 3] - t[:, 1] > 2)
                xs.append(x)
                ts.append(t[keep])
            batch_x = torch.from_numpy(np.stack(xs))
            teacher_obj = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_obj = teacher(batch_x)[..., 4]
            out = module(batch_x)
            loss = self._loss(out, ts, channels, group_mask, teacher_obj)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
            opt.step()
            step = state["step"] = step + 1
            point = {"step": step, "seconds": time.time() - t0, "loss": float(loss.item()),
                     **self.last_parts}
            del out, loss, batch_x, teacher_obj
            release_freed_memory()
            if time.time() >= next_eval or (total and step % max(1, total // 4) == 0):
                if self.cancelled():  # an evaluation takes a while: not for a cancelled run
                    raise TrainingCancelled()
                if val:
                    module.eval()
                    score = self._val_map(module, base_model, val, labels_by_channel)
                    module.train()
                    point["val_map50"] = score
                    if score > state["best_score"]:
                        state["best_score"], state["best_step"] = score, step
                        best_state = {k: v.detach().clone()
                                      for k, v in module.state_dict().items()}
                history.append(point)
                save()
                next_eval = time.time() + every
            else:
                history.append(point)
            if self.progress:
                self.progress(point)
        step = state["step"]
        best_score, best_step = state["best_score"], state["best_step"]
        module.eval()
        if val and best_state is not None:
            final = self._val_map(module, base_model, val, labels_by_channel)
            if final > best_score:
                best_score, best_step = final, step
            else:
                module.load_state_dict(best_state)
        self.best: dict[str, float] = {"val_images": len(val), "val_map50": best_score,
                                       "kept_step": best_step if val else step}
        out_dir = self.ws.models_dir / cfg.name
        parity = self._export(module, out_dir, base, labels_by_channel, sha)
        manifest = ModelManifest.load(out_dir / "manifest.json")
        result = DetectTrainResult(cfg.name, classes, skipped, len(items),
                                   sum(len(b) for _, b in items), step, time.time() - t0,
                                   parity, history=history[-200:])
        result.test = self._evaluate(manifest.name)
        manifest.metrics.update({"test": result.test, "train_images": len(items),
                                 "steps": step, "init": cfg.init, **self.best,
                                 "peak_rss_mb": round(peak_resident_mb(), 1),
                                 "base_classes": self.base_classes})
        result.kept_step = int(self.best["kept_step"])
        result.base_classes = dict(self.base_classes)
        result.val_map50 = float(self.best["val_map50"])
        (out_dir / "manifest.json").write_bytes(manifest.to_json())
        (out_dir / "history.json").write_text(json.dumps(history))
        return result

    def _export(self, module: Any, out: Path, base: ModelManifest,
                labels_by_channel: dict[int, str], base_sha: str) -> float:
        torch = self.torch
        out.mkdir(parents=True, exist_ok=True)
        x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (1, 3, SIZE, SIZE))
                             .astype(np.float32))
        parity = module.save_checked(out / "model.onnx", x)
        labels = [""] * 80
        for k, c in labels_by_channel.items():
            labels[k] = c
        pre = dict(base.preprocessing)
        manifest = ModelManifest(
            name=out.name, version=time.strftime("%Y%m%d%H%M%S"), task="detect", kind="detect",
            files={"model": ModelFile("model.onnx", sha256_file(out / "model.onnx"))},
            labels=labels, preprocessing=pre, metrics={"onnx_parity": parity},
            description=f"{base.name} fine-tuned ({self.cfg.init}) on "
                        f"{', '.join(sorted(set(labels_by_channel.values())))}",
            root=out)
        (out / "manifest.json").write_bytes(manifest.to_json())
        return parity

    def _evaluate(self, name: str) -> dict[str, Any] | None:
        from labelpilot.evaluation.run import evaluate_detector
        from labelpilot.models.registry import load_detector

        items, _, _ = training_boxes(self.ws, "test")
        if not items:
            return None
        return evaluate_detector(self.ws, load_detector(name, self.ws.models_dir), "test")


def _box_iou(a: Any, b: Any) -> Any:
    import torch

    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-9)


def _box_iou_pairs(a: Any, b: Any) -> Any:
    import torch

    lt = torch.max(a[:, :2], b[:, :2])
    rb = torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + 1e-9)
