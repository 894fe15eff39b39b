"""`models add`: catalogue models fetched over HTTP (a local server here) or from a local
file, always checked against the catalogue's SHA-256; nothing left behind on failure."""

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from labelpilot.errors import ModelError
from labelpilot.models import catalogue
from labelpilot.models.catalogue import CatalogueEntry, CatalogueFile, install
from labelpilot.models.registry import list_models, load_model
from labelpilot.models.semantic import SemanticSegmenter


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_download_checks_the_sha_and_installs(shared: Path, http_dir, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = http_dir
    real = catalogue.entry("selfie-person")
    data = (shared / "models" / "seg_selfie_segmentation.onnx").read_bytes()
    (root / "selfie.onnx").write_bytes(data)
    (root / "damaged.onnx").write_bytes(data[:-10] + b"0123456789")
    f = real.files[0]

    def entry_at(url: str) -> CatalogueEntry:
        return CatalogueEntry(real.name, real.task, real.kind, real.description,
                              (CatalogueFile(f.role, f.filename, url, f.sha256),), real.labels,
                              real.preprocessing, real.licence)

    models = tmp_path / "models"
    monkeypatch.setitem(catalogue.CATALOGUE, "selfie-person", entry_at(f"{base}/damaged.onnx"))
    with pytest.raises(ModelError, match=r"has SHA-256 .* but the catalogue's selfie-person"):
        install(models, "selfie-person")
    assert not any(models.iterdir())  # nothing half-installed
    monkeypatch.setitem(catalogue.CATALOGUE, "selfie-person", entry_at(f"{base}/missing.onnx"))
    with pytest.raises(ModelError, match="could not download"):
        install(models, "selfie-person")
    monkeypatch.setitem(catalogue.CATALOGUE, "selfie-person", entry_at(f"{base}/selfie.onnx"))
    m = install(models, "selfie-person")
    assert m.kind == "semantic" and (models / "selfie-person" / f.filename).read_bytes() == data
    assert "selfie-person" in [i.name for i in list_models(models)]
    assert isinstance(load_model("selfie-person", models), SemanticSegmenter)


def test_from_a_local_file_or_folder(shared: Path, tmp_path: Path) -> None:
    m = install(tmp_path / "m", "deeplabv3-pascal",
                str(shared / "models" / "deeplabv3_mnv2_pascal_257.onnx"))
    assert m.labels[15] == "person"
    m2 = install(tmp_path / "m", "meet-person", str(shared / "models"))
    assert m2.name == "meet-person"
    with pytest.raises(ModelError, match="SHA-256"):
        install(tmp_path / "m", "road-adas",
                str(shared / "models" / "seg_mediapipe_meet.onnx"))
    with pytest.raises(Exception, match="no catalogue model 'nope'"):
        install(tmp_path / "m", "nope")


def test_a_reinstalled_model_is_loaded_again(shared: Path, tmp_path: Path) -> None:
    """The process-wide model cache is keyed by the manifest's version and files: the same
    name installed anew with other files gives the new model, not the cached one."""
    d = tmp_path / "m"
    install(d, "selfie-person", str(shared / "models" / "seg_selfie_segmentation.onnx"))
    first = load_model("selfie-person", d)
    assert load_model("selfie-person", d) is first
    m = (d / "selfie-person" / "manifest.json")
    text = m.read_text().replace('"version": "1"', '"version": "2"')
    m.write_text(text)
    assert load_model("selfie-person", d) is not first
