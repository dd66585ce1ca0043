"""Python code run in a fresh interpreter, as a scheduler parses a DAG or a service imports its
modules: what it prints last, as JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from testbed.servers import REPO


def answer_of(*args: str, env: dict[str, str] | None = None, python: str = sys.executable, timeout: float = 120):
    """Run `python *args` in the repository; its last line of output, read as JSON (it must exit 0)."""
    result = subprocess.run(
        [python, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
