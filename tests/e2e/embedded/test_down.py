"""`make down` stops a process group whose leader died: its other processes (a killed scheduler's
workers, renamed by setproctitle) stay behind in the group otherwise. No platform needed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from testbed.platform import Platform
from testbed.servers import REPO


def make_down(platform_var) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "scripts/down.sh"],
        cwd=REPO,
        env={**os.environ, "PLATFORM_VAR": str(platform_var)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_down_stops_a_group_whose_leader_died(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # A leader that starts a worker in its own session, then dies; the worker stays in the group.
    leader = subprocess.Popen(["setsid", "bash", "-c", "sleep 300 & echo $! > worker; exec sleep 300"], cwd=tmp_path)
    for _ in range(50):
        if (tmp_path / "worker").exists() and (tmp_path / "worker").read_text().strip():
            break
        time.sleep(0.1)
    group = os.getpgid(leader.pid)
    (run / "airflow-scheduler.pid").write_text(f"{group}\n")
    leader.kill()
    leader.wait()
    os.killpg(group, 0)  # the worker is still there
    result = make_down(tmp_path)
    assert result.returncode == 0, result.stderr
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
    assert not (run / "airflow-scheduler.pid").exists()


def test_make_down_stops_a_process_that_left_for_a_group_of_its_own(tmp_path):
    """Found from outside: Airflow's task supervisor puts each running task in a process group of its
    own (setpgid); the scheduler's group kill missed them, and they outlived `make down` (old code
    running beside the new after an upgrade) until their work ended."""
    run = tmp_path / "run"
    run.mkdir()
    task = "import os, time; os.setpgid(0, 0); open('task', 'w').write(str(os.getpid())); time.sleep(300)"
    leader = subprocess.Popen(
        ["setsid", sys.executable, "-c", f"import subprocess; subprocess.run(['{sys.executable}', '-c', {task!r}])"],
        cwd=tmp_path,
    )
    for _ in range(100):
        if (tmp_path / "task").exists() and (tmp_path / "task").read_text():
            break
        time.sleep(0.1)
    task_pid = int((tmp_path / "task").read_text())
    assert os.getpgid(task_pid) == task_pid != os.getpgid(leader.pid)
    (run / "airflow-scheduler.pid").write_text(f"{os.getpgid(leader.pid)}\n")
    reaped = threading.Thread(target=leader.wait)  # as its parent would: no zombie holding the group
    reaped.start()
    result = make_down(tmp_path)
    assert result.returncode == 0, result.stderr
    reaped.join(10)
    assert "did not stop" not in result.stdout, result.stdout
    with pytest.raises(ProcessLookupError):
        os.killpg(task_pid, 0)


def test_a_platform_makes_its_state_folder_before_it_logs_a_make_there(tmp_path):
    """Found from outside: Platform.make opened var/make-<target>.log before var existed (FileNotFoundError)."""
    var = tmp_path / "new" / "var"
    platform = Platform(var, {**os.environ, "PLATFORM_VAR": str(var)}, "", "", "", "", "", "", var / "make-up.log")
    assert platform.make("down", timeout=60).returncode == 0
    assert (var / "make-down.log").is_file() and var.stat().st_mode & 0o777 == 0o700
