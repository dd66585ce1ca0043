"""Copies standard input to FILE, rotating it by size (FILE.1 ... FILE.KEEP, oldest last), as Docker's
json-file driver does for compose's containers: `make up` pipes each process's output through it, so a
platform left running for weeks keeps a bounded amount of log (about 80 MB a day idle, unrotated).

It outlives the process it copies: it ignores the signals `make down` and a closed terminal send, and
ends when every writer has closed the pipe, so a process's last words are kept.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import signal
import sys

MIB = 1024 * 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--max-bytes", type=int, default=10 * MIB, help="rotate once FILE would grow past this")
    parser.add_argument("--keep", type=int, default=5, help="rotated files kept")
    args = parser.parse_args(argv)
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    # The standard library's rotation: each line is one record, written as it came.
    handler = logging.handlers.RotatingFileHandler(
        args.file, maxBytes=args.max_bytes, backupCount=args.keep, encoding="utf-8", errors="backslashreplace"
    )
    handler.terminator = ""
    handler.setFormatter(logging.Formatter("%(message)s"))
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="surrogateescape", newline="", closefd=False)
    for line in stdin:
        handler.emit(logging.makeLogRecord({"msg": line}))
    handler.close()


if __name__ == "__main__":
    main()
