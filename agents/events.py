"""events.clicks + events.searches + events.impressions -> user state -> refreshed recommendations.

One agent consumes the three input topics (co-partitioned by user_id). Events are
gathered for ``refresh_debounce_s``: every user touched in that window has their
state read and written once (one changelog record) and gets exactly one refresh,
all users of the window scored in one vectorised call. Offsets are acknowledged
only after the batch's recommendations are published.

Each user's state decides, through :class:`~models.user_guard.UserGuard`, whether an
event may change it: a redelivered event (same event_id) or one past the user's rate
limit changes nothing and is counted.

Impressions and clicks carrying a request_id are joined per user (see
:func:`models.state_updates.apply_feedback`): rewards update the user's bandit policy
and shown-without-click counts in the same state record, and new items' impressions
and clicks go to the item-stats topic so every worker's new-item statistics see them.
A batch arriving when the group has not confirmed the worker's membership for a session
timeout is left unprocessed and uncommitted for the partitions' owner
(:mod:`streams.membership`). A partition's messages are processed in offset order: those
that would overtake a message the consumer skipped wait for it (:mod:`streams.input_order`).
An impression changes no interest and triggers no refresh.
A forget request (see :mod:`agents.forget`) erases the user; their events of the same
micro-batch that came before it are dropped with them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from agents.dead_letter import decode_batch, send_to_dlq
from agents.forget import erase_users, is_forget
from agents.refresh import refresh_users
from models.state_updates import apply_events, apply_feedback
from models.user_guard import UserGuard
from streams.input_order import InputOrder, keep_in_order
from streams.internal import StatsDelta
from streams.membership import admit_batch
from streams.records import ClickEvent, ImpressionEvent, SearchEvent
from streams.state_version import batch_versions
from streams.user_table import save_states
from streams.validation import InvalidEvent

if TYPE_CHECKING:
    import faust

    from models.types import Matrix, Vector
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


def register(p: Pipeline) -> None:
    """Attach the events agent (and the sweep of expired user states)."""
    from agents import forget

    forget.register(p)
    s = p.settings
    rec = p.recommender
    guard = UserGuard(s.dedup_window, s.user_rate_limit_per_s, s.user_rate_burst, s.user_state_ttl_s)
    order = InputOrder(s.skipped_input_timeout_s)

    def reread(topic: str, partition: int, offset: int, held: int) -> None:
        p.metrics.reread.labels(topic, str(partition)).inc()

    def expired(topic: str, partition: int, lost: int) -> None:
        p.metrics.expired.labels(topic, str(partition)).inc(lost)

    def lost_state(exc: BaseException) -> None:
        # Offsets must not be committed past a state (or item-stats increments) not delivered:
        # stop the worker, so its events are processed again from the last commit.
        log.critical("a user state or a batch's item statistics could not be written (%r); stopping the worker", exc)
        p.metrics.publish_errors.inc()
        asyncio.ensure_future(p.app.crash(exc))

    @p.app.agent(p.topics.events, name="events")
    async def events(stream: faust.StreamT[Any]) -> None:
        loop = asyncio.get_running_loop()
        await p.items_ready.wait()
        async for batch in cast("faust.Stream[Any]", stream).take_events(s.event_batch_size, within=s.refresh_debounce_s):
            if not await admit_batch(p.app, p.app.membership, batch, s.kafka_session_timeout_s,
                                     3 * s.kafka_heartbeat_interval_s):
                log.warning("%d events left for the partitions' owner: the group has not confirmed this worker's "
                            "membership for %.1fs", len(batch), p.app.membership.age() or 0.0)
                p.metrics.fenced.inc(len(batch))
                continue
            batch = await keep_in_order(p.app.consumer, order, batch, reread, on_expired=expired)
            if not batch:
                continue
            limits = p.limits()
            click_events = [e for e in batch if e.message.topic == s.topic_clicks]
            search_events = [e for e in batch if e.message.topic == s.topic_searches]
            impression_events = [e for e in batch if e.message.topic == s.topic_impressions]
            forgets: dict[str, tuple[int, int, float]] = {}  # user -> (partition, offset, broker timestamp)
            if any(e.value is None for e in click_events):
                kept = []
                for e in click_events:
                    if not is_forget(e):
                        kept.append(e)
                    elif isinstance(e.key, bytes) and e.key:
                        m = e.message
                        forgets[e.key.decode("utf-8", "replace")] = (m.partition, m.offset, m.timestamp)
                    else:
                        await send_to_dlq(p, e, InvalidEvent("invalid_forget", "a forget request needs the user_id as its key"))
                click_events = kept
            if forgets:
                await erase_users(p, {u: f[0] for u, f in forgets.items()}, "forget", batch_versions(
                    ((u, s.topic_clicks, f[1]) for u, f in forgets.items()),
                    (s.topic_clicks, s.topic_searches, s.topic_impressions), getattr(p.users, "versions", {})))
                click_events = [e for e in click_events if not _before_forget(e, forgets, s.topic_clicks)]
                search_events = [e for e in search_events if not _before_forget(e, forgets, s.topic_clicks)]
                impression_events = [e for e in impression_events if not _before_forget(e, forgets, s.topic_clicks)]
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
            impressions = []
            for ev, imp in await decode_batch(p, impression_events, ImpressionEvent, limits, key_field="user_id"):
                impressions.append(imp)
                partition_of.setdefault(imp.user_id, ev.message.partition)
            texts = [q.query for q in searches]
            vectors: Matrix | list[Vector] = await loop.run_in_executor(None, p.embedder.embed_queries, texts) if texts else []
            touched = {c.user_id for _, c in clicks} | {q.user_id for q in searches} | {i.user_id for i in impressions}
            if not touched:
                continue
            states = {uid: p.load_user(uid) for uid in touched}
            fx = apply_events(
                states, clicks, [(q.event_id, q, v) for q, v in zip(searches, vectors, strict=True)], rec.index, rec.learner,
                guard=guard,
            )
            if fx.duplicates:
                p.metrics.guarded.labels("duplicate").inc(fx.duplicates)
            if fx.rate_limited:
                p.metrics.guarded.labels("rate_limited").inc(fx.rate_limited)
            if fx.expired:
                p.metrics.forgotten.labels("ttl").inc(fx.expired)
            fb = apply_feedback(states, impressions, [c for _, c in clicks], rec.user_bandit, searches)
            for outcome, n in fb.outcomes.items():
                if n > 0:
                    p.metrics.feedback.labels(outcome).inc(n)
            shown = [(e, i) for e, i in fb.shown_by if i in rec.fresh]
            clicked = [(e, i) for e, i in fb.clicked_by if i in rec.fresh]
            if fx.pairs or fx.counts or fx.bundle_pairs or shown or clicked:
                delta = StatsDelta(fx.pairs, fx.counts, events=fx.events, pair_events=fx.pair_events,
                                   count_events=fx.count_events, bundle_pairs=fx.bundle_pairs,
                                   bundle_events=fx.bundle_events).with_feedback(shown, clicked)
                # Delivered before the users' states are written: a crash in between resends these
                # increments when the events are processed again, and readers apply each event's once.
                # (Written after the states, a crash in between would lose them: the events would
                # then be recognised as duplicates.)
                try:
                    await (await p.app.producer.send(s.topic_item_stats, None, delta.to_bytes(), None, None, None))
                except Exception as exc:  # noqa: BLE001 - any delivery failure: process the batch again
                    lost_state(exc)
                    continue
                p.metrics.item_stats_sent.inc()
            await refresh_users(p, fx.triggers, states, late=fx.late)  # remembers each published slate in its user's state
            held = getattr(p.users, "versions", {})
            versions = batch_versions(
                ((u, e.message.topic, e.message.offset) for e in batch if (u := _user_key(e)) in states),
                (s.topic_clicks, s.topic_searches, s.topic_impressions),
                {u: v for u in states if (v := held.get(u)) is not None},
            )
            await save_states(
                p.users, p.app.producer, {uid: st.to_bytes() for uid, st in states.items()}, partition_of, lost_state,
                versions,
            )


def _user_key(event: Any) -> str | None:
    """The user id an input message is keyed by (None for a message without a usable key)."""
    key = event.key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return key if isinstance(key, str) else None


def _before_forget(event: Any, forgets: dict[str, tuple[int, int, float]], clicks_topic: str) -> bool:
    """True for an event of a user forgotten in this batch that came before the request:
    by offset in the request's own clicks partition, else by broker timestamp."""
    key = event.key.decode("utf-8", "replace") if isinstance(event.key, bytes) else event.key
    f = forgets.get(key)
    if f is None:
        return False
    m = event.message
    if m.topic == clicks_topic and m.partition == f[0]:
        return bool(m.offset < f[1])
    return bool(m.timestamp <= f[2])
