"""The API's one settings object, read from `API_*` environment variables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from api_service.backends import base_b_url
from env_settings import DAY, GIB, YEAR, EnvSettings


class ApiSettings(EnvSettings):
    """Configuration of the REST API; tests build it explicitly instead of patching globals."""

    model_config = SettingsConfigDict(env_prefix="API_", frozen=True, extra="ignore", populate_by_name=True)
    # gunicorn's (api_service/gunicorn.conf.py); API_LOG_LEVEL, also read there, is a field.
    read_elsewhere = ("API_BIND", "API_WORKERS", "API_THREADS", "API_REQUEST_HEAD_TIMEOUT", "API_REQUEST_BODY_MIN_RATE")

    database_url: str = Field(
        "sqlite:///var/base_b.sqlite",
        description="SQLAlchemy URL of Base B, e.g. postgresql+psycopg://user@host:5432/base_b",
    )
    tokens: Annotated[tuple[str, ...], NoDecode] = Field(
        (), repr=False, description="comma-separated bearer tokens allowed to write"
    )
    read_requires_token: bool = Field(False, description="require a token for reads too")
    max_content_length: int = Field(64 * 1024 * 1024, ge=1024, le=GIB, description="largest request body, bytes")
    bulk_max_records: int = Field(20_000, ge=1, le=1_000_000, description="most records in one bulk request")
    db_pool_size: int = Field(5, ge=1, le=1000, description="pooled connections to Base B per worker")
    db_pool_timeout: float = Field(10.0, gt=0, le=DAY, description="seconds to wait for a pooled connection")
    # PostgreSQL takes these in milliseconds, an int32 (24.8 days at most): a day is 86,400,000 ms.
    db_lock_timeout: float = Field(
        30.0,
        gt=0,
        le=DAY,
        description="seconds a statement waits for a row lock another session holds (then 503, Retry-After)",
    )
    db_idle_timeout: float = Field(
        300.0,
        gt=0,
        le=DAY,
        description="seconds a session may wait idle in a transaction (a streamed page's slow client)",
    )
    migrate_lock_timeout: float = Field(
        10.0,
        gt=0,
        le=DAY,
        description="seconds a migration's statement waits for a table lock (then it fails, unchanged)",
    )
    version_max_future_seconds: int = Field(
        86_400, ge=0, le=YEAR, description="how far ahead of the server's clock a record's version may be"
    )
    version_floor: AwareDatetime = Field(
        datetime(1970, 1, 1, tzinfo=UTC), description="the earliest version a record may have (ISO 8601, with offset)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    prometheus_multiproc_dir: str | None = Field(
        None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="set by gunicorn.conf.py: workers share metrics through this folder",
    )

    @field_validator("database_url")
    @classmethod
    def _base_b_url(cls, value: str) -> str:
        # Checked in gunicorn's master: each worker printed a traceback building its engine.
        return base_b_url(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(token.strip() for token in value.split(",") if token.strip())
        return value
