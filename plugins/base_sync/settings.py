"""The sync library's settings, from the environment (SYNC_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SyncSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNC_", extra="ignore")

    chunk_size: int = Field(5000, ge=1, le=20_000, description="rows per bulk request")
    push_concurrency: int = Field(2, ge=1, le=16, description="bulk requests in flight at once")
    lookback_seconds: float = Field(
        60.0, ge=0, description="re-read this far behind the watermark, for transactions that committed late"
    )
    bucket_size: int = Field(10_000, ge=1, description="keys per bucket when looking for hard deletes")
    repair_limit: int = Field(
        100_000, ge=0, description="most rows verification re-sends itself; beyond it the task fails and retries"
    )
    api_timeout: float = Field(120.0, gt=0, description="seconds per API request")
    schedule: str = Field("*/15 * * * *", description="cron or preset of the batch DAG, read when the DAG is parsed")
    base_a_conn_id: str = Field("base_a", description="Airflow connection of Base A (mysql or sqlite)")
    api_conn_id: str = Field("base_b_api", description="Airflow connection of the REST API (http; password = token)")
