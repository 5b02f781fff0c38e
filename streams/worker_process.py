"""A worker (or a serving replica) in a child process: how the demo, the benchmarks and the
integration tests run one.

The child gets the parent's settings as ``STREAMREC_*`` variables, logs to a file,
and dies with the parent (``PR_SET_PDEATHSIG``) even if the parent is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from streams.runtime import die_with_parent_preexec
from streams.settings import Settings


class WorkerFailed(RuntimeError):
    """The worker process exited or did not become ready; the message has its log tail."""


class WorkerProcess:
    """Start, probe and stop one ``streamrec worker`` (or, with ``command="serve"``, one
    serving replica) child process."""

    def __init__(self, settings: Settings, log_path: Path, command: str = "worker", nice: int = 0) -> None:
        if settings.kafka_bootstrap_servers is None or settings.redis_url is None:
            raise ValueError("a worker process needs resolved Kafka and Redis addresses")
        if command not in ("worker", "serve"):
            raise ValueError(f"command must be 'worker' or 'serve', got {command!r}")
        self.settings = settings
        self.log_path = log_path
        self.command = command
        self.nice = nice  # CPU priority (nice(1)): > 0 yields the CPU to other processes
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
        env.update(self.settings.to_env())
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(
            [*(["nice", "-n", str(self.nice)] if self.nice else []), sys.executable, "-m", "streams.cli", self.command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent_preexec(),  # noqa: PLW1509
        )
        log.close()
        return self

    def status(self) -> dict[str, Any] | None:
        """The worker's ``/status`` JSON, or None while its web server is not up."""
        try:
            with urllib.request.urlopen(self.base_url + "/status", timeout=2) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def metrics(self) -> str:
        """The worker's ``/metrics`` text."""
        with urllib.request.urlopen(self.base_url + "/metrics", timeout=5) as resp:
            return resp.read().decode()

    def wait_ready(self, min_items: int = 0, timeout: float = 300.0) -> dict[str, Any]:
        """Block until the worker serves /status with its item state loaded (and ``min_items`` items)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            st = self.status()
            if st and st.get("items_ready") and st.get("items", 0) >= min_items:
                return st
            time.sleep(0.25)
        raise WorkerFailed(f"{self.command} not ready after {timeout:.0f}s\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise WorkerFailed(f"{self.command} exited with code {self._proc.returncode}\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def diagnose(self, wait_s: float = 2.0) -> str:
        """Ask the worker for its diagnostics (``SIGUSR1``): its counters, then what it logged since."""
        if self._proc is None or self._proc.poll() is not None:
            return self.log_tail()
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc.send_signal(signal.SIGUSR1)
        time.sleep(wait_s)
        try:
            counters = "\n".join(
                line for line in self.metrics().splitlines()
                if line.startswith(("streamrec_events_total", "streamrec_input_reread_total", "streamrec_guarded"))
            )
        except OSError as exc:
            counters = f"(no /metrics: {exc!r})"
        with open(self.log_path, "rb") as f:
            f.seek(start)
            logged = f.read().decode(errors="replace")
        return f"{counters}\n{logged}"

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if self._proc is None or self._proc.poll() is not None:
            return self._proc.returncode if self._proc else None
        self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait(5)

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
