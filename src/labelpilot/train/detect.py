"""Custom auto-label: fine-tune a YOLOX detector (the catalogue's `yolox-nano`, or any
installed detector with a YOLOX head, `--base`) on the accepted boxes of the `train`
split, export it (the same graph with a class layer of the project's own, parity-checked),
register it.

The graph is trained as it is, run by `train.onnx_module`; only its class layer changes:
one output channel per project class. A class the base model knows by name (a project's
`car` in a COCO model) starts from the base's own channel for it; any other class starts
from nothing (small weights, the prior bias YOLOX uses: a 1% chance everywhere) and is
learnt, never borrowed from a base class whose detections happen to overlap its boxes.
Training takes the sigmoids off the objectness and class outputs, so the losses see logits.

Training follows YOLOX (see `train.yolox_loss`: SimOTA assignment, IoU, objectness and
IoU-aware class losses, checked against the reference) with what few images need:
mosaic, copy-paste, scale, HSV and flip augmentation (`train.augment`); first only the
prediction layers learn (the pretrained body frozen, so those steps are cheap), then
everything, the body at a tenth of the rate; warm-up and cosine decay over the time
budget; an exponential moving average of the weights is what is measured and kept; the
weights kept are the best on held-out images (the val split, else a fifth of train),
the starting ones included.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labelpilot.annotations import object_boxes
from labelpilot.errors import LabelPilotError
from labelpilot.models.manifest import ModelFile, ModelManifest
from labelpilot.models.runtime import sha256_file
from labelpilot.store import repo
from labelpilot.train import TrainingCancelled
from labelpilot.train.augment import AugmentConfig, Augmenter, slice_tiles
from labelpilot.train.memory import peak_resident_mb, release_freed_memory, reset_peak
from labelpilot.workspace import Workspace

STRIDES = (8, 16, 32)
PRIOR = 0.01  # a new class's starting score everywhere (YOLOX's prior bias)
PRIOR_BIAS = -math.log((1 - PRIOR) / PRIOR)


@dataclass
class DetectTrainConfig:
    init: str = "pretrained"
    minutes: float | None = 5.0
    epochs: int | None = None
    name: str = "custom-detector"
    batch: int = 8
    lr: float = 2e-3  # the prediction layers' rate (AdamW)
    body_lr: float = 0.1  # the pretrained body learns at this share of lr, once unfrozen
    freeze: float = 0.2  # the share of the run in which only the prediction layers learn
    ema: float = 0.998  # weight of the moving average (ramped up over the first steps)
    seed: int = 0
    base: str = "yolox-nano"
    # large images with small objects: learn (and later detect) in tiles of this many
    # pixels overlapping by `overlap`, as tiled inference sees them; "auto": chosen from
    # the sizes of the boxes (see `choose_tile`)
    tile: int | str | None = None
    overlap: float = 0.2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
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
    base: str = ""
    # project class -> the base model's class its channel started from ([]: a new class)
    base_classes: dict[str, list[str]] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds_per_step: dict[str, float] = field(default_factory=dict)
    # the display thresholds chosen on the held-out images (None: the base model's kept)
    thresholds: dict[str, Any] | None = None
    # trained on tiles: {"tile", "overlap", "train_tiles", "val_tiles"}
    tiling: dict[str, Any] | None = None
    # milliseconds a held-out image takes to pre-label (2 threads; tiles included)
    ms_per_image: float | None = None
    # `train_bases`: each base model tried, with its figures (the winner first)
    bases: list[dict[str, Any]] = field(default_factory=list)


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


TINY = 4.0  # px at the network's input: the finest stride is 8, a box under half of it is lost


def tiny_boxes(items: list[tuple[Any, list[tuple[Any, str]]]], size: tuple[int, int],
               tile: int | None = None) -> list[str]:
    """Per class, the boxes that shrink under TINY px when their image (or its `tile`-px
    tiles) is letterboxed to the network's input `size`: too small to learn (or find) at
    that size."""
    small: dict[str, int] = {}
    total: dict[str, int] = {}
    widest = 0
    for row, boxes in items:
        w, h = (min(row.width, tile), min(row.height, tile)) if tile else (row.width, row.height)
        r = min(size[0] / w, size[1] / h)
        for (x1, y1, x2, y2), lab in boxes:
            total[lab] = total.get(lab, 0) + 1
            if min(x2 - x1, y2 - y1) * r < TINY:
                small[lab] = small.get(lab, 0) + 1
                widest = max(widest, row.width, row.height)
    if tile:
        return [f"{lab}: {n} of {total[lab]} boxes are under {TINY:g} px once a {tile} px "
                f"tile is scaled to the model's {size[0]}x{size[1]} input: too small to learn "
                f"at that size; train with a smaller --tile (about {max(size)} px)"
                for lab, n in sorted(small.items())]
    return [f"{lab}: {n} of {total[lab]} boxes are under {TINY:g} px once the image is "
            f"scaled to the model's {size[0]}x{size[1]} input (images up to {widest} px): too "
            f"small to learn at that size; train on tiles (--tile {max(size)} to "
            f"{2 * max(size)}), which pre-labeling then uses too"
            for lab, n in sorted(small.items())]


TILE_TARGET = 12.0  # px: the small side a box should keep at the network's input


def choose_tile(items: list[tuple[Any, list[tuple[Any, str]]]], size: tuple[int, int]
                ) -> tuple[int | None, str]:
    """A tile size for `train --tile auto`, from the boxes: the smallest quarter of the
    boxes (by their small side) should keep TILE_TARGET px once a tile is scaled to the
    network's input; None when whole images already do that (or a tile would not be
    smaller than the images). Also a sentence saying why."""
    sides = sorted(min(x2 - x1, y2 - y1) for _, boxes in items for (x1, y1, x2, y2), _ in boxes)
    if not sides:
        return None, "no boxes to choose a tile size from"
    small = float(sides[len(sides) // 4])
    net = float(min(size))
    longest = sorted(max(r.width, r.height) for r, _ in items)[len(items) // 2]
    if small * net / longest >= TILE_TARGET:
        return None, (f"a quarter of the boxes are under {small:.0f} px, which stay "
                      f"{small * net / longest:.0f} px at the network's input on whole "
                      f"images ({longest} px long): no tiles needed")
    tile = max(int(net), int(small * net / TILE_TARGET) // 32 * 32)
    if tile >= max(max(r.width, r.height) for r, _ in items):
        return None, (f"the tile the boxes ask for ({tile} px) is not smaller than the "
                      "images: whole images")
    return tile, (f"a quarter of the boxes are under {small:.0f} px: {tile} px tiles keep them "
                  f"{small * net / tile:.0f} px or more at the network's {int(net)} px input "
                  f"(whole {longest} px images would make them {small * net / longest:.1f} px)")


@dataclass
class YoloxHead:
    """Where a YOLOX graph's class layer is: per level, the class convolution's weight and
    bias initializers and the objectness and class sigmoids that feed the level's output;
    also the prediction layers (box, objectness and class convolutions) as a whole."""
    classes: int
    cls_convs: list[tuple[str, str]]
    sigmoids: list[str]  # node output names
    reshapes: list[str]  # initializers [1, 5 + classes, -1]
    preds: set[str]  # the initializers of every level's box, objectness and class layers


def find_yolox_head(proto: Any) -> YoloxHead:
    from onnx import TensorProto, numpy_helper

    g = proto.graph
    made_by = {o: n for n in g.node for o in n.output}
    inits = {i.name: i for i in g.initializer}
    convs, sigmoids = [], []
    preds: set[str] = set()
    for n in g.node:
        if n.op_type != "Concat" or len(n.input) != 3:
            continue
        obj, cls = made_by.get(n.input[1]), made_by.get(n.input[2])
        if obj is None or cls is None or obj.op_type != "Sigmoid" or cls.op_type != "Sigmoid":
            continue
        conv = made_by.get(cls.input[0])
        if conv is None or conv.op_type != "Conv" or len(conv.input) < 3 \
                or conv.input[1] not in inits or conv.input[2] not in inits:
            continue
        convs.append((conv.input[1], conv.input[2]))
        sigmoids += [obj.output[0], cls.output[0]]
        for layer in (made_by.get(n.input[0]), made_by.get(obj.input[0]), conv):
            if layer is not None and layer.op_type == "Conv":
                preds.update(i for i in layer.input[1:3] if i in inits)
    if len(convs) != len(STRIDES):
        raise LabelPilotError("the base model's graph is not a YOLOX head this trainer knows "
                              f"(found {len(convs)} output levels of obj/class sigmoids, "
                              f"not {len(STRIDES)})", hint="use --base yolox-nano")
    nc = int(numpy_helper.to_array(inits[convs[0][0]]).shape[0])
    reshapes = [i.name for i in g.initializer if i.data_type == TensorProto.INT64
                and numpy_helper.to_array(i).tolist() == [1, 5 + nc, -1]]
    return YoloxHead(nc, convs, sigmoids, reshapes, preds)


def with_classes(proto: Any, head: YoloxHead, weights: list[tuple[np.ndarray, np.ndarray]]
                 ) -> tuple[Any, Any]:
    """The graph with new class layers (`weights`: per level, weight [N, C, 1, 1] and bias
    [N]), as exported (sigmoids in place) and as trained (objectness and class logits)."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    n = int(weights[0][1].shape[0])
    new = {name: arr for (w, b), (wn, bn) in zip(weights, head.cls_convs, strict=True)
           for name, arr in ((wn, w), (bn, b))}
    for r in head.reshapes:
        new[r] = np.array([1, 5 + n, -1], np.int64)
    for init in out.graph.initializer:
        if init.name in new:
            init.CopyFrom(numpy_helper.from_array(new[init.name], init.name))
    del out.graph.value_info[:]  # the shapes recorded for 80 classes; ONNX Runtime infers them
    for o in out.graph.output:
        dims = o.type.tensor_type.shape.dim
        if dims and dims[-1].HasField("dim_value"):
            dims[-1].dim_value = 5 + n
    logits = onnx.ModelProto()
    logits.CopyFrom(out)
    for node in logits.graph.node:
        if node.op_type == "Sigmoid" and node.output[0] in head.sigmoids:
            node.op_type = "Identity"
    return out, logits


class DetectTrainer:
    def __init__(self, ws: Workspace, cfg: DetectTrainConfig,
                 progress: Callable[[dict[str, float]], None] | None = None,
                 cancelled: Callable[[], bool] | None = None,
                 warn: Callable[[str], None] | None = None,
                 run_dir: Path | None = None, out_dir: Path | None = None) -> None:
        """`run_dir`: where a checkpoint is kept at each evaluation (every 30 s, or each
        quarter of an epoch-bounded run), so that `run(resume=True)` goes on from it.
        `out_dir`: where the model is written (default: registered in the workspace as
        `cfg.name`)."""
        self.ws, self.cfg, self.run_dir = ws, cfg, run_dir
        self.out_dir = out_dir or ws.models_dir / cfg.name
        self.tile: int | None = None  # the tile size trained on (`cfg.tile`, or chosen)
        self.progress, self.cancelled = progress, cancelled or (lambda: False)
        self.warn = warn or (lambda m: None)
        self.torch = _torch()

    # ---- the base model ---------------------------------------------------------------
    def _base(self) -> ModelManifest:
        from labelpilot.models.registry import get_manifest, workspace_manifests

        try:
            m = get_manifest(self.cfg.base, self.ws.models_dir)
        except LabelPilotError:
            raise LabelPilotError(f"custom auto-label starts from {self.cfg.base!r}, which is "
                                  "not installed in this workspace",
                                  hint=f"labelpilot models add DIR {self.cfg.base}") from None
        layout = m.preprocessing.get("layout")
        if layout != "yolox":
            trainable = [x.name for x in workspace_manifests(self.ws.models_dir).values()
                         if x.task == "detect" and x.preprocessing.get("layout") == "yolox"]
            raise LabelPilotError(
                f"{self.cfg.base} has a {layout or 'unknown'} output layout, which this trainer "
                "cannot train (it trains detectors with a YOLOX head)",
                hint=f"use --base {' or '.join(trainable) if trainable else 'yolox-nano'}")
        return m

    def class_layer(self, proto: Any, head: YoloxHead, base: ModelManifest,
                      classes: list[str]) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                   dict[str, list[str]]]:
        """Per level, the class layer for the project's classes: a class the base model
        has by name keeps its channel (pretrained); any other starts with small weights and
        the prior bias. Also which base class each class started from."""
        from onnx import numpy_helper

        inits = {i.name: i for i in proto.graph.initializer}
        names = [lab.strip().lower() for lab in base.labels]
        source = {c: names.index(c.strip().lower()) if self.cfg.init == "pretrained"
                  and c.strip().lower() in names else None for c in classes}
        rng = np.random.default_rng(self.cfg.seed)
        out = []
        for wn, bn in head.cls_convs:
            w0, b0 = numpy_helper.to_array(inits[wn]), numpy_helper.to_array(inits[bn])
            w = rng.normal(0, 0.01, (len(classes), *w0.shape[1:])).astype(np.float32)
            b = np.full(len(classes), PRIOR_BIAS, np.float32)
            for i, c in enumerate(classes):
                k = source[c]
                if k is not None:
                    w[i], b[i] = w0[k], b0[k]
            out.append((w, b))
        return out, {c: [base.labels[k]] if k is not None else [] for c, k in source.items()}

    def _val_map(self, module: Any, base_model: Any, val: list[tuple[np.ndarray, list[Any]]],
                 classes: list[str]) -> float:
        """mAP@0.5 of the (logit) module on the held-out images."""
        from labelpilot.evaluation.detect import DetBox, GtBox, evaluate_detections

        torch = self.torch
        per_image = []
        with torch.no_grad():
            for img, boxes in val:
                x, sx, sy = base_model.preprocess(img)
                out = module(torch.from_numpy(x))[0]
                out[:, 4:] = out[:, 4:].sigmoid()
                h, w = img.shape[:2]
                d = base_model.decode_yolox_grid(out.numpy(), scale=(sx, sy), size=(w, h),
                                                 class_mask=np.ones(len(classes), np.float32),
                                                 min_score=0.01)
                dets = [DetBox((float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3])),
                               classes[int(k)], float(sc))
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

    def _to_input(self, x: np.ndarray, settings: Any) -> np.ndarray:
        """An augmented BGR 0-255 batch [B, 3, H, W] as the base model's input."""
        if settings.channels == "RGB":
            x = x[:, ::-1]
        if any(settings.mean) or any(v != 1 for v in settings.std):
            x = (x - np.array(settings.mean, np.float32)[None, :, None, None]) \
                / np.array(settings.std, np.float32)[None, :, None, None]
        return np.ascontiguousarray(x, np.float32)

    # ---- the run ---------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> DetectTrainResult:
        torch = self.torch
        import onnx

        from labelpilot.models.detect import DetectorModel, check_tiling
        from labelpilot.train.onnx_module import OnnxModule
        from labelpilot.train.yolox_loss import anchor_grid, yolox_loss

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
        base_model = DetectorModel(base, threads=2)  # preprocesses and decodes validation
        settings = base_model.settings
        size = (int(settings.input_size[0]), int(settings.input_size[1]))
        tile, why = (choose_tile(items, size) if cfg.tile == "auto"
                     else (int(cfg.tile) if cfg.tile else None, ""))
        if cfg.tile == "auto":
            self.warn(f"--tile auto: {why}")
        tiling = check_tiling(tile, cfg.overlap, "detect",
                              [max(r.width, r.height) for r, _ in items])
        self.tile = tile
        for w in tiny_boxes(items, size, tile):
            self.warn(w)
        path, _ = base.file("model")
        proto = onnx.load(str(path))
        head = find_yolox_head(proto)
        weights, self.base_classes = self.class_layer(proto, head, base, classes)
        export_proto, train_proto = with_classes(proto, head, weights)
        module = OnnxModule(train_proto)
        if cfg.init == "scratch":
            with torch.no_grad():
                for n in self._conv_params(module):
                    p = module.param(n)
                    if p.dim() == 4:
                        torch.nn.init.kaiming_normal_(p, nonlinearity="relu")
                        p.mul_(0.5)
                    else:
                        p.zero_()
                for _, bn in head.cls_convs:
                    module.param(bn).fill_(PRIOR_BIAS)
        # the prediction layers (box, objectness, class) learn first; the rest is the body
        pred = {module.names[n] for n in head.preds if n in module.names}
        conv = {module.names[n] for n in self._conv_params(module)}
        head_params = [p for k, p in module.params.items() if k in pred]
        body_params = [p for k, p in module.params.items() if k in conv and k not in pred]
        pretrained = cfg.init == "pretrained"
        param_groups: list[dict[str, Any]] = [
            {"params": head_params, "scale": 1.0},
            {"params": body_params, "scale": cfg.body_lr if pretrained else 1.0}]
        opt = torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=5e-4)
        ema = OnnxModule(train_proto)
        ema.load_state_dict(module.state_dict())
        ema.eval()
        for prm in ema.parameters():
            prm.requires_grad_(False)
        grid, stride = anchor_grid(size, STRIDES)
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
        # held-out whole images choose the display thresholds; during training, their
        # tiles (when training on tiles) say how it goes, as the model sees them
        val_whole = val
        tiles_info = None
        if tiling is not None:
            rng = random.Random(cfg.seed)
            n_images = len(images)
            images = slice_tiles(images, tiling.windows, rng)
            val = [(img, [(tuple(float(v) for v in b[:4]), classes[int(b[4])]) for b in bs])
                   for img, bs in slice_tiles(
                       [(img, np.array([[*bx, classes.index(lab)] for bx, lab in boxes],
                                       np.float32).reshape(-1, 5)) for img, boxes in val],
                       tiling.windows, rng)]
            tiles_info = {"tile": tiling.size, "overlap": tiling.overlap,
                          "chosen": "auto" if cfg.tile == "auto" else "given",
                          "train_images": n_images, "train_tiles": len(images),
                          "val_tiles": len(val)}
        augment = Augmenter(images, size, cfg.augment, random.Random(cfg.seed))
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
            if saved.get("classes") != classes or saved.get("init") != cfg.init \
                    or saved.get("base", cfg.base) != cfg.base \
                    or saved.get("tile", cfg.tile) != cfg.tile:
                raise LabelPilotError(f"the checkpoint in {self.run_dir} is of another run "
                                      "(other classes, base, init or tiles)",
                                      hint="start a new training run")
            module.load_state_dict(saved["module"])
            ema.load_state_dict(saved["ema"])
            opt.load_state_dict(saved["opt"])
            state, best_state = saved["state"], saved["best"]
            random.seed(cfg.seed + state["step"])
            augment.rng.seed(cfg.seed + state["step"])
            torch.manual_seed(cfg.seed + state["step"])
        elif val:
            state["best_score"] = self._val_map(ema, base_model, val, classes)
            best_state = {k: v.detach().clone() for k, v in ema.state_dict().items()}
        t0 = time.time() - state["seconds"]

        def save() -> None:
            if ckpt is None:
                return
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"module": module.state_dict(), "ema": ema.state_dict(),
                        "opt": opt.state_dict(), "state": {**state, "seconds": time.time() - t0},
                        "best": best_state, "classes": classes, "init": cfg.init,
                        "base": cfg.base, "tile": cfg.tile}, tmp)
            tmp.replace(ckpt)

        history: list[dict[str, float]] = state["history"]
        every = cfg.eval_seconds if cfg.eval_seconds is not None else math.inf
        next_eval = time.time() + every
        timing = {"data": 0.0, "forward": 0.0, "loss": 0.0, "backward": 0.0, "update": 0.0}
        timed_steps = 0
        module.train()
        while True:
            step = state["step"]
            elapsed = time.time() - t0
            frac = (step / total) if total else (elapsed / budget if budget else 1.0)
            if self.cancelled():
                raise TrainingCancelled()
            if frac >= 1.0:
                break
            # first the prediction layers alone (pretrained: the body frozen), then all
            frozen = pretrained and frac < cfg.freeze
            for prm in body_params:
                prm.requires_grad_(not frozen)
            warm = min(1.0, (step + 1) / 20)
            for gparam in opt.param_groups:
                gparam["lr"] = cfg.lr * gparam["scale"] * warm * \
                    (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
            t = time.perf_counter()
            xs, ts = [], []
            for _ in range(cfg.batch):
                x, b = augment.sample()
                xs.append(x)
                ts.append(b)
            batch_x = torch.from_numpy(self._to_input(np.stack(xs), settings))
            t_data = time.perf_counter()
            out = module(batch_x)
            t_fwd = time.perf_counter()
            loss, parts = yolox_loss(out, ts, grid, stride)
            t_loss = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t_bwd = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
            opt.step()
            step = state["step"] = step + 1
            d = cfg.ema * (1 - math.exp(-step / 50))
            with torch.no_grad():
                for e, p in zip(ema.parameters(), module.parameters(), strict=True):
                    e.mul_(d).add_(p.detach(), alpha=1 - d)
            t_end = time.perf_counter()
            if not frozen:
                timed_steps += 1
                for k, v in zip(timing, (t_data - t, t_fwd - t_data, t_loss - t_fwd,
                                         t_bwd - t_loss, t_end - t_bwd), strict=True):
                    timing[k] += v
            point = {"step": step, "seconds": time.time() - t0, "loss": float(loss.item()),
                     "frozen": float(frozen), **parts}
            del out, loss, batch_x
            release_freed_memory()
            if time.time() >= next_eval or (total and step % max(1, total // 4) == 0):
                if self.cancelled():  # an evaluation takes a while: not for a cancelled run
                    raise TrainingCancelled()
                if val:
                    score = self._val_map(ema, base_model, val, classes)
                    point["val_map50"] = score
                    if score > state["best_score"]:
                        state["best_score"], state["best_step"] = score, step
                        best_state = {k: v.detach().clone() for k, v in ema.state_dict().items()}
                history.append(point)
                save()
                next_eval = time.time() + every
            else:
                history.append(point)
            if self.progress:
                self.progress(point)
        step = state["step"]
        best_score, best_step = state["best_score"], state["best_step"]
        if val and best_state is not None:
            final = self._val_map(ema, base_model, val, classes)
            if final > best_score:
                best_score, best_step = final, step
            else:
                ema.load_state_dict(best_state)
        self.best: dict[str, float] = {"val_images": len(val), "val_map50": best_score,
                                       "kept_step": best_step if val else step}
        out_dir = self.out_dir
        exported = OnnxModule(export_proto)
        exported.load_state_dict(ema.state_dict())
        parity = self._export(exported, out_dir, base, classes, size)
        manifest = ModelManifest.load(out_dir / "manifest.json")
        thresholds, ms_per_image = self._thresholds(manifest, val_whole) if val_whole \
            else (None, None)
        if thresholds:
            manifest.preprocessing.update(score_threshold=thresholds["score_threshold"],
                                          class_thresholds=thresholds["class_thresholds"])
        result = DetectTrainResult(cfg.name, classes, skipped, len(items),
                                   sum(len(b) for _, b in items), step, time.time() - t0,
                                   parity, history=history[-200:], base=base.name)
        result.seconds_per_step = {k: round(v / timed_steps, 4) for k, v in timing.items()} \
            if timed_steps else {}
        result.test = self._evaluate(manifest)
        manifest.metrics.update({"test": result.test, "train_images": len(items),
                                 "steps": step, "init": cfg.init, **self.best,
                                 "peak_rss_mb": round(peak_resident_mb(), 1),
                                 "base": base.name, "base_classes": self.base_classes,
                                 "thresholds": thresholds, "tiling": tiles_info})
        result.kept_step = int(self.best["kept_step"])
        result.base_classes = dict(self.base_classes)
        result.val_map50 = float(self.best["val_map50"])
        result.thresholds = thresholds
        result.ms_per_image = ms_per_image
        result.tiling = tiles_info
        (out_dir / "manifest.json").write_bytes(manifest.to_json())
        (out_dir / "history.json").write_text(json.dumps(history))
        return result

    def _export(self, module: Any, out: Path, base: ModelManifest, classes: list[str],
                size: tuple[int, int]) -> float:
        torch = self.torch
        out.mkdir(parents=True, exist_ok=True)
        x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (1, 3, size[1], size[0]))
                             .astype(np.float32))
        parity = module.save_checked(out / "model.onnx", x)
        pre = dict(base.preprocessing)
        if self.tile:  # the model detects large images in the tiles it learnt on
            pre.update(tile=int(self.tile), tile_overlap=float(self.cfg.overlap))
        manifest = ModelManifest(
            name=self.cfg.name, version=time.strftime("%Y%m%d%H%M%S"), task="detect", kind="detect",
            files={"model": ModelFile("model.onnx", sha256_file(out / "model.onnx"))},
            labels=list(classes), preprocessing=pre,
            metrics={"onnx_parity": parity},
            description=f"{base.name} fine-tuned ({self.cfg.init}) on {', '.join(classes)}",
            root=out)
        (out / "manifest.json").write_bytes(manifest.to_json())
        return parity

    def _thresholds(self, manifest: ModelManifest, val: list[tuple[np.ndarray, list[Any]]]
                    ) -> tuple[dict[str, Any], float]:
        """Display thresholds for the trained model, chosen on the held-out images (see
        evaluation.detect.choose_thresholds): the base model's were set for its own
        training, and a fine-tuned model's scores run higher or lower than them. Also the
        milliseconds an image took (the median)."""
        from labelpilot.evaluation.detect import DetBox, GtBox, choose_thresholds
        from labelpilot.evaluation.run import EVAL_MIN_SCORE
        from labelpilot.models.detect import DetectorModel

        model = DetectorModel(manifest, threads=2)
        per_image = []
        seconds = []
        for img, boxes in val:
            t = time.perf_counter()
            found = model.predict(img, score_threshold=EVAL_MIN_SCORE)
            seconds.append(time.perf_counter() - t)
            dets = [DetBox(a.shape.bbox(), a.label, float(a.score or 0.0)) for a in found]
            per_image.append((dets, [GtBox(tuple(b), lab) for b, lab in boxes]))
        # what a pre-label costs (the first image, which warms the session up, left out)
        ms = round(1000 * float(np.median(seconds[1:] or seconds)), 1)
        return {**choose_thresholds(per_image), "images": len(val)}, ms

    def _evaluate(self, manifest: ModelManifest) -> dict[str, Any] | None:
        from labelpilot.evaluation.run import evaluate_detector
        from labelpilot.models.detect import DetectorModel

        items, _, _ = training_boxes(self.ws, "test")
        if not items:
            return None
        return evaluate_detector(self.ws, DetectorModel(manifest, threads=2), "test")


def train_bases(ws: Workspace, cfg: DetectTrainConfig, bases: list[str], run_dir: Path, *,
                progress: Callable[[int, dict[str, float]], None] | None = None,
                cancelled: Callable[[], bool] | None = None,
                warn: Callable[[str], None] | None = None,
                resume: bool = False) -> DetectTrainResult:
    """Fine-tune each base model in turn (each for the whole budget, on the same data and
    held-out images) and register the one that does best on the held-out images as
    `cfg.name` (never chosen on the test split: that is what the report shows it on).
    The result is the winner's, with `bases`: each base's figures, the winner first.
    `progress(k, point)`: the k-th base's points. Interrupted, it goes on from where it
    was: a base already trained is not trained again."""
    import shutil
    from dataclasses import asdict, replace

    for base in bases:  # every base can be trained, before any training starts
        DetectTrainer(ws, replace(cfg, base=base))._base()
    results: list[DetectTrainResult] = []
    for k, base in enumerate(bases):
        here = run_dir / base
        done = here / "result.json"
        if resume and done.is_file():
            results.append(DetectTrainResult(**json.loads(done.read_text())))
            continue
        trainer = DetectTrainer(ws, replace(cfg, base=base), progress=_nth(progress, k),
                                cancelled=cancelled, warn=warn, run_dir=here,
                                out_dir=here / "model")
        r = trainer.run(resume=resume)
        done.write_text(json.dumps(asdict(r)))
        results.append(r)
    # the best on the held-out images; on a tie (or none held out) the first named
    order = sorted(range(len(results)), key=lambda i: (-results[i].val_map50, i))
    rows = []
    for i in order:
        r = results[i]
        rows.append({"base": r.base, "val_map50": r.val_map50, "steps": r.steps,
                     "seconds": round(r.seconds, 1), "ms_per_image": r.ms_per_image,
                     "seconds_per_step": r.seconds_per_step,
                     "test_map50": r.test["map50"] if r.test else None,
                     "test_accept_rate": r.test["accept_rate"] if r.test else None,
                     "tiling": r.tiling})
    winner = results[order[0]]
    winner.bases = rows
    dest = ws.models_dir / cfg.name
    manifest = ModelManifest.load(run_dir / winner.base / "model" / "manifest.json")
    manifest.metrics["bases"] = rows
    (run_dir / winner.base / "model" / "manifest.json").write_bytes(manifest.to_json())
    if dest.exists():
        shutil.rmtree(dest)
    (run_dir / winner.base / "model").replace(dest)
    return winner


def _nth(progress: Callable[[int, dict[str, float]], None] | None, k: int
         ) -> Callable[[dict[str, float]], None] | None:
    """The progress callback of the k-th of several trainings."""
    if progress is None:
        return None
    report = progress
    return lambda point: report(k, point)
