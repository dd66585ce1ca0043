"""scripts/keep-running.sh, `make up`'s keeper of the processes that must run (Airflow's, the relay,
the API, GraphQL). No platform needed."""

from __future__ import annotations

import subprocess
import time

from testbed.servers import REPO


def test_a_command_that_cannot_start_is_given_up_with_its_status():
    """Review: a gunicorn refusing its settings was started again every 5 s for ever, and its pid file
    held: `make up` run again after the fix said "already running" and kept the broken process."""
    begun = time.monotonic()
    kept = subprocess.run(
        ["bash", "scripts/keep-running.sh", "bash", "-c", "echo refused: API_WORKERS; exit 3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert kept.returncode == 3 and kept.stdout.count("refused: API_WORKERS") == 3
    assert "3 times in a row; giving up" in kept.stderr and time.monotonic() - begun < 30
