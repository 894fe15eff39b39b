from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labelpilot.errors import ModelError
from labelpilot.models.manifest import ModelFile, ModelManifest
from labelpilot.models.ocr import OcrModel, builtin_manifest
from labelpilot.models.runtime import OrtSession, choose_providers, sha256_file


def test_builtin_manifest_checksums_hold() -> None:
    m = builtin_manifest()
    m.verify()
    assert m.source == "model:ocr@ppocrv6-small"


def test_checksum_mismatch_is_refused_before_use(tmp_path: Path) -> None:
    m = builtin_manifest()
    det, _ = m.file("det")
    copy = tmp_path / "det.onnx"
    shutil.copyfile(det, copy)
    with copy.open("r+b") as f:  # one flipped byte
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    expected = m.files["det"].sha256
    with pytest.raises(ModelError, match=rf"{copy} has SHA-256 .* but its manifest expects "
                                         rf"{expected}"):
        OrtSession(copy, sha256=expected)


def test_corrupt_onnx_is_refused_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model at all" * 10)
    with pytest.raises(ModelError, match=rf"{bad} is not a loadable ONNX model"):
        OrtSession(bad, sha256=sha256_file(bad))
    manifest = ModelManifest("broken", "1", "ocr", "ocr",
                             files={"det": ModelFile("bad.onnx", sha256_file(bad)),
                                    "rec": ModelFile("bad.onnx", sha256_file(bad))},
                             root=tmp_path)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        OcrModel(manifest)


def test_sessions_do_not_spin_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime's threads spin between operators by default; LabelPilot's sessions run
    one after another and side by side, so they wait without spinning unless the setting
    asks (see benchmarks/ort_spinning.py)."""
    rec, _ = builtin_manifest().file("rec")
    monkeypatch.delenv("LABELPILOT_ORT_SPINNING", raising=False)

    def spinning() -> str:
        opts = OrtSession(rec, threads=1).session.get_session_options()
        return opts.get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning() == "0"
    monkeypatch.setenv("LABELPILOT_ORT_SPINNING", "1")
    assert spinning() == "1"


def test_missing_gpu_falls_back_to_cpu_with_a_warning() -> None:
    with pytest.warns(RuntimeWarning, match="running on the CPU instead"):
        assert choose_providers("cuda") == ["CPUExecutionProvider"]
    assert choose_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(ModelError, match="unknown device"):
        choose_providers("tpu")


def test_manifest_roundtrip(tmp_path: Path) -> None:
    m = builtin_manifest()
    (tmp_path / "manifest.json").write_bytes(m.to_json())
    back = ModelManifest.load(tmp_path / "manifest.json")
    assert back.files == m.files and back.source == m.source
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ModelError, match="not a valid model manifest"):
        ModelManifest.load(tmp_path / "bad.json")
