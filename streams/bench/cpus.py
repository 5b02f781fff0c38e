"""CPU sets for a benchmark run: give the answering process cores of its own.

A deployment that cares about request latency gives its serving processes whole cores
(Kubernetes' static CPU manager does that for a Guaranteed pod asking for whole CPUs),
so a busy stream worker never holds the CPU a request is waiting for. On one machine the
same split is made with CPU affinity: a child process inherits the affinity of the
thread that starts it, so the benchmark moves its own thread to a CPU set just before it
starts each process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

CpuSet = frozenset[int]


class CpuSetError(ValueError):
    """A CPU list that cannot be used on this machine; the message says how to fix it."""


def parse_cpus(text: str) -> CpuSet:
    """CPU numbers from a list like ``taskset -c`` takes: ``1``, ``0,2`` or ``2-3``.

    >>> sorted(parse_cpus("0,2-3"))
    [0, 2, 3]
    >>> parse_cpus("two")
    Traceback (most recent call last):
    ...
    streams.bench.cpus.CpuSetError: 'two' is not a CPU list: give numbers and ranges such as 1 or 0,2-3
    """
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if first < 0 or last < first:
                raise ValueError(part)
            out.update(range(first, last + 1))
    except ValueError:
        raise CpuSetError(f"{text!r} is not a CPU list: give numbers and ranges such as 1 or 0,2-3") from None
    return frozenset(out)


def split_cpus(answering: CpuSet, available: CpuSet | None = None) -> tuple[CpuSet, CpuSet]:
    """``(answering, stream)``: the CPUs asked for, and every other CPU this process may use.

    >>> split_cpus(frozenset({1}), frozenset({0, 1}))
    (frozenset({1}), frozenset({0}))
    >>> split_cpus(frozenset({0, 1}), frozenset({0, 1}))
    Traceback (most recent call last):
    ...
    streams.bench.cpus.CpuSetError: CPUs 0,1 leave none of 0,1 for the stream: name fewer CPUs
    """
    have = frozenset(os.sched_getaffinity(0)) if available is None else available
    listed = ",".join(map(str, sorted(have)))
    if not answering or not answering <= have:
        raise CpuSetError(f"CPUs {','.join(map(str, sorted(answering)))} are not all usable here "
                          f"(this process may use {listed}): name CPUs from that list")
    stream = have - answering
    if not stream:
        raise CpuSetError(f"CPUs {','.join(map(str, sorted(answering)))} leave none of {listed} for the stream: "
                          "name fewer CPUs")
    return answering, stream


@contextmanager
def on_cpus(cpus: CpuSet | None) -> Iterator[None]:
    """Run the calling thread (and so the processes and threads it starts) on ``cpus``; None changes nothing."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
