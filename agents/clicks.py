"""events.clicks -> per-user interest state, co-visitation/trending deltas, refresh requests.

Events of one batch are grouped by user so each user's state is read and written
once per batch (one changelog write), and one refresh is requested per user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents.dead_letter import decode_batch, send_to_dlq
from models.covisitation import covisit_pairs
from streams.internal import RefreshRequest, StatsDelta
from streams.records import ClickEvent
from streams.validation import InvalidEvent

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def register(p: Pipeline) -> None:
    """Attach the clicks agent."""
    s = p.settings
    rec = p.recommender

    @p.app.agent(p.topics.clicks, name="clicks")
    async def clicks(stream):  # type: ignore[no-untyped-def]
        await p.items_ready.wait()
        async for events in stream.take_events(s.event_batch_size, within=0.01):
            good = await decode_batch(p, events, ClickEvent, p.limits(), key_field="user_id")
            by_user: dict[str, list[ClickEvent]] = {}
            for ev, click in good:
                if click.item_id not in rec.index:
                    await send_to_dlq(p, ev, InvalidEvent("unknown_item", f"item_id {click.item_id!r} is not in the catalog"))
                    continue
                by_user.setdefault(click.user_id, []).append(click)
            delta = StatsDelta()
            for user_id, user_clicks in by_user.items():
                state = p.load_user(user_id)
                for c in user_clicks:
                    delta.pairs.extend(covisit_pairs(state.recent, c.item_id))
                    delta.counts.append((c.item_id, rec.learner.kind_weights[c.kind], c.ts))
                    state = rec.learner.learn_interaction(
                        state, c.item_id, rec.index.vector(c.item_id), c.kind, c.ts, c.session_id
                    )
                p.save_user(user_id, state)
                last = max(user_clicks, key=lambda c: c.ts)
                await p.topics.refresh.send(
                    key=user_id.encode(), value=RefreshRequest(user_id, last.ts, last.event_id).to_bytes()
                )
            if delta.pairs or delta.counts:
                await p.topics.item_stats.send(key=None, value=delta.to_bytes())
