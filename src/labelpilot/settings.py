"""Server settings, from the environment (`LABELPILOT_*`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABELPILOT_")

    max_upload_bytes: int = 50 * 1024 * 1024
    token_hours: float = 12.0
    claim_minutes: float = 30.0
    job_workers: int = 2
    # Threads for the (synchronous) route handlers.
    threads: int = 8
    # Slows each job item down (seconds): for demos and for tests that stop a job half-way.
    job_item_delay: float = 0.0
    # Disk kept per segmentation model for image embeddings (least recently used go first).
    embedding_cache_mb: int = 2048
