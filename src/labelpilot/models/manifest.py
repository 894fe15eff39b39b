"""Model manifests: files with SHA-256, task, labels, preprocessing, version, metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from labelpilot.errors import ModelError
from labelpilot.models.runtime import verify_file


@dataclass
class ModelFile:
    path: str
    sha256: str
    url: str | None = None


@dataclass
class ModelManifest:
    """What a model is and how to run it. `files` maps a role (det, rec, cls) to a file;
    relative paths are relative to the manifest's folder."""

    name: str
    version: str
    task: str
    kind: str
    files: dict[str, ModelFile]
    labels: list[str] = field(default_factory=list)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    root: Path | None = None
    # optimized variants that passed the accuracy gate (`labelpilot models optimize`), by
    # name ("int8-cpu"): {"files": {role: {"path", "sha256"}}, "precision", "device",
    # "ms_per_image", "speedup", "metric", "size_bytes", "calibration", "created", ...}
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The `source` its proposals carry: model:<name>@<version>."""
        return f"model:{self.name}@{self.version}"

    def file(self, role: str) -> tuple[Path, str]:
        f = self.files.get(role)
        if f is None:
            raise ModelError(f"model {self.name} has no {role!r} file")
        p = Path(f.path)
        if not p.is_absolute() and self.root is not None:
            p = self.root / p
        return p, f.sha256

    def fastest_variant(self, device: str) -> str | None:
        """The kept variant for `device` (cpu, cuda) with the lowest time per image."""
        mine = [(float(v.get("ms_per_image", 0.0)), k) for k, v in self.variants.items()
                if v.get("device") == device]
        return min(mine)[1] if mine else None

    def with_variant(self, variant: str) -> ModelManifest:
        """This model running a variant's files in place of its own."""
        v = self.variants[variant]
        files = {**self.files, **{role: ModelFile(**f) for role, f in v["files"].items()}}
        return replace(self, files=files,
                       preprocessing={**self.preprocessing, **v.get("preprocessing", {})})

    def with_variant_files(self, files: dict[str, tuple[Path, str]],
                           preprocessing: dict[str, Any] | None = None) -> ModelManifest:
        """This model running other files (role -> path, SHA-256) in place of its own, and
        other preprocessing settings where given: a candidate variant being measured."""
        return replace(self, files={**self.files, **{role: ModelFile(str(p), sha)
                                                     for role, (p, sha) in files.items()}},
                       preprocessing={**self.preprocessing, **(preprocessing or {})})

    def verify(self) -> None:
        for role in self.files:
            verify_file(*self.file(role))

    def to_json(self) -> bytes:
        d = asdict(self)
        d.pop("root")
        return orjson.dumps(d, option=orjson.OPT_INDENT_2)

    @classmethod
    def load(cls, path: Path) -> ModelManifest:
        try:
            d = orjson.loads(path.read_bytes())
            files = {k: ModelFile(**v) for k, v in d.pop("files").items()}
            return cls(**d, files=files, root=path.parent)
        except (OSError, orjson.JSONDecodeError, TypeError, KeyError) as e:
            raise ModelError(f"{path}: not a valid model manifest ({e})") from None
