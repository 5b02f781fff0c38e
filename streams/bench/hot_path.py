"""The events agent's per-event cost in process, stage by stage (no broker, no Redis).

Replays benchmark click events (the same generator as ``streamrec bench``) over the
demo catalog through the code the events agent runs for each micro-batch: decode,
load the users' states, apply the events, serialise the states, refresh the touched
users in one scoring call, build the published JSON, fold the batch into the item-side
state. Prints microseconds per event for each stage, so a change to one stage can be
measured on its own, away from Kafka, Faust and the load generator::

    python -m streams.bench.hot_path --events 20000 --users 5000 --batch 500

``--profile`` adds the 20 most expensive functions of the refresh (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from agents.refresh import recommendation_payload
from models.covisitation import CoVisitation
from models.interest import KIND_WEIGHTS, InterestLearner, UserState
from models.item_activity import ItemActivity
from models.item_index import ItemIndex
from models.recommender import Recommender
from models.state_updates import apply_events
from streams.bench.clickgen import ClickGenerator
from streams.demo.catalog import demo_catalog
from streams.model_loading import load_embedder
from streams.records import ClickEvent
from streams.settings import Settings


def demo_recommender(settings: Settings) -> Recommender:
    """A recommender over the text-only demo catalog, configured by ``settings``."""
    embedder = load_embedder(settings)
    catalog = demo_catalog(images=False)
    vectors = embedder.embed_items([f"{c['title']}. {c['description']}" for c in catalog], [None] * len(catalog))
    index = ItemIndex(dim=embedder.dim)
    for item, vector in zip(catalog, vectors, strict=True):
        index.upsert(item["item_id"], vector, category=item["category"], price=item["price"])
    learner = InterestLearner(
        long_half_life=settings.long_half_life_s,
        short_half_life=settings.short_half_life_s,
        query_half_life=settings.query_half_life_s,
        max_recent=settings.history_size,
    )
    activity = ItemActivity(half_life=settings.trending_half_life_s, view_weight=KIND_WEIGHTS["view"])
    return Recommender(
        index, CoVisitation(), activity, learner,
        top_k=settings.top_k, per_source=settings.candidates_per_source, exclude_recent=settings.exclude_recent,
    )


def replay(rec: Recommender, raw: Sequence[bytes], batch: int, profiler: cProfile.Profile | None = None) -> dict[str, float]:
    """Seconds spent per stage while replaying ``raw`` click JSON in micro-batches of ``batch``."""
    seconds: defaultdict[str, float] = defaultdict(float)
    table: dict[str, bytes] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        seconds[name] += time.perf_counter() - t0

    for start in range(0, len(raw), batch):
        with stage("decode"):
            events = [ClickEvent.loads(r) for r in raw[start : start + batch]]
        with stage("load states"):
            states = {e.user_id: UserState.from_bytes(table.get(e.user_id)) for e in events}
        with stage("apply events"):
            fx = apply_events(states, [(e.event_id, e) for e in events], [], rec.index, rec.learner)
        with stage("save states"):
            table.update({u: s.to_bytes() for u, s in states.items()})
        users = [(u, states[u], ts) for u, (ts, _) in fx.triggers.items()]
        with stage("refresh (candidates + ranking)"):
            if profiler is not None:
                profiler.enable()
            lists = rec.recommend(users)
            if profiler is not None:
                profiler.disable()
        with stage("recommendation JSON"):
            for (u, _, _), items in zip(users, lists, strict=True):
                recommendation_payload(u, fx.triggers[u], items, rec.model_version)
        with stage("item-side state"):
            rec.covisitation.learn_many(fx.pairs)
            rec.together.learn_many(fx.bundle_pairs)
            for item_id, weight, ts in fx.counts:
                rec.trending.learn_one(item_id, weight, ts)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="click events to replay")
    ap.add_argument("--users", type=int, default=5_000, help="users the events are spread over")
    ap.add_argument("--batch", type=int, default=500, help="events per micro-batch")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="print the refresh's most expensive functions")
    args = ap.parse_args(argv)
    if min(args.events, args.users, args.batch) < 1:
        ap.error("--events, --users and --batch must be at least 1")
    rec = demo_recommender(Settings())
    gen = ClickGenerator(rec.index.item_ids(range(rec.index.size)), users=args.users, seed=args.seed, run="hot-path")
    raw = [gen.next(1.8e9 + i * 0.01)[1] for i in range(args.events)]
    profiler = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    seconds = replay(rec, raw, args.batch, profiler)
    total = time.perf_counter() - t0
    print(f"{args.events} events over {args.users} users, batches of {args.batch}: "
          f"{args.events / total:,.0f} events/s, {1e6 * total / args.events:,.0f} µs per event")
    for stage, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:32s} {1e6 * s / args.events:8,.0f} µs per event")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
