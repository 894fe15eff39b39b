"""Shared fixtures. Database-backed tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelpilot.workspace import Workspace

# Under pytest-xdist each worker is one process of several on a few cores: PyTorch's own
# thread pool (one thread a core by default) would have the workers' training steps fight
# over the cores. One thread a worker (read when torch is first imported, after this).
# ONNX Runtime likewise: one thread a session.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("LABELPILOT_THREADS_PER_MODEL", "1")

SHARED = Path(os.environ.get("LABELPILOT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
POSTGRES_URL = os.environ.get("LABELPILOT_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# In CI PostgreSQL must be there: a missing server fails the run instead of skipping.
REQUIRE_POSTGRES = bool(os.environ.get("CI") or os.environ.get("LABELPILOT_REQUIRE_POSTGRES"))

pytest_plugins = ["tests.clusters"]  # the Ray cluster and S3 server fixtures


def _postgres_schema() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(POSTGRES_URL)
    schema = f"lp_test_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as e:
        engine.dispose()
        if REQUIRE_POSTGRES:
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {e.orig}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the default SQLite file in the workspace, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield None
    else:
        yield from _postgres_schema()


@pytest.fixture
def make_workspace(tmp_path: Path, db_url: str | None) -> Iterator[Callable[..., Workspace]]:
    opened: list[Workspace] = []

    def make(task: str = "detect", labels: list[str] | None = None,
             name: str = "ws") -> Workspace:
        ws = Workspace.create(tmp_path / name, task=task, labels=labels,
                              database_url=db_url)
        opened.append(ws)
        return ws

    yield make
    for ws in opened:
        ws.close()


def write_image(path: Path, width: int = 64, height: int = 48, *, seed: int = 0,
                fmt: str | None = None, exif_orientation: int | None = None) -> Path:
    """A small real image with distinct content per seed (so hashes differ)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    im.save(path, format=fmt, **kwargs)
    return path


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared test data not found at {SHARED}")
    return SHARED


DATA = Path(__file__).resolve().parent / "data"


def page_dataset(folder: Path) -> Path:
    """scikit-image's scanned page as page.png with its hand-made ICDAR ground truth."""
    import cv2
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "page.png"), data.page())
    (folder / "gt_page.txt").write_text((DATA / "ocr" / "gt_page.txt").read_text())
    return folder


def page_truth() -> list[tuple[list[tuple[float, float]], str]]:
    out = []
    for ln in (DATA / "ocr" / "gt_page.txt").read_text().splitlines():
        v = ln.split(",", 8)
        xy = [float(x) for x in v[:8]]
        out.append((list(zip(xy[0::2], xy[1::2], strict=True)), v[8]))
    return out


@pytest.fixture(scope="session")
def ocr_model():  # type: ignore[no-untyped-def]
    from labelpilot.models.registry import load_ocr

    return load_ocr("ocr", None, threads=1)


# The longest tests (a minute or more each on 2 cores; `make test` prints the slowest),
# run first: with `-n 2` they then spread over both workers instead of one of them
# finishing alone at the end while the other waits.
LONGEST_FIRST = (
    "tests/optimize/test_optimize_ocr.py::test_the_builtin_ocr_model_through_the_gate",
    "tests/train/test_detect_tiles.py::",
    "tests/train/test_training_memory.py::",
    "tests/serving/test_real_label_studio.py::",
    "tests/web/test_models_page.py::test_an_admin_optimizes_a_detector_from_the_models_page",
    "tests/optimize/test_optimize.py::test_a_variant_that_passes_the_gate_is_kept_and_run",
    "tests/train/test_ocr_rec.py::",
    "tests/active/test_loop.py::",
    "tests/train/test_detect_train.py::",
    "tests/optimize/test_optimize.py::test_optimize_from_the_cli",
    "tests/server/test_schemathesis.py::",
    "tests/cli/test_segment.py::",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((k for k, p in enumerate(LONGEST_FIRST) if item.nodeid.startswith(p)),
                    len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order
