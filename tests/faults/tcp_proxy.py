"""A loopback TCP proxy that can play a server going away: it refuses connections and cuts live ones.

Put it between a client and a real server (the API and PostgreSQL, the clients and the broker);
`refuse()` closes its listening socket (a new connection gets ECONNREFUSED, as from a stopped
server) and resets every live connection; `accept()` listens again on the same port.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

from testbed.servers import free_port


class TcpProxy:
    def __init__(self, target_port: int, port: int | None = None, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self.connections = 0  # accepted since the start, for the tests' own checks

    # Lifecycle

    def start(self) -> TcpProxy:
        self.accept()
        return self

    def close(self) -> None:
        self._closed.set()
        self.refuse()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.close()

    # The fault

    def refuse(self) -> None:
        """Stop listening and reset every live connection: the server looks gone."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
        if listener is not None:
            listener.close()
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def accept(self) -> None:
        """Listen again (on the same port): the server is back."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    listener.close()
                    raise
                time.sleep(0.05)
        listener.listen(128)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), name=f"proxy-{self.port}", daemon=True).start()

    @contextlib.contextmanager
    def outage(self, seconds: float):
        """Refuse for `seconds`, running the body meanwhile (it may poll what clients see)."""
        self.refuse()
        until = time.monotonic() + seconds
        try:
            yield until
        finally:
            time.sleep(max(until - time.monotonic(), 0))
            self.accept()

    # Plumbing

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._closed.is_set():
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                ready, _, _ = select.select([listener], [], [], 0.1)
                if not ready:
                    continue
                client, _ = listener.accept()
            except OSError:  # closed by refuse()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                if self._listener is not listener:  # refused while connecting
                    _reset(client)
                    _reset(upstream)
                    return
                self._pairs.add(pair)
                self.connections += 1
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        """Copy both ways until either side closes."""
        client, upstream = pair
        peers = {client: upstream, upstream: client}
        try:
            while True:
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):  # reset by refuse(), or by a peer
            return
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for sock in pair:
                _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close with a RST, not a polite FIN: the peer learns at once that the connection is dead."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
