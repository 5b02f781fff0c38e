"""CPU seconds and memory of one process, read from ``/proc/<pid>/stat`` and ``/proc/<pid>/status``.

>>> stat = "4242 (python3 -m x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 12345 0 0"
>>> parse_cpu_seconds(stat, ticks_per_second=100)
3.0
>>> parse_memory("Name:\\tpython3\\nVmHWM:\\t  204800 kB\\nVmRSS:\\t  102400 kB\\n")
(104857600, 209715200)

On a shared machine, :func:`machine_sample` also tells how much CPU other processes
(not this one or its descendants: servers, worker, echo, load generator) used.
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


def parse_cpu_seconds(stat: str, ticks_per_second: int, *, reaped_children: bool = False) -> float:
    """utime + stime of a ``/proc/<pid>/stat`` line, in seconds (+ cutime + cstime with ``reaped_children``).

    The command name (field 2) may hold spaces and parentheses, so the fields are
    counted from the last ``)``: state is the first after it, utime the 12th, stime the
    13th, and the CPU of children it has waited for the 14th and 15th.
    """
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < (15 if reaped_children else 13):
        raise ValueError(f"not a /proc/<pid>/stat line: {stat[:80]!r}")
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / ticks_per_second


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


#: Busy fields of the ``cpu`` line of ``/proc/stat`` (guest time is already in user).
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal


def parse_system_busy(proc_stat: str, ticks_per_second: int) -> float:
    """CPU seconds all cores spent busy since boot, from ``/proc/stat``.

    >>> parse_system_busy("cpu  100 5 50 9000 40 3 2 0 0 0\\ncpu0 50 2 25 4500 20 1 1 0 0 0\\n", 100)
    1.6
    """
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            return sum(values[i] for i in _BUSY_FIELDS if i < len(values)) / ticks_per_second
    raise ValueError("no cpu line in /proc/stat")


def descendants(root: int, parents: dict[int, int]) -> set[int]:
    """``root`` and every process below it, from a ``{pid: parent pid}`` map.

    >>> sorted(descendants(10, {11: 10, 12: 11, 13: 1, 14: 12}))
    [10, 11, 12, 14]
    """
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass(frozen=True)
class MachineSample:
    """When, CPU seconds the whole machine was busy, and those of one process tree."""

    at: float
    busy_s: float
    own_s: float


def machine_sample(root: int | None = None) -> MachineSample:
    """Busy CPU of the machine and of ``root`` (default: this process) with its descendants.

    Descendants that ended and were waited for are counted through their parent's
    ``cutime``/``cstime``; an orphan (re-parented away from the tree) counts as another's.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text()
            except OSError:
                continue
    parents = {pid: int(text.rsplit(")", 1)[-1].split()[1]) for pid, text in stats.items()}
    tree = descendants(root if root is not None else os.getpid(), parents)
    own = sum(parse_cpu_seconds(stats[pid], ticks, reaped_children=True) for pid in tree if pid in stats)
    return MachineSample(time.monotonic(), parse_system_busy(Path("/proc/stat").read_text(), ticks), own)


def other_usage(before: MachineSample, after: MachineSample) -> dict[str, float]:
    """Cores the whole machine used between two samples, and those used by processes outside the tree.

    >>> other_usage(MachineSample(0.0, 100.0, 40.0), MachineSample(10.0, 115.0, 52.0))
    {'machine_cpu_cores': 1.5, 'other_cpu_cores': 0.3}
    """
    window = after.at - before.at
    if window <= 0:
        return {"machine_cpu_cores": 0.0, "other_cpu_cores": 0.0}
    busy = after.busy_s - before.busy_s
    other = max(0.0, busy - (after.own_s - before.own_s))
    return {"machine_cpu_cores": round(busy / window, 2), "other_cpu_cores": round(other / window, 2)}
