"""A loopback TCP proxy whose link can be cut and restored: a network outage in a test.

Accepts on ``127.0.0.1:<port>`` and forwards every connection, both ways, to a target
port on loopback. :meth:`TcpProxy.cut` closes every live connection and, until
:meth:`TcpProxy.restore`, resets every new one as soon as it is accepted (the client
sees its connection fail, as when a broker is unreachable). ``cut(pid=...)`` does so only
for the connections of one local process (found through ``/proc``, Linux only): that
process is partitioned from the server while every other client keeps its link.

>>> import socket
>>> srv = echo_once()
>>> with TcpProxy(srv.getsockname()[1]) as proxy:
...     with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as c:
...         c.sendall(b"hello")
...         c.recv(5)
b'hello'
>>> srv.close()
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), so the peer learns at once that the link is gone."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    return inodes


def _tcp_inode(local_port: int, remote_port: int) -> str | None:
    """Inode of the loopback TCP socket from ``local_port`` to ``remote_port`` (``/proc/net/tcp``)."""
    with contextlib.suppress(OSError), open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port and int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                return fields[9]
    return None


def echo_once() -> socket.socket:
    """A loopback server that echoes the first 5 bytes of its first connection (in a daemon
    thread); the examples proxy to it. Close it when done."""
    srv = socket.create_server((LOOPBACK, 0))

    def echo() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(conn.recv(5))

    threading.Thread(target=echo, daemon=True).start()
    return srv


class LoopbackProxy(ABC):
    """What every test proxy here shares: a listening ``port`` on loopback, its ``address``,
    and use as a context manager (``start()`` on entry, ``close()`` on exit)."""

    port: int

    @property
    def address(self) -> str:
        """``"127.0.0.1:<port>"``, for ``bootstrap_servers``."""
        return f"{LOOPBACK}:{self.port}"

    @abstractmethod
    def start(self) -> Self:
        """Listen and serve in the background; returns the proxy."""

    @abstractmethod
    def close(self) -> None:
        """Stop serving and close every connection."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class TcpProxy(LoopbackProxy):
    """Forward ``127.0.0.1:port`` to ``127.0.0.1:target_port``; ``cut()`` / ``restore()`` the link.

    ``target_port`` may be set after start (``proxy.target_port = ...``), for a server that
    must know the proxy's port before it starts.
    """

    def __init__(self, target_port: int | None = None, port: int = 0) -> None:
        self.target_port = target_port
        self._listener = socket.create_server((LOOPBACK, port))
        self.port: int = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._cut = False
        self._cut_pid: int | None = None
        self._closed = False
        #: Connections accepted and forwarded, and connections reset while cut.
        self.forwarded = 0
        self.refused = 0
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True)

    @property
    def is_cut(self) -> bool:
        return self._cut

    def start(self) -> Self:
        self._acceptor.start()
        return self

    def cut(self, pid: int | None = None) -> int:
        """Close every live connection and refuse new ones until :meth:`restore`; returns how many were closed.

        With ``pid``, only the connections whose client is that process.
        """
        with self._lock:
            self._cut, self._cut_pid = True, pid
            pairs = {pair for pair in self._pairs if self._is_cut(pair[0])}
            self._pairs -= pairs
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        return len(pairs)

    def restore(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._cut, self._cut_pid = False, None

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self._closed = True
        self.cut()  # every connection, whatever process it belongs to
        with contextlib.suppress(OSError):
            self._listener.close()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)

    # -- internals
    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self.target_port is None or self._is_cut(client):
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection((LOOPBACK, self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                self.refused += 1
                _reset(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                if self._is_cut(client):  # cut while connecting
                    _reset(client)
                    _reset(upstream)
                    continue
                self._pairs.add(pair)
                self.forwarded += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()

    def _is_cut(self, client: socket.socket) -> bool:
        """True when the link is cut for ``client`` (every client, or the cut process's)."""
        if not self._cut:
            return False
        if self._cut_pid is None:
            return True
        try:
            peer_port = int(client.getpeername()[1])
        except OSError:
            return True
        inode = _tcp_inode(peer_port, self.port)
        return inode is not None and inode in _socket_inodes(self._cut_pid)

    def _pump(self, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            live = pair in self._pairs
            self._pairs.discard(pair)
        if live:  # one side closed: close the other
            for sock in pair:
                _reset(sock)
