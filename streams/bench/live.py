"""Offered load at fixed rates against one target (the worker or the echo), one rate after another.

For every rate: the load generator sends ``rate`` events/s for ``seconds``; the
target's ``/metrics`` and ``/proc`` are read just before and just after; then the
benchmark waits (up to ``drain_timeout_s``) until the target has counted every
event sent, so the next rate starts from an empty queue. Latency is what a reader
of Redis sees (a :class:`~streams.bench.probe.SampledLatencyProbe` started for the
rate), over every refresh of the rate's events, those that land while draining too.
Once a rate cannot be generated or drained, the higher rates are skipped, saying why.
Before the first rate, a short warm-up (not measured) takes the first-call costs
(connections, first scoring call) out of the figures.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from streams.bench import procstat, promtext
from streams.bench.loadgen import LoadGenerator
from streams.bench.probe import SampledLatencyProbe, sample_for_rate
from streams.bench.stats import PERCENTILES, latency_percentiles, per_second
from streams.bench.targets import Target

#: Warm-up before the first rate: seconds, and the highest rate used for it.
WARMUP_S = 1.0
WARMUP_MAX_RATE = 200.0

#: Other processes' CPU (cores) from which a figure is flagged in its note.
OTHER_CPU_NOTE = 0.2

EVENTS = "streamrec_events_total"
REFRESHES = "streamrec_refreshes_total"
LATENCY = "streamrec_event_to_recommendation_seconds"


@dataclass(frozen=True)
class Scrape:
    """Counters of one ``/metrics`` read."""

    at: float
    events: float
    refreshes: float
    latency: promtext.Buckets

    @classmethod
    def of(cls, target: Target) -> Scrape:
        text = target.metrics()
        return cls(time.monotonic(), promtext.counter(text, EVENTS), promtext.counter(text, REFRESHES),
                   promtext.histogram(text, LATENCY))


def writer_percentiles(before: Scrape, after: Scrape) -> dict[str, float]:
    """p50/p95/p99 in ms of the target's own latency histogram between two scrapes (bucket-interpolated)."""
    window = promtext.subtract(after.latency, before.latency)
    out: dict[str, float] = {}
    for q in PERCENTILES:
        value = promtext.quantile(q / 100.0, window)
        if value is not None:
            out[f"p{q}"] = round(value * 1000.0, 1)
    return out


def skipped(rate: float, seconds: float, why: str) -> dict[str, Any]:
    """The result of a rate that was not run."""
    return {"offered_rate": rate, "seconds": seconds, "skipped": True, "note": why}


def run_live(
    target: Target,
    generator: LoadGenerator,
    redis_client: redis.Redis,
    key_prefix: str,
    rates: Sequence[float],
    seconds: float,
    drain_timeout_s: float,
    status: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Every rate in turn against ``target``; one result dict per rate."""
    results: list[dict[str, Any]] = []
    stop_reason = ""
    if rates:
        status("warming up")
        _one_rate(target, generator, redis_client, key_prefix, min(rates[0], WARMUP_MAX_RATE), WARMUP_S,
                  drain_timeout_s, status)
    for rate in rates:
        if stop_reason:
            results.append(skipped(rate, seconds, stop_reason))
            continue
        status(f"{rate:,.0f} events/s for {seconds:g}s")
        result = _one_rate(target, generator, redis_client, key_prefix, rate, seconds, drain_timeout_s, status)
        results.append(result)
        if result["generator_limited"]:
            stop_reason = f"skipped: the load generator could not keep {rate:,.0f}/s"
        elif not result["drained"]:
            stop_reason = f"skipped: still {result['lag_after_drain']:,} events behind after {rate:,.0f}/s"
    return results


def _one_rate(
    target: Target,
    generator: LoadGenerator,
    redis_client: redis.Redis,
    key_prefix: str,
    rate: float,
    seconds: float,
    drain_timeout_s: float,
    status: Callable[[str], None],
) -> dict[str, Any]:
    assert target.pid is not None and generator.pid is not None
    glob, share = sample_for_rate(rate)
    probe = SampledLatencyProbe(redis_client, key_prefix, glob)
    probe.start()
    try:
        before = Scrape.of(target)
        proc0, gen0, machine0 = procstat.sample(target.pid), procstat.sample(generator.pid), procstat.machine_sample()
        step = generator.step(rate, seconds)
        proc1, gen1, machine1 = procstat.sample(target.pid), procstat.sample(generator.pid), procstat.machine_sample()
        after = Scrape.of(target)
        produced = int(step["sent"]) - int(step["errors"])
        status(f"{rate:,.0f} events/s: draining")
        drained_at, last = _drain(target, before.events + produced, after, drain_timeout_s)
        _settle(probe)
    finally:
        probe.stop()
    window = after.at - before.at
    processed = after.events - before.events
    lag_after = max(0, int(before.events + produced - last.events))
    note = ""
    if step["generator_limited"]:
        note = (f"load generator fell over {step['max_behind_s']:.1f}s behind schedule; "
                f"stopped after {step['sent']:,} events ({step['sent_rate']:,.0f}/s)")
    elif drained_at is None:
        note = f"not drained within {drain_timeout_s:g}s ({lag_after:,} events behind)"
    machine = procstat.other_usage(machine0, machine1)
    if machine["other_cpu_cores"] >= OTHER_CPU_NOTE:
        note = f"{note}; " if note else ""
        note += f"other processes used {machine['other_cpu_cores']:.2f} cores"
    return {
        "offered_rate": rate,
        "seconds": seconds,
        "skipped": False,
        "sent": int(step["sent"]),
        "send_errors": int(step["errors"]),
        "sent_rate": step["sent_rate"],
        "generator_limited": bool(step["generator_limited"]),
        "generator_cpu_s": round(gen1.cpu_s - gen0.cpu_s, 3),
        "processed": int(processed),
        "processed_rate": _round(per_second(processed, window)),
        "refreshes": int(after.refreshes - before.refreshes),
        "refreshes_rate": _round(per_second(after.refreshes - before.refreshes, window)),
        "latency_ms": latency_percentiles(probe.latencies),
        "latency_samples": len(probe.latencies),
        "latency_sample_share": share,
        "latency_error": probe.error,
        "writer_latency_ms": writer_percentiles(before, last),
        "lag_end": max(0, int(produced - processed)),
        "drained": drained_at is not None,
        "drain_s": round(drained_at - after.at, 2) if drained_at is not None else None,
        "lag_after_drain": lag_after,
        **procstat.usage(proc0, proc1),
        **machine,
        "note": note,
    }


def _drain(target: Target, expected: float, after: Scrape, timeout: float) -> tuple[float | None, Scrape]:
    """Wait until the target counted ``expected`` events; (when, last scrape) or (None, last) on timeout."""
    last = after
    deadline = time.monotonic() + timeout
    while last.events < expected:
        if time.monotonic() >= deadline:
            return None, last
        time.sleep(0.1)
        target.check_alive()
        try:
            last = Scrape.of(target)
        except (urllib.error.URLError, OSError):
            continue
    return last.at, last


def _settle(probe: SampledLatencyProbe, quiet_s: float = 0.5, timeout: float = 10.0) -> None:
    """Give the last refreshes time to reach Redis and the probe: until it heard nothing for ``quiet_s``."""
    deadline = time.monotonic() + timeout
    time.sleep(quiet_s)
    while time.monotonic() < deadline and time.time() - probe.last_write_at < quiet_s:
        time.sleep(0.1)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
