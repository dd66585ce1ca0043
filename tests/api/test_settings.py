"""The settings object reads the environment once, with clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api_service.settings import ApiSettings


def test_reads_api_variables(monkeypatch):
    monkeypatch.setenv("API_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("API_TOKENS", " s3cret-a, s3cret-b ,,")
    monkeypatch.setenv("API_READ_REQUIRES_TOKEN", "true")
    monkeypatch.setenv("API_LOG_LEVEL", "warning")
    settings = ApiSettings()
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.tokens == ("s3cret-a", "s3cret-b")
    assert settings.read_requires_token is True
    assert settings.log_level == "WARNING"
    assert "s3cret" not in repr(settings)  # tokens stay out of logs


def test_defaults_need_no_environment(monkeypatch):
    for name in ("API_DATABASE_URL", "API_TOKENS", "API_READ_REQUIRES_TOKEN", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = ApiSettings()
    assert settings.database_url.startswith("sqlite:///") and settings.tokens == ()


@pytest.mark.parametrize(("name", "value"), [("API_LOG_LEVEL", "loud"), ("API_BULK_MAX_RECORDS", "0")])
def test_bad_values_fail_clearly(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("API_").lower()):
        ApiSettings()
