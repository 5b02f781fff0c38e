"""``streamrec bench`` start to finish: servers, the phases in order, and the outputs.

Phases (each with its own topics, group and Redis keys, see :mod:`~streams.bench.phases`):

1. **live, pipeline**: a worker; the demo catalog is published and embedded, then the
   offered rates run one after another (:mod:`~streams.bench.live`);
2. **live, echo**: the echo process under the same rates and the same event sequence;
3. **catch-up, pipeline**: a backlog is produced, then a fresh worker works it off
   (:mod:`~streams.bench.catchup`);
4. **catch-up, echo**: a fresh echo works off the same backlog (a group of its own).

Only one measured process runs at a time. Every process started here is stopped on
exit, on Ctrl-C and on errors (context managers; children also die with this process).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import redis
from rich.console import Console

from streams.bench.catchup import measure_catchup
from streams.bench.clickgen import ClickGenerator, preload
from streams.bench.live import WARMUP_S, run_live
from streams.bench.loadgen import LoadGenerator, LoadGeneratorFailed
from streams.bench.machine import load_average, machine_facts, source_revision
from streams.bench.phases import echo_settings, echo_topics, pipeline_settings
from streams.bench.plot import plot
from streams.bench.preflight import BenchError, check_reachable
from streams.bench.report import catchup_ratios, live_ratios, markdown, write_json
from streams.bench.servers import (
    cleanup_external,
    keyspace_events_restored,
    redis_client,
    server_facts,
)
from streams.bench.targets import EchoFailed, EchoProcess
from streams.demo.catalog import demo_catalog
from streams.producer import create_producer
from streams.runtime import resolve_addresses
from streams.settings import Settings
from streams.topics import TopicMismatch, ensure_topics
from streams.worker_process import WorkerFailed, WorkerProcess

Mode = Literal["live", "catchup", "all"]
DEFAULT_RATES: tuple[float, ...] = (500.0, 2000.0, 5000.0, 10000.0)


@dataclass(frozen=True)
class BenchConfig:
    """What to run (the ``streamrec bench`` options)."""

    mode: Mode = "all"
    rates: tuple[float, ...] = DEFAULT_RATES
    seconds: float = 20.0
    events: int = 300_000
    users: int = 50_000
    echo: bool = True
    out: Path = Path("bench-results")
    seed: int = 7
    drain_timeout_s: float = 60.0
    catalog_images: bool = True

    @property
    def live(self) -> bool:
        return self.mode in ("live", "all")

    @property
    def catchup(self) -> bool:
        return self.mode in ("catchup", "all")


@dataclass
class _Run:
    """State of one run: where things go and what was created (for clean-up on external servers)."""

    config: BenchConfig
    run_id: str
    work: Path
    logs: Path
    console: Console
    catalog: list[dict[str, Any]]
    items_file: Path
    phases: list[tuple[Settings, bool]] = field(default_factory=list)  # (settings, is_echo)

    def status(self, text: str) -> Any:
        return self.console.status(text)


def run_bench(settings: Settings, config: BenchConfig, console: Console | None = None,
              command: str = "streamrec bench") -> dict[str, Any]:
    """Run the benchmark; writes ``bench.json``, ``bench.png`` and ``bench.md`` under ``config.out``."""
    console = console or Console()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BenchError("the plot needs matplotlib: pip install 'streamrec[bench]' (or pip install matplotlib)") from None
    if not settings.embedded:
        check_reachable(settings)
    run_id = uuid.uuid4().hex[:8]
    config.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "format": "streamrec-bench/1",
        "run_id": run_id,
        "command": command,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {**asdict(config), "out": str(config.out)},
        "machine": machine_facts(),
        "source": source_revision(),
        "notes": [],
    }
    work = Path(tempfile.mkdtemp(prefix="streamrec-bench-"))
    try:
        with ExitStack() as stack:
            with console.status("starting the embedded broker (Tansu) and Redis (Valkey)..." if settings.embedded
                                else "connecting..."):
                resolved = stack.enter_context(resolve_addresses(settings))
            catalog = demo_catalog(seed=config.seed, images=config.catalog_images)
            items_file = work / "items.txt"
            items_file.write_text("\n".join(str(it["item_id"]) for it in catalog) + "\n")
            run = _Run(config, run_id, work, config.out / "logs" / run_id, console, catalog, items_file)
            client = redis_client(resolved)
            stack.callback(client.close)
            if not settings.embedded:
                stack.callback(cleanup_external, run.phases, client, run.run_id, run.console)
                stack.enter_context(keyspace_events_restored(client))
            results["servers"] = server_facts(resolved, client, settings.embedded)
            results["config"].update(
                partitions=resolved.partitions, refresh_debounce_s=resolved.refresh_debounce_s,
                event_batch_size=resolved.event_batch_size, kafka_fetch_max_wait_s=resolved.kafka_fetch_max_wait_s,
                catalog_items=len(catalog),
            )
            _phases(run, resolved, client, results)
    except (WorkerFailed, EchoFailed, LoadGeneratorFailed, TopicMismatch) as exc:
        raise BenchError(f"{exc}\n(logs of this run: {config.out / 'logs' / run_id})") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["load_average_at_end"] = load_average()
    _write(results, config.out, console)
    return results


def _phases(run: _Run, resolved: Settings, client: redis.Redis, results: dict[str, Any]) -> None:
    config = run.config
    if config.live:
        s = pipeline_settings(resolved, run.run_id, "live", run.work, embeds_catalog=True)
        results["live"] = {"pipeline": _pipeline_live(run, s, client)}
    elif config.catchup:
        _embed_catalog_only(run, pipeline_settings(resolved, run.run_id, "catalog", run.work, embeds_catalog=True))
    if config.live and config.echo:
        e = echo_settings(resolved, run.run_id, "live-echo")
        results["live"]["echo"] = _echo_live(run, e, client)
        results["live"]["ratio"] = live_ratios(results["live"]["pipeline"], results["live"]["echo"])
    if config.catchup:
        c = pipeline_settings(resolved, run.run_id, "catchup", run.work, embeds_catalog=False)
        results["catchup"] = {"pipeline": _pipeline_catchup(run, c)}
        if config.echo:
            e = echo_settings(resolved, run.run_id, "catchup-echo", clicks_topic=c.topic_clicks)
            results["catchup"]["echo"] = _echo_catchup(run, e)
            results["catchup"]["ratio"] = catchup_ratios(results["catchup"]["pipeline"], results["catchup"]["echo"])
    if config.live:
        results["notes"].append(
            "Events are sent by a separate load-generator process at the offered rate with ts = send time; "
            "a rate stops early (and higher ones are skipped) when the generator falls more than 1 s behind. "
            f"Each process gets a {WARMUP_S:g} s warm-up (not measured) before the first rate."
        )
    other = [row.get("other_cpu_cores") for row in _measured_rows(results)]
    if other:
        results["notes"].append(
            f"Other processes on the machine used up to {max(o or 0.0 for o in other):.2f} cores during a measured "
            "window (whole-machine busy CPU minus that of this benchmark's own processes)."
        )
    if not config.catalog_images:
        results["notes"].append("The catalog was published without images (text-only item vectors).")


def _measured_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    live, catchup = results.get("live") or {}, results.get("catchup") or {}
    rows = [r for system in ("pipeline", "echo") for r in live.get(system) or [] if not r.get("skipped")]
    return rows + [catchup[system] for system in ("pipeline", "echo") if catchup.get(system)]


# --------------------------------------------------------------------------- phases


def _start_worker(run: _Run, s: Settings, name: str) -> WorkerProcess:
    ensure_topics(s)
    run.phases.append((s, False))
    return WorkerProcess(s, run.logs / f"{name}.log")


def _publish_catalog(run: _Run, s: Settings, worker: WorkerProcess) -> float:
    with run.status("starting the worker (the first run exports the encoders to ONNX)..."):
        worker.wait_ready(timeout=600)
    t0 = time.monotonic()
    with run.status(f"publishing the catalog and embedding {len(run.catalog)} items..."):
        producer = create_producer(s)
        try:
            for item in run.catalog:
                producer.send(s.topic_catalog, key=str(item["item_id"]).encode(), value=json.dumps(item).encode())
            producer.flush(timeout=60)
        finally:
            producer.close(timeout=10)
        worker.wait_ready(min_items=len(run.catalog), timeout=600)
    seconds = time.monotonic() - t0
    run.console.print(f"catalog of {len(run.catalog)} items embedded and indexed in {seconds:.1f}s")
    return seconds


def _embed_catalog_only(run: _Run, s: Settings) -> None:
    with _start_worker(run, s, "worker-catalog") as worker:
        _publish_catalog(run, s, worker)


def _pipeline_live(run: _Run, s: Settings, client: redis.Redis) -> list[dict[str, Any]]:
    with _start_worker(run, s, "worker-live") as worker:
        _publish_catalog(run, s, worker)
        return _live(run, s, worker, client, "pipeline")


def _echo_live(run: _Run, e: Settings, client: redis.Redis) -> list[dict[str, Any]]:
    ensure_topics(e, echo_topics(e))
    run.phases.append((e, True))
    with EchoProcess(e, run.logs / "echo-live.log") as echo:
        with run.status("starting the echo and waiting for its group to form..."):
            echo.wait_joined()
        return _live(run, e, echo, client, "echo")


def _live(run: _Run, s: Settings, target: WorkerProcess | EchoProcess, client: redis.Redis,
          system: str) -> list[dict[str, Any]]:
    config = run.config
    gen = LoadGenerator(s, s.topic_clicks, config.users, run.items_file, run.logs / f"loadgen-{system}.log",
                        seed=config.seed, run=f"{run.run_id}-live")
    with gen, run.status(f"{system}: live") as status:
        results = run_live(target, gen, client, s.redis_key_prefix, config.rates, config.seconds,
                           config.drain_timeout_s, status=lambda text: status.update(f"{system}: {text}"))
    for row in results:
        run.console.print(_live_line(system, row))
    return results


def _pipeline_catchup(run: _Run, c: Settings) -> dict[str, Any]:
    config = run.config
    worker = _start_worker(run, c, "worker-catchup")
    gen = ClickGenerator([str(it["item_id"]) for it in run.catalog], config.users, config.seed, f"{run.run_id}-catchup")
    with run.status(f"producing a backlog of {config.events:,} events...") as status:
        preload_s = preload(c, c.topic_clicks, config.events, gen,
                            progress=lambda n: status.update(f"producing a backlog: {n:,} of {config.events:,}"))
    run.console.print(f"backlog of {config.events:,} events over {config.users:,} users produced in {preload_s:.1f}s")
    result = _catchup(run, worker, "pipeline")
    result["preload_s"] = round(preload_s, 2)
    return result


def _echo_catchup(run: _Run, e: Settings) -> dict[str, Any]:
    run.phases.append((e, True))
    return _catchup(run, EchoProcess(e, run.logs / "echo-catchup.log"), "echo")


def _catchup(run: _Run, target: WorkerProcess | EchoProcess, system: str) -> dict[str, Any]:
    with run.status(f"{system}: catching up with {run.config.events:,} events..."):
        started = time.monotonic()
        with target:
            result = measure_catchup(target, run.config.events, started)
    result["users"] = run.config.users
    run.console.print(
        f"[bold]{system}[/] catch-up: {result['processed']:,} events at {result['events_per_s'] or 0:,.0f}/s "
        f"({result['elapsed_s']:.1f}s; {result['wall_s']:.1f}s from process start), "
        f"CPU {result['cpu_s']:.1f}s, peak RSS {result['peak_rss_mib']:.0f} MiB {result['note']}"
    )
    return result


def _live_line(system: str, r: dict[str, Any]) -> str:
    if r.get("skipped"):
        return f"[bold]{system}[/] {r['offered_rate']:,.0f}/s: {r['note']}"
    lat = r["latency_ms"]
    latency = f"p50 {lat['p50']:.0f} / p95 {lat['p95']:.0f} / p99 {lat['p99']:.0f} ms" if lat else "no latency"
    return (
        f"[bold]{system}[/] {r['offered_rate']:,.0f}/s: sent {r['sent_rate']:,.0f}/s, processed "
        f"{r['processed_rate'] or 0:,.0f}/s, {r['refreshes_rate'] or 0:,.0f} refreshes/s, {latency}, "
        f"lag {r['lag_end']:,}, CPU {r['cpu_cores']:.2f} cores, RSS {r['rss_mib']:.0f} MiB {r['note']}"
    )


# --------------------------------------------------------------------------- outputs


def _write(results: dict[str, Any], out: Path, console: Console) -> None:
    json_path = write_json(results, out / "bench.json")
    png_path = plot(results, out / "bench.png")
    text = markdown(results)
    (out / "bench.md").write_text(text)
    console.print()
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    console.print(f"written: {json_path}, {png_path}, {out / 'bench.md'}")

