"""``streamrec demo``: simulated shoppers through the real pipeline, end to end.

Starts the embedded broker and Redis (unless addresses are configured), creates
the topics, runs a worker process, publishes the built-in catalog, streams
simulated clicks and searches (plus a few malformed events, to show the
dead-letter topic at work) at a fixed rate, then prints what several shoppers did
beside what they are now recommended, with the measured throughput and
event-to-Redis latency.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from agents.refresh import recommendation_from_json
from streams.demo.catalog import demo_catalog
from streams.demo.latency import LatencyProbe
from streams.demo.shoppers import Shopper, ShopperSimulator, bad_events, make_shoppers
from streams.producer import create_producer
from streams.runtime import find_free_port, resolve_addresses
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerFailed, WorkerProcess


class DemoError(RuntimeError):
    """The demo could not run; the message says why."""


def run_demo(
    settings: Settings,
    n_users: int = 40,
    n_events: int = 4000,
    rate: float = 300.0,
    seed: int = 7,
    show: int = 6,
    bad_every: int = 200,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the demo; returns its measured figures (also printed)."""
    console = console or Console()
    if n_events < 1 or rate <= 0 or n_users < 1:
        raise DemoError("--events, --rate and --users must be positive")
    work = Path(tempfile.mkdtemp(prefix="streamrec-demo-"))
    with ExitStack() as stack:
        with console.status("starting the embedded broker (Tansu) and Redis (Valkey)..."):
            resolved = stack.enter_context(resolve_addresses(settings))
        s = resolved.model_copy(update={"web_port": find_free_port(), "data_dir": work / "worker"})
        ensure_topics(s)
        worker = WorkerProcess(s, work / "worker.log")
        try:
            return _run(s, worker, n_users, n_events, rate, seed, show, bad_every, console)
        except WorkerFailed as exc:
            raise DemoError(str(exc)) from None
        finally:
            with console.status("stopping the worker..."):
                worker.stop()


def _run(
    s: Settings,
    worker: WorkerProcess,
    n_users: int,
    n_events: int,
    rate: float,
    seed: int,
    show: int,
    bad_every: int,
    console: Console,
) -> dict[str, Any]:
    assert s.redis_url is not None
    catalog = demo_catalog(seed=seed)
    items = {it["item_id"]: it for it in catalog}
    shoppers = make_shoppers(n_users, catalog, seed=seed)
    console.print(
        f"[bold]streamrec demo[/]: {len(catalog)} items, {n_users} shoppers, {n_events} events at {rate:.0f}/s\n"
        f"broker {s.kafka_bootstrap_servers}, redis {s.redis_url.get_secret_value()}, worker log {worker.log_path}"
    )
    worker.start()
    with console.status("starting the worker (the first run exports the encoders to ONNX, ~30 s)..."):
        worker.wait_ready(timeout=600)
    producer = create_producer(s)
    t0 = time.time()
    with console.status(f"publishing the catalog and embedding {len(catalog)} items (text + image)..."):
        for it in catalog:
            producer.send(s.topic_catalog, key=it["item_id"].encode(), value=json.dumps(it).encode())
        producer.flush()
        worker.wait_ready(min_items=len(catalog), timeout=300)
    console.print(f"catalog embedded and indexed in {time.time() - t0:.1f}s")

    client = redis.Redis.from_url(s.redis_url.get_secret_value())
    probe = LatencyProbe(client, s.redis_key_prefix).start()
    sim = ShopperSimulator(catalog, shoppers, seed=seed, start_ts=time.time())
    bad = bad_events(max(1, n_events // max(bad_every, 1)) + 1, seed=seed)
    history: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    last_ts: dict[str, float] = {}
    n_bad = 0
    columns = (TextColumn("streaming events"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    start = time.time()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("events", total=n_events)
        for i, (kind, event) in enumerate(sim.events_live(n_events)):
            ahead = start + i / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
            event["ts"] = time.time()
            topic = s.topic_clicks if kind == "clicks" else s.topic_searches
            producer.send(topic, key=event["user_id"].encode(), value=json.dumps(event).encode())
            history.setdefault(event["user_id"], []).append((kind, event))
            last_ts[event["user_id"]] = event["ts"]
            if bad_every and i % bad_every == bad_every - 1:
                producer.send(s.topic_clicks, key=event["user_id"].encode(), value=next(bad))
                n_bad += 1
            if i % 50 == 0:
                progress.update(task, completed=i)
        producer.flush()
        progress.update(task, completed=n_events)
    sent_at = time.time()

    with console.status("waiting for the last refreshes to reach Redis..."):
        deadline = time.time() + 120
        while time.time() < deadline:
            worker.check_alive()
            behind = [u for u, ts in last_ts.items() if probe.last_trigger.get(s.rec_key(u), 0.0) < ts - 1e-6]
            if not behind:
                break
            time.sleep(0.2)
    done_at = probe.last_write_at or time.time()
    probe.stop()
    producer.close()
    if behind:
        console.print(f"[yellow]{len(behind)} users' latest events were not reflected in Redis after 120 s[/]")

    recs = {u: _read(client, s.rec_key(u)) for u in last_ts}
    _print_users(console, shoppers, history, recs, items, show)
    figures = _figures(worker, probe, n_events, n_bad, start, sent_at, done_at, recs, shoppers, items)
    _print_figures(console, figures)
    return figures


def _read(client: redis.Redis, key: str) -> dict[str, Any] | None:
    raw = client.get(key)
    return recommendation_from_json(raw) if raw else None


def _taste_share(shopper: Shopper, rec: dict[str, Any] | None, items: dict[str, dict[str, Any]]) -> float:
    if not rec or not rec["items"]:
        return 0.0
    cats = [items[i["item_id"]]["category"] for i in rec["items"]]
    return sum(c in shopper.tastes for c in cats) / len(cats)


def _print_users(
    console: Console,
    shoppers: list[Shopper],
    history: dict[str, list[tuple[str, dict[str, Any]]]],
    recs: dict[str, dict[str, Any] | None],
    items: dict[str, dict[str, Any]],
    show: int,
) -> None:
    table = Table(title="What shoppers did, and what they are recommended now", show_lines=True)
    table.add_column("shopper (tastes)")
    table.add_column("latest clicks and searches")
    table.add_column("recommendations (source)")
    singles = [sh for sh in shoppers if len(sh.tastes) == 1 and sh.user_id in history]
    mixes = [sh for sh in shoppers if len(sh.tastes) > 1 and sh.user_id in history]
    for sh in (singles[: max(1, show - show // 3)] + mixes[: show // 3])[:show]:
        tastes = ", ".join(f"{c} {w:.0%}" for c, w in sh.tastes.items())
        acts = []
        for kind, ev in history[sh.user_id][-6:]:
            if kind == "searches":
                acts.append(f'search "{ev["query"]}"')
            else:
                it = items[ev["item_id"]]
                acts.append(f"{ev['kind']} {it['title'][:34]} [{it['category']}]")
        rec = recs.get(sh.user_id)
        lines = [
            f"{items[i['item_id']]['title'][:34]} [{items[i['item_id']]['category']}] ({i['source']})"
            for i in (rec["items"][:6] if rec else [])
        ]
        share = _taste_share(sh, rec, items)
        table.add_row(f"{sh.user_id}\n{tastes}\n{share:.0%} of top-10 in tastes", "\n".join(acts), "\n".join(lines) or "-")
    console.print(table)


def _figures(
    worker: WorkerProcess,
    probe: LatencyProbe,
    n_events: int,
    n_bad: int,
    start: float,
    sent_at: float,
    done_at: float,
    recs: dict[str, dict[str, Any] | None],
    shoppers: list[Shopper],
    items: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    metrics = worker.metrics()
    dlq = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("streamrec_dlq_total{"))
    shares = [_taste_share(sh, recs.get(sh.user_id), items) for sh in shoppers if sh.user_id in recs]
    sources = Counter(i["source"] for r in recs.values() if r for i in r["items"])
    return {
        "events": n_events,
        "bad_events": n_bad,
        "dlq": int(dlq),
        "offered_rate": n_events / max(sent_at - start, 1e-9),
        "end_to_end_rate": n_events / max(done_at - start, 1e-9),
        "refreshes_measured": len(probe.latencies),
        "latency_ms": probe.percentiles(),
        "latency_error": probe.error,
        "users_with_recs": sum(1 for r in recs.values() if r),
        "mean_taste_share": sum(shares) / len(shares) if shares else 0.0,
        "sources": dict(sources),
    }


def _print_figures(console: Console, f: dict[str, Any]) -> None:
    lat = f["latency_ms"]
    console.print(
        f"\n[bold]events[/] {f['events']} sent at {f['offered_rate']:.0f}/s; "
        f"processed end to end at {f['end_to_end_rate']:.0f}/s (first event sent -> last refresh in Redis)\n"
        f"[bold]event-to-Redis latency[/] over {f['refreshes_measured']} refreshes: "
        + (f"p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, p99 {lat['p99']:.0f} ms" if lat else f["latency_error"] or "-")
        + f"\n[bold]dead-letter topic[/] {f['dlq']} of {f['bad_events']} malformed events (none dropped silently)\n"
        f"[bold]users with recommendations[/] {f['users_with_recs']}; "
        f"mean share of top-10 in the shopper's tastes {f['mean_taste_share']:.0%}; sources {f['sources']}"
    )
