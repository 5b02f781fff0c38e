"""Refreshing users' lists: score in one call, publish to ``recommendations`` and Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from models.interest import UserState
from models.recommender import ScoredItem
from models.types import Timestamp, UserId
from streams.records import RecItem, Recommendation

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

POLICY = "greedy"


def to_recommendation(
    p: Pipeline, user_id: UserId, trigger: tuple[Timestamp, str | None], items: list[ScoredItem], surface: str = "home"
) -> Recommendation:
    """The published record of one refresh."""
    return Recommendation(
        user_id=user_id,
        request_id=uuid.uuid4().hex,
        items=[RecItem(item_id=i.item_id, score=i.score, source=i.source) for i in items],
        model_version=p.recommender.model_version,
        policy=POLICY,
        generated_at=time.time(),
        trigger_ts=trigger[0],
        surface=surface,
        trigger_event_id=trigger[1],
    )


async def refresh_users(
    p: Pipeline, triggers: Mapping[UserId, tuple[Timestamp, str | None]], states: Mapping[UserId, UserState]
) -> None:
    """Recompute and publish the lists of ``triggers``' users (one scoring call for all)."""
    if not triggers:
        return
    batch = [(uid, states[uid], ts) for uid, (ts, _) in triggers.items()]
    t0 = time.perf_counter()
    lists = p.recommender.recommend(batch)
    p.metrics.scoring_seconds.observe(time.perf_counter() - t0)
    p.metrics.scoring_batch.observe(len(batch))
    for (uid, _, _), items in zip(batch, lists):
        rec = to_recommendation(p, uid, triggers[uid], items)
        payload = rec.dumps()
        await p.topics.recommendations.send(key=uid.encode(), value=payload)
        p.redis.put(p.settings.rec_key(uid), payload, rec.trigger_ts)
    p.metrics.refreshes.inc(len(batch))
    p.metrics.redis_pending.set(p.redis.pending)


def register(p: Pipeline) -> None:
    """Attach the Redis writer as a background task."""

    @p.app.task
    async def redis_writer() -> None:
        await p.redis.run()


def recommendation_from_json(raw: bytes | str) -> dict[str, object]:
    """Parse a published recommendation (topic value or Redis value) into a dict."""
    d = json.loads(raw)
    d.pop("__faust", None)
    for item in d.get("items", []):
        item.pop("__faust", None)
    return d
