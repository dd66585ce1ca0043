"""`make up`'s process logs rotate by size (scripts/rotate_log.py), keeping every line until they rotate
out, also a process's last words after `make down`'s signal. No platform needed."""

from __future__ import annotations

import os
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


def test_the_bytes_are_copied_as_they_came_and_a_line_without_end_is_rotated_in_pieces(tmp_path):
    r"""Invalid UTF-8 was written as `\udcXX` text, and output without a newline was held in memory
    whole until it ended (here: one file of 1 MB past a 200 kB limit)."""
    log = tmp_path / "relay.log"
    sent = b"ok \xff\xfe not utf-8 \xc3\n" + "é".encode() * 500_000
    subprocess.run([*ROTATE, str(log), "--max-bytes", "200000", "--keep", "20"], input=sent, check=True)
    files = sorted(tmp_path.iterdir(), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    assert len(files) > 5 and all(p.stat().st_size <= 200_000 for p in files)
    assert b"".join(p.read_bytes() for p in files) == sent


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


def test_a_started_process_logs_through_the_rotation_and_make_down_keeps_its_last_words(tmp_path):
    """As `make up` starts each process (scripts/start.sh): a caller reading the starter's output to its
    end gets it at once (the review: the rotation held it open until `make down`), and `make down`
    (scripts/down.sh) stops the process and waits for its rotation, whose file has the last words."""
    for folder in ("run", "log"):
        (tmp_path / folder).mkdir()
    env = {**os.environ, "PLATFORM_VAR": str(tmp_path), "PYTHON": sys.executable}
    program = 'echo started; trap "echo last words; exit 0" TERM; sleep 60 & wait'
    begun = time.monotonic()
    started = subprocess.run(  # its output read to the end, as `make up | tee` reads it
        ["bash", "scripts/start.sh", "worker", "bash", "-c", program],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "started worker" in started.stdout and time.monotonic() - begun < 10
    log = tmp_path / "log" / "worker.log"
    deadline = time.monotonic() + 30
    while "started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "nothing logged in 30 s"
        time.sleep(0.05)
    subprocess.run(["bash", "scripts/down.sh"], cwd=REPO, env=env, capture_output=True, timeout=60, check=True)
    assert log.read_text() == "started\nlast words\n"
    rotations = subprocess.run(["pgrep", "-f", f"rotate_log.py {tmp_path}/log/"], capture_output=True, check=False)
    assert rotations.stdout == b"", "a rotation outlived make down"
