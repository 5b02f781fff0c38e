"""A load-generator process: click events at a fixed rate, each stamped with its send time.

It runs apart from the benchmark (``python -m streams.bench.loadgen``) so that its
CPU can be measured and it never competes with the latency probe for one
interpreter lock. Settings come from ``STREAMREC_*`` variables, as for a worker.
It talks JSON lines: it prints ``{"ready": true}`` once connected, then answers every
``{"rate": R, "seconds": S}`` line on stdin with the result of that step; end of
input ends it.

A step sends ``round(R * S)`` events on schedule (event ``i`` at ``i / R`` seconds)
and stops early, saying so, once it is more than ``max_behind_s`` behind schedule:
the generator (or the producer in it) cannot keep that rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from aiokafka import AIOKafkaProducer

from streams.bench.clickgen import ClickGenerator, create_fast_producer
from streams.runtime import die_with_parent_preexec
from streams.settings import Settings

#: A step stops when the generator is this many seconds behind its schedule.
MAX_BEHIND_S = 1.0


def _preexec() -> Callable[[], object] | None:
    return cast("Callable[[], object] | None", die_with_parent_preexec())


class LoadGeneratorFailed(RuntimeError):
    """The load generator exited or did not answer; the message has its log tail."""


async def run_step(producer: AIOKafkaProducer, topic: str, gen: ClickGenerator, rate: float, seconds: float,
                   max_behind_s: float = MAX_BEHIND_S) -> dict[str, Any]:
    """Send ``rate`` events/s for ``seconds`` (``ts`` = send time), flush, and report."""
    planned = max(1, round(rate * seconds))
    errors: list[BaseException] = []

    def check(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            errors.append(fut.exception())  # type: ignore[arg-type]

    sent = 0
    worst_behind = 0.0
    limited = False
    start = time.monotonic()
    while sent < planned:
        due = min(planned, int((time.monotonic() - start) * rate) + 1)
        behind = (due - 1 - sent) / rate
        worst_behind = max(worst_behind, behind)
        if behind > max_behind_s:
            limited = True
            break
        while sent < due:
            key, value = gen.next(time.time())
            (await producer.send(topic, value=value, key=key)).add_done_callback(check)
            sent += 1
        delay = start + sent / rate - time.monotonic()
        await asyncio.sleep(max(delay, 0.0))  # yields to the producer's sender even when late
    send_s = time.monotonic() - start
    await producer.flush()
    flush_s = time.monotonic() - start - send_s
    return {
        "rate": rate,
        "seconds": seconds,
        "planned": planned,
        "sent": sent,
        "errors": len(errors),
        "send_s": round(send_s, 3),
        "flush_s": round(flush_s, 3),
        # On schedule the events span sent / rate seconds; later than that lowers the rate.
        "sent_rate": round(sent / max(send_s, sent / rate), 1),
        "generator_limited": limited,
        "max_behind_s": round(worst_behind, 3),
    }


async def _serve(settings: Settings, topic: str, gen: ClickGenerator) -> None:
    producer = create_fast_producer(settings)
    await producer.start()
    try:
        await producer.partitions_for(topic)  # metadata loaded before the first step
        _reply({"ready": True})
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if line.strip():
                command = json.loads(line)
                _reply(await run_step(producer, topic, gen, float(command["rate"]), float(command["seconds"])))
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the generator process."""
    parser = argparse.ArgumentParser(prog="python -m streams.bench.loadgen")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--items-file", type=Path, required=True, help="item ids, one a line")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--run", default="live", help="event id prefix")
    args = parser.parse_args(argv)
    items = [line.strip() for line in args.items_file.read_text().splitlines() if line.strip()]
    gen = ClickGenerator(items, args.users, args.seed, args.run)
    asyncio.run(_serve(Settings(), args.topic, gen))
    return 0


def _reply(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


class LoadGenerator:
    """Start, drive and stop one generator process (from the benchmark's side)."""

    def __init__(self, settings: Settings, topic: str, users: int, items_file: Path, log_path: Path,
                 seed: int = 7, run: str = "live") -> None:
        self.settings = settings
        self.log_path = log_path
        self._args = ["--topic", topic, "--users", str(users), "--items-file", str(items_file),
                      "--seed", str(seed), "--run", run]
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 60.0) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
        env.update(self.settings.to_env())
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "streams.bench.loadgen", *self._args],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                preexec_fn=_preexec(),  # noqa: PLW1509 - PR_SET_PDEATHSIG only
            )
        self._read(timeout)
        return self

    def step(self, rate: float, seconds: float) -> dict[str, Any]:
        """Offer ``rate`` events/s for ``seconds``; blocks until the events are flushed."""
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps({"rate": rate, "seconds": seconds}) + "\n").encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise LoadGeneratorFailed(self._failure("exited")) from None
        return self._read(seconds + 180.0)

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else b""
        if not line:
            raise LoadGeneratorFailed(self._failure(f"did not answer within {timeout:.0f}s" if not ready else "exited"))
        data: dict[str, Any] = json.loads(line)
        return data

    def _failure(self, what: str) -> str:
        try:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            tail = "(no log)"
        return f"load generator {what}; last lines of {self.log_path}:\n{tail}"

    def stop(self, grace: float = 2.0) -> None:
        """Close its input (between steps it flushes and exits); mid-step (an abort) SIGTERM, then SIGKILL."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        for send in (proc.terminate, proc.kill):
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                send()
        else:
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    raise SystemExit(main())
