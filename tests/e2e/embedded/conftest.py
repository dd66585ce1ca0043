"""One platform on embedded defaults (SQLite, Tansu, event maker) for every test of this package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.platform import Platform, running_platform


@pytest.fixture(scope="package")
def platform(tmp_path_factory) -> Iterator[Platform]:
    # A change every 3 s keeps the event path busy, like the default demo (every 30 s) but faster.
    # The batch DAG runs only when triggered (and once at unpause), so the event path's test knows
    # who synced what.
    with running_platform(
        tmp_path_factory.mktemp("platform"), BASE_A_CHURN_EVERY="3", SYNC_SCHEDULE="@once"
    ) as running:
        yield running
