"""The environment's settings (`LABELPILOT_*`), in one place: the database, the threads
models use, and the server's limits and leases. `Settings()` reads them anew."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABELPILOT_")

    # Overrides the workspace's database URL (labelpilot.toml), e.g. for PostgreSQL.
    database_url: str | None = None
    # Threads each ONNX model may use (default: every core).
    threads_per_model: int | None = None
    # Whether ONNX Runtime's threads spin between operators (its own default is on). Off
    # here: LabelPilot runs several sessions one after the other (OCR's detector, then its
    # recognizer) and side by side (job workers, smart tools, the model server's workers),
    # and a spinning pool takes the cores the next session needs (benchmarks/ort_spinning.py:
    # OCR 1.3-1.4x, two jobs at once 1.7x faster off).
    ort_spinning: bool = False

    max_upload_bytes: int = 50 * 1024 * 1024
    # An archive of images and label files imported from the browser.
    max_import_bytes: int = 2 * 1024 * 1024 * 1024
    # Every other request body (JSON): counted as it streams in, chunked or not.
    max_request_bytes: int = 16 * 1024 * 1024
    token_hours: float = 12.0
    claim_minutes: float = 30.0
    job_workers: int = 2
    # Threads for the (synchronous) route handlers.
    threads: int = 8
    # Slows each job item down (seconds): for demos and for tests that stop a job half-way.
    job_item_delay: float = 0.0
    # Poll instead of waiting for job signals: runner workers look every second, event
    # streams every half second (what the server did before job signals; the reference
    # of benchmarks/idle_cost.py).
    idle_poll: bool = False
    # Where the server's pre-labeling jobs run their models when a request asks for the
    # ray executor (`"executor": "ray"`), or always with executor=ray: a Ray cluster's
    # address (None: RAY_ADDRESS, else one the server starts), workers (None: one per CPU)
    # GPUs per worker, and where the workers read images (None: the workspace's blob
    # folder; a folder's path as they mount it; s3://bucket/prefix with the S3 endpoint of
    # a store that is not AWS). Requests choose local or ray, never the address.
    executor: str = "local"
    ray_address: str | None = None
    ray_workers: int | None = None
    ray_gpus_per_worker: float = 0.0
    ray_blobs: str | None = None
    s3_endpoint: str | None = None
    # Disk kept per segmentation model for image embeddings (least recently used go first).
    embedding_cache_mb: int = 2048
