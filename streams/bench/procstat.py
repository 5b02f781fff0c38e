"""CPU seconds and memory of one process, read from ``/proc/<pid>/stat`` and ``/proc/<pid>/status``.

>>> stat = "4242 (python3 -m x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 12345 0 0"
>>> parse_cpu_seconds(stat, ticks_per_second=100)
3.0
>>> parse_memory("Name:\\tpython3\\nVmHWM:\\t  204800 kB\\nVmRSS:\\t  102400 kB\\n")
(104857600, 209715200)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: when, CPU seconds used so far (user + system), RSS and peak RSS."""

    at: float
    cpu_s: float
    rss_bytes: int
    peak_rss_bytes: int

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / MIB

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / MIB


def parse_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """utime + stime of a ``/proc/<pid>/stat`` line, in seconds.

    The command name (field 2) may hold spaces and parentheses, so the fields are
    counted from the last ``)``: state is the first after it, utime the 12th, stime the 13th.
    """
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 13:
        raise ValueError(f"not a /proc/<pid>/stat line: {stat[:80]!r}")
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def parse_memory(status: str) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of a ``/proc/<pid>/status`` text, in bytes (0 when absent)."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            parts = rest.split()
            values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1)
    return values["VmRSS"], values["VmHWM"]


def sample(pid: int) -> ProcSample:
    """Read ``pid`` now (raises ``ProcessLookupError`` when it is gone)."""
    base = Path(f"/proc/{pid}")
    try:
        stat = (base / "stat").read_text()
        status = (base / "status").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None
    rss, peak = parse_memory(status)
    return ProcSample(time.monotonic(), parse_cpu_seconds(stat, os.sysconf("SC_CLK_TCK")), rss, peak)


def usage(before: ProcSample, after: ProcSample) -> dict[str, float]:
    """CPU seconds between two samples, the cores they amount to, RSS at the end and the peak so far.

    >>> a = ProcSample(10.0, 5.0, 100 * MIB, 120 * MIB)
    >>> b = ProcSample(14.0, 11.0, 110 * MIB, 130 * MIB)
    >>> usage(a, b)
    {'cpu_s': 6.0, 'cpu_cores': 1.5, 'rss_mib': 110.0, 'peak_rss_mib': 130.0}
    """
    cpu = after.cpu_s - before.cpu_s
    window = after.at - before.at
    return {
        "cpu_s": round(cpu, 3),
        "cpu_cores": round(cpu / window, 3) if window > 0 else 0.0,
        "rss_mib": round(after.rss_mib, 1),
        "peak_rss_mib": round(after.peak_rss_mib, 1),
    }
