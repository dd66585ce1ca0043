"""`make up`'s process logs rotate by size (scripts/rotate_log.py), keeping every line until they rotate
out, also a process's last words after `make down`'s signal. No platform needed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from testbed.servers import REPO

ROTATE = [sys.executable, str(REPO / "scripts" / "rotate_log.py")]


def test_a_log_rotates_by_size_and_keeps_the_newest_lines_in_order(tmp_path):
    log = tmp_path / "api.log"
    lines = "".join(f"line {n} é\n" for n in range(3000)) + "last, no newline"
    subprocess.run([*ROTATE, str(log), "--max-bytes", "10000", "--keep", "2"], input=lines.encode(), check=True)
    files = [tmp_path / "api.log.2", tmp_path / "api.log.1", log]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api.log", "api.log.1", "api.log.2"]
    assert all(p.stat().st_size <= 10000 for p in files)
    kept = "".join(p.read_text(encoding="utf-8") for p in files)
    assert lines.endswith(kept) and len(kept) > 25000  # the newest, whole and in order; the oldest gone


def test_the_rotation_outlives_a_signal_and_keeps_what_follows_it(tmp_path):
    log = tmp_path / "scheduler.log"
    rotation = subprocess.Popen([*ROTATE, str(log)], stdin=subprocess.PIPE)
    rotation.stdin.write(b"running\n")
    rotation.stdin.flush()
    deadline = time.monotonic() + 30
    while not (log.exists() and log.read_text()):  # copying: its signal handlers are set
        assert time.monotonic() < deadline, "nothing copied in 30 s"
        time.sleep(0.05)
    for sent in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # make down's, a closed terminal's, Ctrl-C's
        rotation.send_signal(sent)
    rotation.stdin.write(b"shutting down: last words\n")
    rotation.stdin.close()
    assert rotation.wait(timeout=30) == 0
    assert log.read_text() == "running\nshutting down: last words\n"
