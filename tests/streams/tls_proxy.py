"""A loopback TLS terminator: clients speak TLS to it, the server behind it plain TCP.

Like a TLS-terminating load balancer in front of a broker: clients must use TLS and
trust its certificate; each connection is forwarded to ``127.0.0.1:target_port``. It
runs an asyncio loop in a thread of its own (one thread owns every TLS connection).

>>> import socket, ssl, tempfile, pathlib
>>> from tests.conftest import self_signed_certificate
>>> from tests.streams.tcp_proxy import echo_once
>>> cert, key = self_signed_certificate(pathlib.Path(tempfile.mkdtemp()))
>>> srv = echo_once()
>>> with TlsTerminator(srv.getsockname()[1], cert, key) as proxy:
...     ctx = ssl.create_default_context(cafile=str(cert))
...     with ctx.wrap_socket(socket.create_connection(("127.0.0.1", proxy.port), timeout=5),
...                          server_hostname="127.0.0.1") as c:
...         c.sendall(b"hello")
...         c.recv(5)
b'hello'
>>> srv.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from pathlib import Path
from typing import Self

from tests.streams.tcp_proxy import LOOPBACK, LoopbackProxy


class TlsTerminator(LoopbackProxy):
    """Accept TLS on ``127.0.0.1:port`` with ``cert``/``key`` and forward plain TCP to ``target_port``.

    ``target_port`` may be set after start, for a server that must know the port to advertise.
    """

    def __init__(self, target_port: int | None, cert: Path, key: Path) -> None:
        self.target_port = target_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(cert), str(key))
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = int(self._listener.getsockname()[1])
        #: Connections that completed the TLS handshake and were forwarded.
        self.forwarded = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tls-proxy-{self.port}", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, sock=self._listener, ssl=self._context,
                                          ssl_handshake_timeout=10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.target_port is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.close()
            return
        self.forwarded += 1
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                dst.close()
