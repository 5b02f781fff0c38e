"""CPU and memory from /proc, parsed by hand and read from a live process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.bench import procstat
from streams.bench.procstat import MIB, ProcSample


def test_stat_fields_are_counted_from_the_last_parenthesis() -> None:
    # A command name with spaces and ")" must not shift the fields: utime 700, stime 300 ticks.
    stat = "99 (a) b (c)) R 1 99 99 0 -1 4194560 10 0 0 0 700 300 0 0 20 0 1 0 100 0 0"
    assert procstat.parse_cpu_seconds(stat, ticks_per_second=100) == 10.0
    assert procstat.parse_cpu_seconds(stat, ticks_per_second=100, reaped_children=True) == 10.0  # cutime 0, cstime 0
    with_children = stat.replace(" 700 300 0 0 ", " 700 300 150 50 ")
    assert procstat.parse_cpu_seconds(with_children, ticks_per_second=100, reaped_children=True) == 12.0
    with pytest.raises(ValueError, match="not a /proc"):
        procstat.parse_cpu_seconds("12 (x) R 1", 100)


def test_status_memory_in_bytes() -> None:
    status = "Name:\tpython\nVmPeak:\t 900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert procstat.parse_memory(status) == (1024 * 1024, 2048 * 1024)
    assert procstat.parse_memory("Name:\tkthreadd\n") == (0, 0)


def test_usage_between_two_samples() -> None:
    a = ProcSample(at=100.0, cpu_s=2.0, rss_bytes=300 * MIB, peak_rss_bytes=310 * MIB)
    b = ProcSample(at=110.0, cpu_s=7.0, rss_bytes=320 * MIB, peak_rss_bytes=400 * MIB)
    assert procstat.usage(a, b) == {"cpu_s": 5.0, "cpu_cores": 0.5, "rss_mib": 320.0, "peak_rss_mib": 400.0}


def test_a_busy_child_process_is_measured() -> None:
    busy = "import time\nwhile time.process_time() < 0.5: pass\ninput()"  # half a CPU second, then idle
    child = subprocess.Popen([sys.executable, "-c", busy], stdin=subprocess.PIPE)
    try:
        first = procstat.sample(child.pid)
        deadline = time.monotonic() + 60
        while (second := procstat.sample(child.pid)).cpu_s < 0.45:  # /proc counts in clock ticks
            assert time.monotonic() < deadline
            time.sleep(0.05)
        used = procstat.usage(first, second)
        assert 0.3 < used["cpu_s"] < 1.5 and 0 < used["cpu_cores"]
        assert 1 < second.rss_mib < 500 and second.peak_rss_bytes >= second.rss_bytes
    finally:
        child.communicate(b"\n", timeout=10)
    with pytest.raises(ProcessLookupError):
        procstat.sample(child.pid)


def test_this_process() -> None:
    me = procstat.sample(os.getpid())
    assert me.cpu_s > 0 and me.rss_bytes > 0


def test_cpu_of_other_processes_is_told_apart_from_our_own(tmp_path: Path) -> None:
    busy = "import time\nwhile time.process_time() < 1.0: pass\n"  # one CPU second, however busy the machine
    before = procstat.machine_sample()
    ours = subprocess.Popen([sys.executable, "-c", busy])  # a descendant: counted as ours
    ours.wait(60)
    mid = procstat.machine_sample()
    assert mid.own_s - before.own_s > 0.9  # it ended and was waited for: counted through cutime

    # A process that is not our descendant: started by a child that exits at once (re-parented).
    pid_file = tmp_path / "orphan.pid"
    orphan = f"import os, pathlib\npathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n{busy}"
    spawn = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {orphan!r}])"
    subprocess.run([sys.executable, "-c", spawn], check=True)
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    orphan_proc = Path(f"/proc/{pid_file.read_text()}")
    while orphan_proc.exists() and "Z" not in (orphan_proc / "stat").read_text().rsplit(")", 1)[-1].split()[:1]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    after = procstat.machine_sample()
    other_seconds = (after.busy_s - mid.busy_s) - (after.own_s - mid.own_s)
    assert other_seconds > 0.9
    usage = procstat.other_usage(before, after)
    assert usage["machine_cpu_cores"] >= usage["other_cpu_cores"] > 0
