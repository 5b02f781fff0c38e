"""Catch-up: how fast a freshly started target works off a backlog that was there before it.

The target is started by the caller (its start time is given), then ``/metrics`` is
polled every ``poll_s``: the processing window runs from the last reading that
showed no event processed (the first event came after it) to the first reading
that shows the whole backlog; ``wall_s`` runs from the process start (imports,
model loading, group join included).
"""

from __future__ import annotations

import time
import urllib.error
from typing import Any

from streams.bench import procstat, promtext
from streams.bench.live import OTHER_CPU_NOTE
from streams.bench.targets import Target

EVENTS = "streamrec_events_total"


def measure_catchup(
    target: Target,
    backlog: int,
    started_at: float,
    *,
    poll_s: float = 0.1,
    stall_s: float = 120.0,
    start_timeout_s: float = 600.0,
) -> dict[str, Any]:
    """Poll ``target`` until it counted ``backlog`` events; the figures of the catch-up."""
    assert target.pid is not None
    start_sample = procstat.sample(target.pid)
    zero_at, zero_sample, zero_machine = started_at, start_sample, procstat.machine_sample()
    first_seen: float | None = None
    count, progress_at = 0.0, time.monotonic()
    note = ""
    while True:
        target.check_alive()
        now = time.monotonic()
        try:
            text = target.metrics()
        except (urllib.error.URLError, OSError):
            text = None
        sample = procstat.sample(target.pid)
        machine = procstat.machine_sample()
        if text is not None:
            seen = promtext.counter(text, EVENTS)
            if seen > count:
                count, progress_at = seen, now
            if count == 0:
                zero_at, zero_sample, zero_machine = now, sample, machine
            elif first_seen is None:
                first_seen = now
        if count >= backlog:
            done_at, done_sample, done_machine = now, sample, machine
            break
        waited = now - (progress_at if first_seen is not None else started_at)
        if waited > (stall_s if first_seen is not None else start_timeout_s):
            done_at, done_sample, done_machine = now, sample, machine
            note = (f"stopped waiting: no progress for {stall_s:g}s at {count:,.0f} of {backlog:,} events"
                    if first_seen is not None else f"no event processed within {start_timeout_s:g}s of the start")
            break
        time.sleep(poll_s)
    elapsed = done_at - zero_at
    work = procstat.usage(zero_sample, done_sample)
    others = procstat.other_usage(zero_machine, done_machine)
    if others["other_cpu_cores"] >= OTHER_CPU_NOTE:
        note = (f"{note}; " if note else "") + f"other processes used {others['other_cpu_cores']:.2f} cores"
    return {
        "events": backlog,
        "processed": int(count),
        "completed": count >= backlog,
        "events_per_s": round(count / elapsed, 1) if elapsed > 0 and count else None,
        "elapsed_s": round(elapsed, 2),
        "wall_s": round(done_at - started_at, 2),
        "start_to_first_s": round(zero_at - started_at, 2),
        "cpu_s": work["cpu_s"],
        "cpu_cores": work["cpu_cores"],
        "cpu_s_total": round(done_sample.cpu_s, 3),  # a fresh process: all of its CPU time
        "rss_mib": work["rss_mib"],
        "peak_rss_mib": work["peak_rss_mib"],
        **others,
        "note": note,
    }
