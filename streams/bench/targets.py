"""What the benchmark measures, behind one interface: the worker process and the echo process.

Both expose ``/metrics`` with ``streamrec_events_total`` and ``streamrec_refreshes_total``,
have a PID for ``/proc`` readings, and can be checked for having died.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, cast

from streams.bench import promtext
from streams.runtime import die_with_parent_preexec
from streams.settings import Settings


class Target(Protocol):
    """A process under measurement (``WorkerProcess`` and :class:`EchoProcess` both fit)."""

    @property
    def pid(self) -> int | None: ...

    def metrics(self) -> str: ...

    def check_alive(self) -> None: ...

    def log_tail(self, lines: int = 40) -> str: ...


class EchoFailed(RuntimeError):
    """The echo process exited or did not join its group; the message has its log tail."""


class EchoProcess:
    """Start, probe and stop one ``python -m streams.bench.echo`` child process."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        if settings.kafka_bootstrap_servers is None or settings.redis_url is None:
            raise ValueError("the echo needs resolved Kafka and Redis addresses")
        self.settings = settings
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
        env.update(self.settings.to_env())
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "streams.bench.echo"],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=cast("Callable[[], object] | None", die_with_parent_preexec()),  # noqa: PLW1509
            )
        return self

    def metrics(self) -> str:
        """The echo's ``/metrics`` text (raises ``OSError`` while it is not serving yet)."""
        url = f"http://{self.settings.web_host}:{self.settings.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def wait_joined(self, timeout: float = 120.0) -> None:
        """Block until the echo has partitions assigned in its consumer group."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if promtext.counter(self.metrics(), "streamrec_echo_assigned_partitions") > 0:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise EchoFailed(f"echo had no partitions assigned after {timeout:.0f}s\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise EchoFailed(f"echo exited with code {self._proc.returncode}\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if self._proc is None or self._proc.poll() is not None:
            return self._proc.returncode if self._proc else None
        self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
