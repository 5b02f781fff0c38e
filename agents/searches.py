"""events.searches -> query embeddings folded into each user's short-term interest."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agents.dead_letter import decode_batch
from models.interest import UserState
from streams.internal import RefreshRequest
from streams.records import SearchEvent

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def register(p: Pipeline) -> None:
    """Attach the searches agent."""
    s = p.settings
    rec = p.recommender

    @p.app.agent(p.topics.searches, name="searches")
    async def searches(stream):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        await p.items_ready.wait()
        async for events in stream.take_events(s.event_batch_size, within=0.01):
            good = [q for _, q in await decode_batch(p, events, SearchEvent, p.limits(), key_field="user_id")]
            if not good:
                continue
            vectors = await loop.run_in_executor(None, p.embedder.embed_queries, [q.query for q in good])
            latest: dict[str, SearchEvent] = {}
            states: dict[str, UserState] = {}
            for q, v in zip(good, vectors):
                state = states.get(q.user_id) or p.load_user(q.user_id)
                states[q.user_id] = rec.learner.learn_query(state, v, q.ts, q.session_id)
                if q.user_id not in latest or q.ts >= latest[q.user_id].ts:
                    latest[q.user_id] = q
            for user_id, state in states.items():
                p.save_user(user_id, state)
                q = latest[user_id]
                await p.topics.refresh.send(
                    key=user_id.encode(), value=RefreshRequest(user_id, q.ts, q.event_id).to_bytes()
                )
