"""Refresh requests -> one ranked list per user -> ``recommendations`` topic and Redis.

Requests are gathered for ``refresh_debounce_s`` (or ``refresh_batch_size``
requests); all requests of one user in that window give a single refresh, and
all users of the window are scored in one vectorised call.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

from agents.dead_letter import send_to_dlq
from models.recommender import ScoredItem
from streams.internal import RefreshRequest
from streams.records import RecItem, Recommendation
from streams.validation import InvalidEvent

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

POLICY = "greedy"


def to_recommendation(p: Pipeline, req: RefreshRequest, items: list[ScoredItem], surface: str = "home") -> Recommendation:
    """The published record of one refresh."""
    return Recommendation(
        user_id=req.user_id,
        request_id=uuid.uuid4().hex,
        items=[RecItem(item_id=i.item_id, score=i.score, source=i.source) for i in items],
        model_version=p.recommender.model_version,
        policy=POLICY,
        generated_at=time.time(),
        trigger_ts=req.trigger_ts,
        surface=surface,
        trigger_event_id=req.event_id,
    )


def register(p: Pipeline) -> None:
    """Attach the refresh agent and the Redis writer task."""
    s = p.settings

    @p.app.task
    async def redis_writer() -> None:
        await p.redis.run()

    @p.app.agent(p.topics.refresh, name="refresh")
    async def refresh(stream):  # type: ignore[no-untyped-def]
        await p.items_ready.wait()
        async for events in stream.take_events(s.refresh_batch_size, within=s.refresh_debounce_s):
            requests: dict[str, RefreshRequest] = {}
            for ev in events:
                try:
                    req = RefreshRequest.from_bytes(ev.value)
                except (ValueError, KeyError, TypeError) as exc:
                    await send_to_dlq(p, ev, InvalidEvent("bad_refresh_request", str(exc)))
                    continue
                prev = requests.get(req.user_id)
                if prev is None or req.trigger_ts >= prev.trigger_ts:
                    requests[req.user_id] = req
            if not requests:
                continue
            batch = [(uid, p.load_user(uid), r.trigger_ts) for uid, r in requests.items()]
            t0 = time.perf_counter()
            lists = p.recommender.recommend(batch)
            p.metrics.scoring_seconds.observe(time.perf_counter() - t0)
            p.metrics.scoring_batch.observe(len(batch))
            for (uid, _, _), items in zip(batch, lists):
                rec = to_recommendation(p, requests[uid], items)
                payload = rec.dumps()
                await p.topics.recommendations.send(key=uid.encode(), value=payload)
                p.redis.put(s.rec_key(uid), payload, rec.trigger_ts)
            p.metrics.refreshes.inc(len(batch))
            p.metrics.redis_pending.set(p.redis.pending)


def recommendation_from_json(raw: bytes | str) -> dict[str, object]:
    """Parse a published recommendation (topic value or Redis value) into a dict."""
    d = json.loads(raw)
    d.pop("__faust", None)
    for item in d.get("items", []):
        item.pop("__faust", None)
    return d
