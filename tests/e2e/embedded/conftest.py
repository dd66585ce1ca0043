"""One platform on embedded defaults (SQLite, Tansu, event maker) for every test of this package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.platform import Platform, running_platform


@pytest.fixture(scope="package")
def platform(tmp_path_factory) -> Iterator[Platform]:
    # No event maker (BASE_A_CHURN_EVERY=0): the change topics are make up's own, made before the
    # triggerer starts; the event path's test starts an event maker itself, as up.sh would start it.
    # The batch DAG runs only when triggered (and once at unpause), so the event path's test knows
    # who synced what.
    with running_platform(
        tmp_path_factory.mktemp("platform"), BASE_A_CHURN_EVERY="0", SYNC_SCHEDULE="@once"
    ) as running:
        yield running
