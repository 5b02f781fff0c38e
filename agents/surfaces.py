"""Lists for the serving surfaces besides ``home``: ``rec:{surface}:{user_id}`` in Redis.

The refresh publishes ``home`` (``rec:{user_id}`` and the ``recommendations`` topic);
:func:`publish_surfaces` then gives each other configured surface
(``STREAMREC_SURFACES``) its own list for the same users: one candidate generation for
the micro-batch, then per surface the candidates of its sources that pass its filter,
ranked and cut to its K by the recommender (one scoring call per surface). Surface lists
go to Redis and to their own topic (``recommendations.surfaces``, key
``{surface}:{user_id}``, see :func:`surface_key`), so that ``streamrec redis-rebuild``
restores them; the ``recommendations`` topic stays the home lists' log, one message per refresh.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from models.candidates import SOURCES, Candidates
from models.filters import ItemFilter
from models.interest import UserState
from models.recommender import RankingBatch, Recommender
from models.types import Timestamp, UserId
from streams.settings import Settings, SurfaceSettings

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def surface_key(surface: str, user_id: str) -> bytes:
    """The key of a surface list on the surface-recommendations topic.

    Surface names have no ``:`` (letters, digits, ``-``, ``_``), so the first ``:`` splits it.

    >>> surface_key("search", "u:1"), split_surface_key(b"search:u:1")
    (b'search:u:1', ('search', 'u:1'))
    """
    return f"{surface}:{user_id}".encode()


def split_surface_key(key: bytes) -> tuple[str, str]:
    """``(surface, user_id)`` of a :func:`surface_key`."""
    surface, _, user_id = key.decode("utf-8", "replace").partition(":")
    return surface, user_id


def select_candidates(batch: RankingBatch, keep: np.ndarray) -> RankingBatch:
    """The batch with only the candidate pairs where ``keep`` is True (every per-pair array is cut)."""
    c = batch.candidates
    n = len(c)
    cut = {f.name: getattr(c, f.name)[keep] for f in dataclasses.fields(c)
           if isinstance(getattr(c, f.name), np.ndarray) and getattr(c, f.name).shape[:1] == (n,)}
    return dataclasses.replace(batch, candidates=dataclasses.replace(c, **cut))


def surface_mask(rec: Recommender, c: Candidates, surface: SurfaceSettings) -> np.ndarray:
    """Pairs of ``c`` a surface draws from: its sources, through its filter (vectorised)."""
    allowed = np.isin(c.source, [SOURCES.index(s) for s in surface.sources])
    flt = ItemFilter.from_json(surface.filter)
    if not flt.empty:
        keep, _ = flt.verdict(rec.index, c.row)
        allowed &= keep
    return allowed


def other_surfaces(settings: Settings) -> dict[str, SurfaceSettings]:
    """The configured surfaces besides ``home``."""
    return {name: s for name, s in settings.surfaces.items() if name != "home"}


def surface_lists(
    rec: Recommender, users: Sequence[tuple[UserId, UserState, Timestamp]], settings: Settings
) -> dict[str, list[Any]]:
    """Per other surface, one list per user of ``users`` (in order)."""
    surfaces = other_surfaces(settings)
    if not surfaces or not users:
        return {}
    batch = rec.candidates(users)
    out: dict[str, list[Any]] = {}
    for name, surface in surfaces.items():
        if batch is None:
            out[name] = [[] for _ in users]
            continue
        sub = select_candidates(batch, surface_mask(rec, batch.candidates, surface))
        k = surface.top_k or settings.top_k
        out[name] = rec.rank(sub, k=k) if len(sub.candidates) else [[] for _ in users]
    return out


async def publish_surfaces(
    p: Pipeline, triggers: Mapping[UserId, tuple[Timestamp, str | None]], states: Mapping[UserId, UserState]
) -> None:
    """Compute and queue ``rec:{surface}:{user_id}`` for every other surface and each triggered user."""
    if not triggers or not other_surfaces(p.settings):
        return
    from agents.refresh import recommendation_payload  # refresh calls this module

    users = [(uid, states[uid], ts) for uid, (ts, _) in triggers.items()]
    lists = surface_lists(p.recommender, users, p.settings)
    version = p.recommender.model_version
    batch_id = uuid.uuid4().hex[:22]
    producer, topic = p.app.producer, p.settings.topic_surface_recommendations
    for s_n, (name, per_user) in enumerate(lists.items()):
        for n, ((uid, _, _), items) in enumerate(zip(users, per_user, strict=True)):
            payload = recommendation_payload(uid, triggers[uid], items, version, surface=name,
                                             request_id=f"{batch_id}{s_n:02x}{n:08x}")
            delivery = cast("asyncio.Future[Any]",
                            await producer.send(topic, surface_key(name, uid), payload, None, None, None))
            delivery.add_done_callback(p.on_delivery)
            p.redis.put(p.settings.rec_key(uid, name), payload, None)
