"""events.clicks + events.searches -> user state -> refreshed recommendations.

One agent consumes both input topics (co-partitioned by user_id). Events are
gathered for ``refresh_debounce_s``: every user touched in that window has their
state read and written once (one changelog record) and gets exactly one refresh,
all users of the window scored in one vectorised call. Offsets are acknowledged
only after the batch's recommendations are published.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agents.dead_letter import decode_batch, send_to_dlq
from agents.refresh import refresh_users
from models.state_updates import apply_events
from streams.internal import StatsDelta
from streams.records import ClickEvent, SearchEvent
from streams.user_table import save_states
from streams.validation import InvalidEvent

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


def register(p: Pipeline) -> None:
    """Attach the events agent."""
    s = p.settings
    rec = p.recommender

    def lost_state(exc: BaseException) -> None:
        # Offsets must not be committed past a state that is not in the changelog:
        # stop the worker, so its events are processed again from the last commit.
        log.critical("a user state could not be written to the changelog (%r); stopping the worker", exc)
        p.metrics.publish_errors.inc()
        asyncio.ensure_future(p.app.crash(exc))

    @p.app.agent(p.topics.events, name="events")
    async def events(stream):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        await p.items_ready.wait()
        async for batch in stream.take_events(s.event_batch_size, within=s.refresh_debounce_s):
            limits = p.limits()
            click_events = [e for e in batch if e.message.topic == s.topic_clicks]
            search_events = [e for e in batch if e.message.topic != s.topic_clicks]
            clicks = []
            partition_of: dict[str, int] = {}  # the user's events' partition: where its state belongs
            for ev, click in await decode_batch(p, click_events, ClickEvent, limits, key_field="user_id"):
                if click.item_id in rec.index:
                    clicks.append((click.event_id, click))
                    partition_of[click.user_id] = ev.message.partition
                else:
                    await send_to_dlq(p, ev, InvalidEvent("unknown_item", f"item_id {click.item_id!r} is not in the catalog"))
            searches = []
            for ev, q in await decode_batch(p, search_events, SearchEvent, limits, key_field="user_id"):
                searches.append(q)
                partition_of[q.user_id] = ev.message.partition
            vectors = await loop.run_in_executor(None, p.embedder.embed_queries, [q.query for q in searches]) if searches else []
            touched = {c.user_id for _, c in clicks} | {q.user_id for q in searches}
            if not touched:
                continue
            states = {uid: p.load_user(uid) for uid in touched}
            fx = apply_events(states, clicks, [(q.event_id, q, v) for q, v in zip(searches, vectors)], rec.index, rec.learner)
            await save_states(
                p.users, p.app.producer, {uid: st.to_bytes() for uid, st in states.items()}, partition_of, lost_state
            )
            if fx.pairs or fx.counts:
                await p.topics.item_stats.send(key=None, value=StatsDelta(fx.pairs, fx.counts).to_bytes())
            await refresh_users(p, fx.triggers, states)
