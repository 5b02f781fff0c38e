"""``streamrec bench rank``: latency of ``POST /v1/rank`` while the event stream runs.

One worker on the embedded (or given) broker and Redis, the demo catalog embedded, and
(``target="replica"``, the default) one serving replica (``streamrec serve``) beside it;
a load-generator process offers click events at ``event_rate`` to the worker (the same
generator as ``streamrec bench``), and at the same time this process sends ``rate`` rank
requests per second to the replica (or, with ``target="worker"``, to the worker), each
with ``items`` catalog items for a user of that stream, open loop:
request ``i`` is due at ``i / rate`` seconds whatever the answers before it did, so a
slow answer delays none of the later ones' clocks. Latency is measured from the due
time to the last byte of the answer (client queueing included), and apart from that
as service time (from the actual send), and the handler's own time (its ``Server-Timing``
header). Requests in the first ``warmup_s`` seconds
are sent but not counted. With ``serving_cpus``, the answering process and the client
run on those CPUs and the broker, Redis, worker and load generator on the others
(:mod:`streams.bench.cpus`), as when replicas have cores of their own. Writes
``rank.json`` under ``out``.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from rich.console import Console

from streams.bench.clickgen import user_id
from streams.bench.cpus import CpuSet, CpuSetError, on_cpus, split_cpus
from streams.bench.loadgen import LoadGenerator
from streams.bench.machine import load_average, machine_facts, source_revision
from streams.bench.phases import pipeline_settings
from streams.bench.preflight import BenchError, check_reachable
from streams.bench.servers import cleanup_external, redis_client
from streams.demo.catalog import demo_catalog
from streams.producer import create_producer
from streams.runtime import find_free_port, resolve_addresses
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess


@dataclass(frozen=True)
class RankBenchConfig:
    """What one ``bench rank`` run offers."""

    rate: float = 200.0
    items: int = 100
    seconds: float = 30.0
    warmup_s: float = 5.0
    event_rate: float = 2000.0
    users: int = 5000
    query_share: float = 0.0
    catalog_images: bool = False
    out: Path = Path("bench-results/rank")
    seed: int = 7
    target: str = "replica"  # or "worker"
    worker_nice: int = 0  # the stream worker's nice(1) value: > 0 gives the answering process CPU priority
    serving_cpus: CpuSet | None = None  # CPUs of the answering process and the client; the rest run the stream


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max of ``values`` in milliseconds (None when empty).

    >>> percentiles([0.001, 0.002, 0.003])["p50"]
    2.0
    """
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    a = np.asarray(values, np.float64) * 1000.0
    return {k: round(float(v), 2) for k, v in
            zip(("p50", "p90", "p99", "max"), (*np.percentile(a, [50, 90, 99]), a.max()), strict=True)}


def _bodies(cfg: RankBenchConfig, item_ids: list[str], n: int) -> list[bytes]:
    rng = random.Random(cfg.seed)
    queries = ["wireless headphones", "trail running shoes", "board game", "face cream", "cast iron pan"]
    out = []
    for _ in range(n):
        body: dict[str, Any] = {
            "user_id": user_id(rng.randrange(cfg.users)),
            "items": rng.sample(item_ids, min(cfg.items, len(item_ids))),
            "surface": "home",
        }
        if rng.random() < cfg.query_share:
            body["query"] = rng.choice(queries)
        out.append(json.dumps(body).encode())
    return out


async def drive(url: str, bodies: list[bytes], rate: float, warmup: int) -> dict[str, Any]:
    """Send ``bodies`` open loop at ``rate``/s; latencies of those after the first ``warmup``."""
    latency: list[float] = []
    service: list[float] = []
    handler: list[float] = []
    statuses: dict[str, int] = {}
    personalised = 0
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, due: float) -> None:
            nonlocal personalised
            sent = time.perf_counter()
            try:
                async with session.post(url, data=bodies[i], headers=headers) as resp:
                    payload = await resp.read()
                    key = str(resp.status)
                    timing = resp.headers.get("Server-Timing", "")
            except (aiohttp.ClientError, TimeoutError) as exc:
                key, payload, timing = type(exc).__name__, b"", ""
            done = time.perf_counter()
            statuses[key] = statuses.get(key, 0) + 1
            if i >= warmup and key == "200":
                latency.append(done - due)
                service.append(done - sent)
                if "dur=" in timing:
                    handler.append(float(timing.split("dur=")[1].split(";")[0].split(",")[0]) / 1000.0)
                personalised += b'"personalised":true' in payload

        start = time.perf_counter()
        tasks = []
        for i in range(len(bodies)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "sent": len(bodies), "counted": len(latency), "statuses": statuses,
        "achieved_rate": round(len(bodies) / elapsed, 1), "personalised_share": round(personalised / max(len(latency), 1), 3),
        "latency_ms": percentiles(latency), "service_ms": percentiles(service), "handler_ms": percentiles(handler),
    }


def run_rank_bench(settings: Settings, cfg: RankBenchConfig, echo: Callable[[str], None] = print,
                   command: str = "streamrec bench rank") -> dict[str, Any]:
    """Run the benchmark and write ``rank.json`` under ``cfg.out``; returns the results."""
    if not settings.embedded:
        check_reachable(settings)
    answering_cpus = stream_cpus = None
    if cfg.serving_cpus is not None:
        try:
            answering_cpus, stream_cpus = split_cpus(cfg.serving_cpus)
        except CpuSetError as exc:
            raise BenchError(f"--serving-cpus: {exc}") from None
    run_id = uuid.uuid4().hex[:8]
    cfg.out.mkdir(parents=True, exist_ok=True)
    logs = cfg.out / "logs" / run_id
    results: dict[str, Any] = {
        "format": "streamrec-bench-rank/1", "run_id": run_id, "command": command,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {**asdict(cfg), "out": str(cfg.out),
                   "serving_cpus": None if cfg.serving_cpus is None else sorted(cfg.serving_cpus)},
        "machine": machine_facts(), "source": source_revision(),
        "cpus": None if stream_cpus is None else {"answering": sorted(answering_cpus or ()),
                                                  "stream": sorted(stream_cpus)},
    }
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="streamrec-rank-") as tmp:
        work = Path(tmp)
        stack.enter_context(on_cpus(stream_cpus))  # what this thread starts from here runs on the stream's CPUs
        echo("starting the broker and Redis..." if settings.embedded else "connecting...")
        resolved = stack.enter_context(resolve_addresses(settings))
        s = pipeline_settings(resolved, run_id, "rank", work, embeds_catalog=True)
        if not settings.embedded:  # on your own servers: this run's topics, group and keys go at the end
            client = redis_client(resolved)
            stack.callback(client.close)
            stack.callback(cleanup_external, [(s, False)], client, run_id, Console())
        ensure_topics(s)
        catalog = demo_catalog(seed=cfg.seed, images=cfg.catalog_images)
        item_ids = [str(i["item_id"]) for i in catalog]
        items_file = work / "items.txt"
        items_file.write_text("\n".join(item_ids) + "\n")
        with on_cpus(answering_cpus if cfg.target == "worker" else None):
            worker = stack.enter_context(WorkerProcess(s, logs / "worker.log", nice=cfg.worker_nice))
        echo("starting the worker (the first run exports the encoders to ONNX)...")
        worker.wait_ready(timeout=600)
        producer = create_producer(s)
        try:
            for item in catalog:
                producer.send(s.topic_catalog, key=str(item["item_id"]).encode(), value=json.dumps(item).encode())
            producer.flush(timeout=60)
        finally:
            producer.close(timeout=10)
        worker.wait_ready(min_items=len(catalog), timeout=600)
        server = worker
        if cfg.target == "replica":
            with on_cpus(answering_cpus):
                server = stack.enter_context(WorkerProcess(s.model_copy(update={"web_port": find_free_port()}),
                                                           logs / "replica.log", command="serve"))
            server.wait_ready(min_items=len(catalog), timeout=600)
        echo(f"catalog of {len(catalog)} items embedded; offering {cfg.event_rate:g} events/s and "
             f"{cfg.rate:g} rank requests/s of {cfg.items} items for {cfg.warmup_s + cfg.seconds:g}s")
        gen = stack.enter_context(LoadGenerator(s, s.topic_clicks, cfg.users, items_file, logs / "loadgen.log",
                                                seed=cfg.seed, run=f"rank-{run_id}"))
        stream: dict[str, Any] = {}

        def events() -> None:
            stream.update(gen.step(cfg.event_rate, cfg.warmup_s + cfg.seconds + 1.0))

        thread = threading.Thread(target=events, daemon=True)
        thread.start()
        time.sleep(1.0)  # the stream is flowing before the first request
        n = round(cfg.rate * (cfg.warmup_s + cfg.seconds))
        bodies = _bodies(cfg, item_ids, n)
        with on_cpus(answering_cpus):
            rank = asyncio.run(drive(server.base_url + "/v1/rank", bodies, cfg.rate, round(cfg.rate * cfg.warmup_s)))
        thread.join(timeout=cfg.seconds + 240)
        results.update(rank=rank, stream=stream, worker_status=worker.status())
        if server is not worker:
            results.update(replica_status=server.status(), replica_state_delay=state_delay(server.metrics()))
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["load_average_at_end"] = load_average()
    (cfg.out / "rank.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    echo(summary(results))
    return results


def state_delay(metrics_text: str) -> dict[str, float | None]:
    r"""Mean copy delay of a replica (``streamrec_replica_state_delay_seconds``) and the share
    of records applied within 100 ms, from its ``/metrics`` text.

    >>> state_delay("streamrec_replica_state_delay_seconds_bucket{le=\"0.1\"} 3.0\n"
    ...             "streamrec_replica_state_delay_seconds_count 4.0\nstreamrec_replica_state_delay_seconds_sum 0.2\n")
    {'records': 4.0, 'mean_s': 0.05, 'within_100ms': 0.75}
    """
    values: dict[str, float] = {}
    for line in metrics_text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("streamrec_replica_state_delay_seconds"):
            values[name] = float(value)
    n = values.get("streamrec_replica_state_delay_seconds_count", 0.0)
    within = values.get('streamrec_replica_state_delay_seconds_bucket{le="0.1"}', 0.0)
    total = values.get("streamrec_replica_state_delay_seconds_sum", 0.0)
    return {"records": n, "mean_s": round(total / n, 4) if n else None, "within_100ms": round(within / n, 4) if n else None}


def summary(results: dict[str, Any]) -> str:
    """The figures of a run as a few lines of text."""
    r, cfg, st = results["rank"], results["config"], results.get("stream", {})
    lat, svc = r["latency_ms"], r["service_ms"]
    cpus = results.get("cpus")
    lag = (results.get("worker_status") or {}).get("lag") or {}
    return (
        f"/v1/rank on the {cfg.get('target', 'worker')}, {cfg['items']} items per request, offered {cfg['rate']:g}/s (achieved {r['achieved_rate']}/s), "
        f"events offered {cfg['event_rate']:g}/s (sent at {st.get('sent_rate')}/s)\n"
        f"latency from due time over {r['counted']} requests: p50 {lat['p50']} ms, p90 {lat['p90']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms\n"
        f"service time: p50 {svc['p50']} ms, p99 {svc['p99']} ms; in the handler (Server-Timing): "
        f"p50 {r['handler_ms']['p50']} ms, p99 {r['handler_ms']['p99']} ms; statuses {r['statuses']}; "
        f"personalised {r['personalised_share']:.0%}\n"
        + (f"CPUs: answering process and client on {cpus['answering']}, broker, Redis, worker and load generator "
           f"on {cpus['stream']}\n" if cpus else "CPUs: all processes share every CPU\n")
        + f"worker's input lag at end: {lag.get('total')} events; load average at end {results['load_average_at_end']}"
    )
