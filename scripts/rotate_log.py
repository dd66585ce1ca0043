"""Copies standard input to FILE, rotating it by size (FILE.1 ... FILE.KEEP, oldest last), as Docker's
json-file driver does for compose's containers: `make up` pipes each process's output through it, so a
platform left running for weeks keeps a bounded amount of log (about 80 MB a day idle, unrotated).

It outlives the process it copies: it ignores the signals `make down` and a closed terminal send, and
ends when every writer has closed the pipe, so a process's last words are kept. The bytes are copied
as they came (invalid UTF-8 too, which was written escaped) and counted as bytes; a line longer
than LONGEST is written in pieces (output without a newline was held whole, growing without bound).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import signal
import sys

MIB = 1024 * 1024
LONGEST = 64 * 1024  # characters of a line read at once


class _ByteRotation(logging.handlers.RotatingFileHandler):
    """The standard library's rotation, measured in bytes: it counts a record's characters (an
    accented line is two bytes a letter), so files grew past the size asked for."""

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is None:
            self.stream = self._open()
        size = len(self.format(record).encode(self.encoding, self.errors))
        end = self.stream.seek(0, 2)
        return 0 < end and 0 < self.maxBytes < end + size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--max-bytes", type=int, default=10 * MIB, help="rotate once FILE would grow past this")
    parser.add_argument("--keep", type=int, default=5, help="rotated files kept")
    args = parser.parse_args(argv)
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    # Each line is one record, written as it came: surrogateescape gives back the bytes read.
    handler = _ByteRotation(
        args.file, maxBytes=args.max_bytes, backupCount=args.keep, encoding="utf-8", errors="surrogateescape"
    )
    handler.terminator = ""
    handler.setFormatter(logging.Formatter("%(message)s"))
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="surrogateescape", newline="", closefd=False)
    for line in iter(lambda: stdin.readline(LONGEST), ""):
        handler.emit(logging.makeLogRecord({"msg": line}))
    handler.close()


if __name__ == "__main__":
    main()
