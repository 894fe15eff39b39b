"""The demo workspace: industrial-style labels with text lines, imported the normal way.
Half the images come with reviewed labels (the train split); of the rest, half are
pre-labeled by the built-in OCR model (proposals to review) and half are unlabeled."""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import orjson
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from labelpilot.transfer import import_dataset
from labelpilot.workspace import Workspace

_WORDS = ["LOT", "EXP", "REF", "SN", "P/N", "QTY", "MFG", "BATCH", "CODE"]


def _sample(rng: random.Random, index: int) -> tuple[Image.Image, list[dict[str, object]]]:
    w, h = 480, 320
    y: float
    bg = tuple(rng.randint(200, 245) for _ in range(3))
    im = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(im)
    records = []
    y = 24
    for _ in range(rng.randint(3, 5)):
        size = rng.randint(22, 34)
        font = ImageFont.load_default(size=size)
        text = f"{rng.choice(_WORDS)} {rng.randint(10, 99)}{rng.choice('ABCDEFGHJK')}" \
               f"{rng.randint(1000, 9999)}"
        x = rng.randint(16, 80)
        x1, y1, x2, y2 = draw.textbbox((x, y), text, font=font)
        draw.text((x, y), text, fill=(rng.randint(0, 60),) * 3, font=font)
        pad = 4
        records.append({"transcription": text, "difficult": False,
                        "points": [[x1 - pad, y1 - pad], [x2 + pad, y1 - pad],
                                   [x2 + pad, y2 + pad], [x1 - pad, y2 + pad]]})
        y = y2 + rng.randint(18, 36)
        if y > h - 40:
            break
    im = im.filter(ImageFilter.GaussianBlur(0.6))
    return im, records


def build_demo(directory: Path, *, force: bool = False, count: int = 12) -> Workspace:
    if directory.exists() and force:
        shutil.rmtree(directory)
    if (directory / "labelpilot.toml").exists():
        return Workspace.open(directory)
    rng = random.Random(7)
    ws = Workspace.create(directory, name="demo", task="ocr", labels=["text"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "samples"
        folder.mkdir()
        fresh = Path(tmp) / "fresh"
        fresh.mkdir()
        lines = []
        for i in range(count):
            im, records = _sample(rng, i)
            name = f"label_{i:03d}.jpg"
            if i < count // 2:
                im.save(folder / name, quality=92)
                lines.append(f"samples/{name}\t{orjson.dumps(records).decode()}\n")
            else:
                im.save(fresh / name, quality=92)
        (folder / "Label.txt").write_text("".join(lines), encoding="utf-8")
        import_dataset(ws, folder, format="ppocrlabel", split="train")
        names = sorted(p.name for p in fresh.iterdir())
        import_dataset(ws, fresh, format="images")
    _prelabel(ws, names[: (len(names) + 1) // 2])
    return ws


def _prelabel(ws: Workspace, names: list[str]) -> None:
    """Proposals to review on the images `names`, from the built-in OCR model."""
    from labelpilot.models.registry import load_predictor
    from labelpilot.proposals import prelabel_targets, store_proposals

    model = load_predictor("ocr", ws.models_dir)
    with ws.engine.connect() as conn:
        rows = [r for r in prelabel_targets(conn, "new") if r.file_name in names]
    for row in rows:
        found = model.predict(ws.blobs.load_image(row))
        with ws.transaction() as conn:
            store_proposals(conn, image_id=row.id, proposals=found)
