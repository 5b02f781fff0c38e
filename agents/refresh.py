"""Refreshing users' lists: score in one call, publish to ``recommendations`` and Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Collection, Mapping, MutableMapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from models.interest import UserState
from models.recommender import ScoredItem
from models.types import Timestamp, UserId
from streams.records import Recommendation

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

#: The policy of lists ranked without exploration.
POLICY = "greedy"


_RECOMMENDATION_NS = {"ns": Recommendation._options.namespace}


def _item(x: ScoredItem) -> dict[str, object]:
    item: dict[str, object] = {"item_id": x.item_id, "score": x.score, "source": x.source, "propensity": x.propensity}
    if x.arms:  # an exploration slot: the sources its policy chose among (off-policy evaluation reads them)
        item["arms"] = list(x.arms)
    return item


def recommendation_payload(
    user_id: UserId,
    trigger: tuple[Timestamp, str | None],
    items: Sequence[ScoredItem],
    model_version: str,
    policy: str = POLICY,
    surface: str = "home",
    request_id: str | None = None,
    bundles: Mapping[str, list[str]] | None = None,
) -> bytes:
    """The JSON of one refresh, as :class:`~streams.records.Recommendation` reads it.

    Built directly (not through the Faust record) because it is on the hot path.
    ``request_id`` defaults to a fresh UUID. Every item carries its ``source`` and
    the ``propensity`` it was chosen with, an exploration slot's item also the ``arms``
    (sources) its policy chose among; ``bundles`` maps listed items to their
    "frequently bought together" items.

    >>> raw = recommendation_payload("u1", (1.5, "e1"), [ScoredItem("i1", 0.5, "search", 0.25, ("search", "trending")),
    ...                              ScoredItem("i2", 0.4, "interest")], "blend-1", bundles={"i1": ["i7"]})
    >>> rec = Recommendation.loads(raw)
    >>> rec.user_id, rec.items[0].item_id, rec.items[0].source, rec.items[0].propensity, rec.trigger_ts, rec.bundles
    ('u1', 'i1', 'search', 0.25, 1.5, {'i1': ['i7']})
    >>> rec.items[0].arms, rec.items[1].arms, rec.items[1].propensity
    (['search', 'trending'], [], 1.0)
    """
    return json.dumps(
        {
            "user_id": user_id,
            "request_id": request_id or uuid.uuid4().hex,
            "items": [_item(x) for x in items],
            "model_version": model_version,
            "policy": policy,
            "generated_at": time.time(),
            "trigger_ts": trigger[0],
            "surface": surface,
            "trigger_event_id": trigger[1],
            "bundles": dict(bundles or {}),
            "__faust": _RECOMMENDATION_NS,
        },
        separators=(",", ":"),
    ).encode()


def bundle_payload(item_id: str, items: list[str]) -> bytes:
    """The JSON of ``bundle:{item_id}`` in Redis.

    >>> bundle_payload("a", ["b", "c"])
    b'{"item_id":"a","items":["b","c"]}'
    """
    return json.dumps({"item_id": item_id, "items": items}, separators=(",", ":")).encode()


async def refresh_users(
    p: Pipeline,
    triggers: Mapping[UserId, tuple[Timestamp, str | None]],
    states: MutableMapping[UserId, UserState],
    late: Collection[UserId] = (),
) -> None:
    """Recompute and publish the lists of ``triggers``' users (one scoring call for all).

    Lists go straight to the Kafka producer (not through Faust's per-message
    channel machinery); Faust flushes that producer before it commits offsets, so a
    list is delivered before the events that caused it count as processed. Each
    published slate is remembered in its user's bandit record in ``states`` (the
    caller saves them), so impressions of it can be joined with how each item was
    chosen. The listed items' bundles go into each list and to Redis ``bundle:{item_id}``.
    Lists of ``late`` users (refreshed for events older than their trigger) are not counted
    in the event-to-recommendation latency.
    """
    if not triggers:
        return
    batch = [(uid, states[uid], ts) for uid, (ts, _) in triggers.items()]
    rec = p.recommender
    t0 = time.perf_counter()
    lists = rec.recommend(batch)
    p.metrics.scoring_seconds.observe(time.perf_counter() - t0)
    p.metrics.scoring_batch.observe(len(batch))
    version = rec.model_version
    policy = rec.policy_name
    bundles = rec.bundles([x.item_id for items in lists for x in items])
    producer, topic = p.app.producer, p.settings.topic_recommendations
    batch_id = uuid.uuid4().hex[:24]
    for n, ((uid, state, ts), items) in enumerate(zip(batch, lists, strict=True)):
        request_id = f"{batch_id}{n:08x}"
        own = {x.item_id: bundles[x.item_id] for x in items if x.item_id in bundles}
        payload = recommendation_payload(uid, triggers[uid], items, version, policy, request_id=request_id, bundles=own)
        delivery = cast("asyncio.Future[Any]", await producer.send(topic, uid.encode(), payload, None, None, None))
        delivery.add_done_callback(p.on_delivery)
        p.redis.put(p.settings.rec_key(uid), payload, None if uid in late else ts)
        if items:
            bandit = rec.user_bandit(uid, state)
            bandit.published(request_id, [x.item_id for x in items], [x.source for x in items],
                             [x.propensity for x in items], ts, rec.bandit_context(state, ts))
            states[uid] = replace(state, bandit=bandit.to_json())
    if p.bundles is not None:
        for item_id, bundled in bundles.items():
            p.bundles.put(p.settings.bundle_key(item_id), bundle_payload(item_id, bundled), 0.0)
    from agents.surfaces import publish_surfaces  # the other surfaces' lists, rec:{surface}:{user_id}

    await publish_surfaces(p, triggers, states)
    p.metrics.refreshes.inc(len(batch))
    p.metrics.redis_pending.set(p.redis.pending)


#: Longest a stopping worker waits for its queued Redis writes.
SHUTDOWN_DRAIN_S = 10.0


def register(p: Pipeline) -> None:
    """Attach the Redis writer as a background task; a stopping worker drains it first."""

    @p.app.task
    async def redis_writer() -> None:
        await p.redis.run()

    bundles = p.bundles
    if bundles is not None:

        @p.app.task
        async def bundle_writer() -> None:
            await bundles.run()

    # mode's handler type does not admit a coroutine function under mypy; the async Signal awaits it.
    @p.app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def drain_redis(app: Any, **kwargs: Any) -> None:
        # After the consumer stopped (in-flight batches finished): write what is queued.
        if not await p.redis.drain(SHUTDOWN_DRAIN_S):
            logging.getLogger(__name__).warning(
                "stopping with %d Redis key(s) unwritten (Redis unreachable); "
                "the recommendations topic has them: `streamrec redis-rebuild` restores them", p.redis.pending
            )


def recommendation_from_json(raw: bytes | str) -> dict[str, Any]:
    """Parse a published recommendation (topic value or Redis value) into a dict."""
    d = json.loads(raw)
    d.pop("__faust", None)
    for item in d.get("items", []):
        item.pop("__faust", None)
    return d
