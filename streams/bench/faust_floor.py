"""The framework floor: how fast a Faust agent that does nothing drains a backlog.

``python -m streams.bench.faust_floor --events 100000 --users 20000`` produces a
backlog of click events to the embedded broker, then starts a child process whose
only agent iterates ``stream.take_events`` (as the events agent does, same batch
size and window) and decodes each value's JSON -- no state, no scoring, no output.
Its events/s and CPU per event are the ceiling any Faust-stream-based worker can
reach on this machine and broker, whatever its own code costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from pydantic import SecretStr

from streams.producer import create_producer
from streams.runtime import EmbeddedRuntime, find_free_port
from streams.settings import Settings
from streams.topics import ensure_topics


def _child(bootstrap: str, topic: str, n_events: int, result_path: Path) -> None:
    """Run the no-op agent until ``n_events`` are seen; write the figures to ``result_path``."""
    import faust

    from streams.faust_app import StreamrecApp

    s = Settings()
    app = StreamrecApp(
        f"faust-floor-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=s.partitions,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=s.kafka_session_timeout_s,
        broker_rebalance_timeout=s.kafka_rebalance_timeout_s,
        broker_heartbeat_interval=s.kafka_heartbeat_interval_s,
        web_enabled=False,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        web_port=find_free_port(),
        autodiscover=False,
        datadir=tempfile.mkdtemp(prefix="faust-floor-"),
        key_serializer="raw",
        value_serializer="raw",
    )
    app.conf.streamrec_fetch_max_wait_ms = int(s.kafka_fetch_max_wait_s * 1000)
    app.conf.streamrec_producer_buffer_max = 4 * s.event_batch_size
    source = app.topic(topic, key_type=bytes, value_type=bytes, partitions=s.partitions)
    seen = {"n": 0, "t0": 0.0, "cpu0": 0.0}

    @app.agent(source)
    async def noop(stream: faust.StreamT[Any]) -> None:
        async for batch in cast("faust.Stream[Any]", stream).take_events(s.event_batch_size, within=s.refresh_debounce_s):
            if not seen["n"]:
                seen["t0"], seen["cpu0"] = time.time(), time.process_time()  # CPU in ns, not /proc ticks
            for event in batch:
                json.loads(event.value)
            seen["n"] += len(batch)
            if seen["n"] >= n_events:
                elapsed = time.time() - seen["t0"]
                cpu = time.process_time() - seen["cpu0"]
                figures = {"events": seen["n"], "seconds": elapsed, "events_per_s": seen["n"] / elapsed,
                           "cpu_us_per_event": cpu / seen["n"] * 1e6}
                result_path.write_text(json.dumps(figures))
                os._exit(0)  # the measurement is taken; skip Faust's slow shutdown

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--child", nargs=3, metavar=("BOOTSTRAP", "TOPIC", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.events, Path(args.child[2]))
        return
    with EmbeddedRuntime() as rt:
        s = Settings(kafka_bootstrap_servers=rt.bootstrap, redis_url=SecretStr(rt.url)).isolated("floor")
        ensure_topics(s)
        producer = create_producer(s, linger_ms=20, batch_size=256 * 1024)
        for i in range(args.events):
            user = f"u{i % args.users}"
            event = {"event_id": f"e{i}", "user_id": user, "item_id": "i1", "kind": "view", "ts": 1.7e9 + i}
            producer.send(s.topic_clicks, key=user.encode(), value=json.dumps(event).encode())
        producer.flush()
        result = Path(tempfile.mkdtemp(prefix="faust-floor-")) / "result.json"
        cmd = [sys.executable, "-m", "streams.bench.faust_floor", "--events", str(args.events),
               "--child", rt.bootstrap, s.topic_clicks, str(result)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if not result.exists():
            raise SystemExit(f"the no-op worker failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        f = json.loads(result.read_text())
        print(
            f"Faust take_events + JSON decode, no work: {f['events']:,} events in {f['seconds']:.1f} s = "
            f"{f['events_per_s']:,.0f} events/s, {f['cpu_us_per_event']:.0f} us CPU per event"
        )


if __name__ == "__main__":
    main()
