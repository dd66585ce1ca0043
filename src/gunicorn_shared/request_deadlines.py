"""gunicorn's gthread worker with a deadline on reading each request, so slow clients cannot hold
every thread.

gthread gives a connection a thread and a blocking socket once a byte has arrived, and reads the
rest with no deadline (only the wait for the first byte is bounded). Found from outside: four
sockets sending a header line every few seconds (slowloris), or a body one byte at a time, held
every thread of the API and /health timed out until they closed.

Here a request's head must arrive within `head_seconds` of the connection being queued for a
thread, and its body at `body_min_rate` bytes per second on average after a grace of
`head_seconds` (Apache's mod_reqtimeout model: a 64 MiB bulk upload on a LAN takes a second or
two). Past a deadline a read takes only the bytes already arrived, so a request that waited in the
queue behind slow ones is still served whole; once it needs more, the client gets a 408 if it still
reads, the connection is closed and the thread is free. Counting from the queue bounds the wait:
every slow connection queued before a request lets go of its thread by the time that request's
own head deadline passes.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass

from gunicorn import util
from gunicorn.http.errors import ConfigurationProblem
from gunicorn.workers.gthread import ThreadWorker


class RequestTimeout(Exception):
    """The request's head or body did not arrive within its deadline (an answer of 408).

    Not an OSError on purpose: gthread logs those as socket errors and answers nothing."""


@dataclass(frozen=True)
class Deadlines:
    head_seconds: float
    body_min_rate: float  # bytes per second, averaged over the body


class DeadlineSocket:
    """A connection's socket whose `recv` keeps the current request's deadline; everything else is
    the socket's own. Outside a request's head or body (gunicorn draining an unread body, or
    lingering on close, with deadlines of its own) `recv` is the socket's."""

    def __init__(self, sock: socket.socket, deadlines: Deadlines):
        self._sock = sock
        self._deadlines = deadlines
        self._reading: str | None = None  # "head", "body" or None
        self._deadline = 0.0
        self._request = None
        self.timed_out = False

    def __getattr__(self, name):
        return getattr(self._sock, name)

    def expect_head(self) -> None:
        self._reading, self._request = "head", None
        self._deadline = time.monotonic() + self._deadlines.head_seconds

    def expect_body(self, request) -> None:
        """`request` is gunicorn's: after a body timeout its answer closes the connection."""
        self._reading, self._request = "body", request
        self._deadline = time.monotonic() + self._deadlines.head_seconds

    def stop(self) -> None:
        self._reading, self._request = None, None

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self._reading is None:
            return self._sock.recv(size, flags)
        # Past the deadline a timeout of 0 takes only what has arrived (BlockingIOError if nothing).
        self._sock.settimeout(max(self._deadline - time.monotonic(), 0.0))
        try:
            data = self._sock.recv(size, flags)
        except (TimeoutError, BlockingIOError):
            self._time_out()
        finally:
            self._sock.settimeout(None)  # blocking again: answers are written without a deadline
        if self._reading == "body":
            self._deadline += len(data) / self._deadlines.body_min_rate
        return data

    def _time_out(self):
        self.timed_out = True
        if self._request is not None:
            self._request.must_close = True  # the rest of the body is still on the socket
        if self._reading == "head":
            raise RequestTimeout(f"the request's head did not arrive within {self._deadlines.head_seconds:g} s")
        raise RequestTimeout(
            f"the request's body arrived slower than {self._deadlines.body_min_rate:g} bytes per second"
        )


class DeadlineThreadWorker(ThreadWorker):
    """gthread, reading each request within `deadlines`. Use `worker_with_deadlines` to set them."""

    deadlines = Deadlines(head_seconds=10, body_min_rate=65536)

    @classmethod
    def check_config(cls, cfg, log):
        super().check_config(cfg, log)
        if cfg.is_ssl:
            log.warning("request deadlines apply to plain HTTP only: TLS wraps the socket they watch")

    def is_parent_alive(self):
        """gthread's check, and when the master is gone (killed: no one else stops the workers), the
        listening sockets let go at once: gthread closed them only after its graceful wait (up to
        graceful_timeout, 30 s), so the master started again could not bind the port, exited within
        seconds three times and its keeper gave up (CI: an in-flight request held a worker 31 s)."""
        if super().is_parent_alive():
            return True
        self.set_accept_enabled(False)  # out of the poller before they close
        for listener in self.sockets:
            listener.close()
        return False

    def enqueue_req(self, conn):
        """A connection queued for a thread (new, or readable again): its head's clock starts."""
        if not self.cfg.is_ssl and not isinstance(conn.sock, DeadlineSocket):
            conn.sock = DeadlineSocket(conn.sock, self.deadlines)  # before the parser takes the socket
        if isinstance(conn.sock, DeadlineSocket):
            conn.sock.expect_head()
        super().enqueue_req(conn)

    def handle(self, conn):
        watched = conn.sock if isinstance(conn.sock, DeadlineSocket) else None
        try:
            return super().handle(conn)
        finally:
            if watched is not None:
                watched.stop()  # gunicorn's own drain and close keep their own deadlines

    def handle_request(self, req, conn):
        watched = conn.sock if isinstance(conn.sock, DeadlineSocket) else None
        if watched is not None:
            watched.expect_body(req)
        try:
            return super().handle_request(req, conn)
        finally:
            if watched is not None:
                watched.stop()

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, ConfigurationProblem):
            # gunicorn's only one: a path outside the mount prefix (SCRIPT_NAME), a 500 echoing both.
            # No route of this service is there.
            with contextlib.suppress(OSError):  # the client left: nothing to tell it
                util.write_error(client, 404, "Not Found", "The requested URL was not found on the server.")
            return None
        if not isinstance(exc, RequestTimeout):
            return super().handle_error(req, client, addr, exc)
        self.log.info("closing a connection from %s: %s", addr, exc)
        try:
            util.write_error(client, 408, "Request Timeout", str(exc))
            client.shutdown(socket.SHUT_WR)  # the answer, then the end, before the close
        except OSError:
            pass  # the client does not read either: nothing to tell it

    def finish_request(self, conn, fs):
        sock = conn.sock
        if isinstance(sock, DeadlineSocket) and sock.timed_out and _ended_the_connection(fs):
            # Closed without gunicorn's graceful linger: it reads the socket for up to 2 s on the
            # worker's main thread, which a client that keeps trickling would hold that long.
            self.nr_conns -= 1
            conn.close()
            return
        super().finish_request(conn, fs)


def _ended_the_connection(fs) -> bool:
    return not fs.cancelled() and fs.exception() is None and fs.result() is False


def worker_with_deadlines(head_seconds: float, body_min_rate: float) -> type[DeadlineThreadWorker]:
    """The worker class for a service's gunicorn settings (`worker_class`)."""
    deadlines = Deadlines(head_seconds=head_seconds, body_min_rate=body_min_rate)
    return type("DeadlineThreadWorker", (DeadlineThreadWorker,), {"deadlines": deadlines})
