"""`images`: a folder of images (searched recursively) or a text file listing image paths
(one a line, relative to the list's folder). No labels; export writes the images alone."""

from __future__ import annotations

from pathlib import Path

from labelpilot.errors import FormatError
from labelpilot.formats.base import (
    Dataset,
    DatasetItem,
    ImageLocator,
    copy_image,
    list_files,
    read_text_lines,
)
from labelpilot.imageio import IMAGE_SUFFIXES


class Images:
    name = "images"
    description = "a folder or list file of images, no labels"

    def load(self, source: Path, *, images_dir: Path | None = None) -> Dataset:
        if source.is_dir():
            files = list_files(source, IMAGE_SUFFIXES)
            items = [DatasetItem(name=p.relative_to(source).as_posix(), path=p) for p in files]
            if not items:
                raise FormatError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found",
                                  path=source)
            return Dataset(items)
        if source.suffix.lower() in IMAGE_SUFFIXES:
            return Dataset([DatasetItem(name=source.name, path=source)])
        locator = ImageLocator([source.parent])
        items = []
        for n, ln in enumerate(read_text_lines(source), 1):
            name = ln.strip()
            if not name or name.startswith("#"):
                continue
            found = locator.find(name, label_file=source)
            if found is None:
                raise FormatError(f"image {name!r} not found", path=source, line=n)
            items.append(DatasetItem(name=Path(name).name, path=found))
        return Dataset(items)

    def save(self, dataset: Dataset, dest: Path) -> None:
        for item in dataset.items:
            copy_image(dataset, item, dest / item.name)
