"""The sampled latency probe follows exactly the sampled users' keys, on a real Valkey."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from streams.bench.clickgen import user_id
from streams.bench.probe import SAMPLES, SampledLatencyProbe, sample_for_rate
from streams.runtime import EmbeddedRuntime


def test_sample_sizes() -> None:
    assert sample_for_rate(100) == ("*", 1.0)
    assert sample_for_rate(5000) == ("*[0-4]0", 0.05)
    assert sample_for_rate(1e6) == SAMPLES[-1]
    shares = [share for _, share in SAMPLES]
    assert shares == sorted(shares, reverse=True)


def test_sampled_probe_reads_only_matching_users(embedded: EmbeddedRuntime, redis_client: Any) -> None:
    client = redis.Redis.from_url(embedded.url)
    probe = SampledLatencyProbe(client, "tprobe:", "*0")
    probe.start()
    try:
        time.sleep(0.2)  # subscribed
        trigger = time.time()
        for i in range(40):
            redis_client.set(f"tprobe:rec:{user_id(i)}", json.dumps({"trigger_ts": trigger}))
        redis_client.set("other:rec:bench-000000", json.dumps({"trigger_ts": trigger}))
        deadline = time.monotonic() + 10
        while len(probe.latencies) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        probe.stop()
        client.close()
    assert sorted(probe.last_trigger) == [f"tprobe:rec:{user_id(i)}" for i in (0, 10, 20, 30)]
    assert len(probe.latencies) == 4 and all(0 <= lat < 5 for lat in probe.latencies)
