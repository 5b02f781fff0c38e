"""Simulated shoppers with known tastes, and the click and search events they make.

Each :class:`Shopper` prefers some categories; :class:`ShopperSimulator` turns a set of
shoppers into a deterministic stream of ``("clicks", ClickEvent-dict)`` and
``("searches", SearchEvent-dict)`` pairs with a realistic funnel (view > click >
add_to_cart > purchase), sessions, Zipf-like popularity within each category and a
slowly rotating "hot" item per category for trending. :func:`bad_events` makes raw
payloads that the decoder must reject, for dead-letter demos and tests.

>>> from streams.demo.catalog import demo_catalog
>>> catalog = demo_catalog(images=False)
>>> shoppers = make_shoppers(20, catalog, seed=1)
>>> sim = ShopperSimulator(catalog, shoppers, seed=1, start_ts=1.7e9)
>>> kinds = [kind for kind, _ in sim.events(50)]
>>> set(kinds) <= {"clicks", "searches"}, len(kinds)
(True, 50)
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.demo.catalog import CATEGORY_QUERIES, items_by_category

#: Probability that a view leads to a click, a click to add_to_cart, a cart to a purchase.
FUNNEL: tuple[float, float, float] = (0.35, 0.25, 0.4)


@dataclass(frozen=True)
class Shopper:
    """A simulated shopper: category preference weights (summing to 1) and search phrases.

    >>> Shopper("shopper-0001", {"audio": 1.0}, ("wireless earbuds",)).top_category
    'audio'
    >>> Shopper("u", {"audio": 0.5, "toys": 0.2})
    Traceback (most recent call last):
    ...
    ValueError: tastes of u must be positive and sum to 1 (got 0.7)
    """

    user_id: str
    tastes: dict[str, float] = field(hash=False)
    queries: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        total = sum(self.tastes.values())
        if not self.tastes or any(w <= 0 for w in self.tastes.values()) or abs(total - 1.0) > 1e-6:
            raise ValueError(f"tastes of {self.user_id} must be positive and sum to 1 (got {total:g})")

    @property
    def top_category(self) -> str:
        """The category this shopper likes most."""
        return max(self.tastes, key=lambda c: self.tastes[c])


def category_queries(catalog: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Search phrases per category of ``catalog``: the demo's own, else the items' tags.

    >>> category_queries([{"item_id": "x1", "category": "pets", "tags": ["dog bed", "pets"]}])
    {'pets': ('dog bed', 'pets')}
    """
    items = list(catalog)
    groups = items_by_category(items)
    tags: dict[str, dict[str, int]] = {}
    for item in items:
        if not item.get("deleted"):
            counts = tags.setdefault(str(item.get("category") or ""), {})
            for tag in item.get("tags") or ():
                counts[tag] = counts.get(tag, 0) + 1
    result: dict[str, tuple[str, ...]] = {}
    for category in groups:
        if category in CATEGORY_QUERIES:
            result[category] = CATEGORY_QUERIES[category]
        else:
            counts = tags.get(category, {})
            ranked = sorted(counts, key=lambda t: -counts[t])[:8]
            result[category] = tuple(ranked) or ((category,) if category else ("gift ideas",))
    return result


def make_shoppers(
    n: int,
    catalog: Iterable[Mapping[str, Any]],
    seed: int,
    *,
    mix_fraction: float = 0.25,
) -> list[Shopper]:
    """``n`` shoppers ``shopper-0001``...: mostly single-category enthusiasts, some 0.7/0.3 mixes.

    Enthusiasts' categories rotate through the catalog's categories so every category
    has fans; shopper ``i`` does not depend on ``n``.

    >>> from streams.demo.catalog import demo_catalog
    >>> people = make_shoppers(8, demo_catalog(images=False), seed=3)
    >>> len({p.top_category for p in people}), people[0].user_id
    (8, 'shopper-0001')
    >>> make_shoppers(8, demo_catalog(images=False), seed=3)[:4] == make_shoppers(4, demo_catalog(images=False), seed=3)
    True
    """
    queries = category_queries(catalog)
    categories = [c for c in queries if c]
    if not categories:
        raise ValueError("the catalog has no categorised items")
    offset = random.Random(f"streamrec-demo-shoppers:{seed}").randrange(len(categories))
    shoppers: list[Shopper] = []
    for i in range(n):
        rng = random.Random(f"streamrec-demo-shopper:{seed}:{i}")
        primary = categories[(i + offset) % len(categories)]
        mine = list(rng.sample(queries[primary], min(len(queries[primary]), rng.randint(3, 4))))
        tastes = {primary: 1.0}
        if len(categories) > 1 and rng.random() < mix_fraction:
            secondary = rng.choice([c for c in categories if c != primary])
            tastes = {primary: 0.7, secondary: 0.3}
            mine += rng.sample(queries[secondary], min(len(queries[secondary]), rng.randint(1, 2)))
        shoppers.append(Shopper(user_id=f"shopper-{i + 1:04d}", tastes=tastes, queries=tuple(mine)))
    return shoppers


@dataclass
class _State:
    """What the simulator remembers about one shopper."""

    session: int = 0
    last_ts: float | None = None
    ended: bool = True  # the next event starts a new session
    available_at: float = -math.inf  # after leaving, not picked again before this (if avoidable)
    session_category: str = ""
    focus: str = ""  # category of the last search, for the next view
    pending: tuple[str, str] | None = None  # (item_id, next funnel kind)


class ShopperSimulator:
    """A deterministic stream of clicks and searches from ``shoppers`` over ``catalog``.

    Each step picks a shopper (often the previous one again, so sessions come in
    bursts), who either continues a funnel on the item they last touched, searches
    (``search_prob``), or views an item: a category drawn from their tastes (sticky
    within a session), then an item by Zipf-like popularity plus a per-category hot
    item that changes every ``trend_every`` events. Simulated time starts at
    ``start_ts`` and advances by exponential gaps of mean ``mean_gap_s``. A session ends
    after ``session_gap_s`` of inactivity or when the shopper leaves (randomly, or
    after a purchase); a shopper who left sits out ``session_gap_s`` when anyone else
    can act. Calling :meth:`events` again continues the same stream.

    >>> from streams.demo.catalog import demo_catalog
    >>> catalog = demo_catalog(images=False)
    >>> sim = ShopperSimulator(catalog, make_shoppers(5, catalog, 2), seed=2, start_ts=1.7e9)
    >>> kind, event = next(sim.events(1))
    >>> sorted(event) if kind == "clicks" else "search"
    ['event_id', 'item_id', 'kind', 'session_id', 'ts', 'user_id']
    """

    def __init__(
        self,
        catalog: Sequence[Mapping[str, Any]],
        shoppers: Sequence[Shopper],
        seed: int,
        start_ts: float,
        mean_gap_s: float = 2.0,
        search_prob: float = 0.15,
        *,
        session_gap_s: float = 1800.0,
        stay_prob: float = 0.65,
        leave_prob: float = 0.06,
        zipf_s: float = 1.1,
        trend_every: int = 500,
        trend_boost: float = 0.2,
    ) -> None:
        if not shoppers:
            raise ValueError("no shoppers")
        if mean_gap_s <= 0:
            raise ValueError("mean_gap_s must be positive")
        self.shoppers: tuple[Shopper, ...] = tuple(shoppers)
        self.seed = seed
        self.start_ts = float(start_ts)
        self.mean_gap_s = float(mean_gap_s)
        self.search_prob = search_prob
        self.session_gap_s = session_gap_s
        self.stay_prob = stay_prob
        self.leave_prob = leave_prob
        self.trend_every = max(1, trend_every)
        self.trend_boost = trend_boost
        self._rng = random.Random(f"streamrec-demo-sim:{seed}")
        groups = items_by_category(catalog)
        for shopper in self.shoppers:
            missing = [c for c in shopper.tastes if c not in groups]
            if missing:
                raise ValueError(f"{shopper.user_id} likes {missing}, which the catalog does not have")
        # Popularity: a seeded shuffle of each category, then weight 1/rank^s.
        self._items: dict[str, list[str]] = {}
        self._cum: dict[str, list[float]] = {}
        for category, ids in groups.items():
            ranked = list(ids)
            self._rng.shuffle(ranked)
            weights = [1.0 / (rank + 1) ** zipf_s for rank in range(len(ranked))]
            self._items[category] = ranked
            self._cum[category] = list(itertools.accumulate(weights))
        self._hot: dict[str, str] = {}
        self._trend_epoch = -1
        self._query_category: dict[str, str] = {}
        for category, phrases in category_queries(catalog).items():
            for phrase in phrases:
                self._query_category.setdefault(phrase, category)
        self._states: dict[str, _State] = {s.user_id: _State() for s in self.shoppers}
        self._clock = self.start_ts
        self._last_ts = -math.inf
        self._count = 0
        self._current: Shopper | None = None
        self._run = f"{seed}-{int(self.start_ts)}"

    @property
    def clock(self) -> float:
        """Simulated time of the last event (``start_ts`` before the first)."""
        return self._clock

    def events(self, n: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """The next ``n`` events, ``ts`` on the simulated clock (strictly increasing)."""
        for _ in range(n):
            gap = max(self._rng.expovariate(1.0 / self.mean_gap_s), 0.001)
            self._clock = round(self._clock + gap, 3)
            yield self._step(self._clock)

    def events_live(self, n: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """The next ``n`` events with ``ts`` = ``time.time()`` at yield time (no sleeping)."""
        for _ in range(n):
            yield self._step(max(time.time(), self._last_ts + 1e-6))

    # --- one step ---------------------------------------------------------------------

    def _step(self, ts: float) -> tuple[str, dict[str, Any]]:
        rng = self._rng
        self._count += 1
        epoch = (self._count - 1) // self.trend_every
        if epoch != self._trend_epoch:
            self._trend_epoch = epoch
            self._hot = {c: rng.choice(ids) for c, ids in self._items.items()}
        shopper = self._pick(ts)
        state = self._states[shopper.user_id]
        if state.ended or state.last_ts is None or ts - state.last_ts > self.session_gap_s:
            state.session += 1
            state.ended = False
            state.pending = None
            state.focus = ""
            state.session_category = self._taste(shopper)
        state.last_ts = ts
        self._last_ts = ts
        session_id = f"{shopper.user_id}-{self._run}-{state.session:04d}"
        event_id = f"ev-{self._run}-{self._count:08d}"
        topic: str
        event: dict[str, Any]
        if state.pending is not None:
            item_id, kind = state.pending
            state.pending = None
            nxt = {"click": ("add_to_cart", FUNNEL[1]), "add_to_cart": ("purchase", FUNNEL[2])}.get(kind)
            if nxt is not None and rng.random() < nxt[1]:
                state.pending = (item_id, nxt[0])
            topic = "clicks"
            event = self._click(event_id, shopper, item_id, kind, ts, session_id)
            if kind == "purchase" and rng.random() < 0.5:
                self._leave(state, ts)
        elif shopper.queries and rng.random() < self.search_prob:
            query = rng.choice(shopper.queries)
            category = self._query_category.get(query, "")
            state.focus = category if category in shopper.tastes else ""
            topic = "searches"
            event = {
                "event_id": event_id,
                "user_id": shopper.user_id,
                "query": query,
                "ts": ts,
                "session_id": session_id,
            }
        else:
            if state.focus:
                category, state.focus = state.focus, ""
            elif rng.random() < 0.8:
                category = state.session_category
            else:
                category = self._taste(shopper)
            item_id = self._item(category)
            if rng.random() < FUNNEL[0]:
                state.pending = (item_id, "click")
            topic = "clicks"
            event = self._click(event_id, shopper, item_id, "view", ts, session_id)
        if not state.ended and state.pending is None and rng.random() < self.leave_prob:
            self._leave(state, ts)
        return topic, event

    def _pick(self, ts: float) -> Shopper:
        """The previous shopper again (``stay_prob``), else a random available one."""
        rng = self._rng
        current = self._current
        if current is not None and not self._states[current.user_id].ended and rng.random() < self.stay_prob:
            return current
        choice = rng.choice(self.shoppers)
        for _ in range(8):
            if self._states[choice.user_id].available_at <= ts:
                break
            choice = rng.choice(self.shoppers)
        self._current = choice
        return choice

    def _leave(self, state: _State, ts: float) -> None:
        state.ended = True
        state.pending = None
        state.available_at = ts + self.session_gap_s

    def _taste(self, shopper: Shopper) -> str:
        categories = list(shopper.tastes)
        return self._rng.choices(categories, weights=[shopper.tastes[c] for c in categories])[0]

    def _item(self, category: str) -> str:
        rng = self._rng
        if rng.random() < self.trend_boost:
            return self._hot[category]
        cum = self._cum[category]
        index = bisect.bisect_right(cum, rng.random() * cum[-1])
        return self._items[category][min(index, len(cum) - 1)]

    @staticmethod
    def _click(event_id: str, shopper: Shopper, item_id: str, kind: str, ts: float, session_id: str) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "user_id": shopper.user_id,
            "item_id": item_id,
            "kind": kind,
            "ts": ts,
            "session_id": session_id,
        }


# --- payloads that must fail validation -------------------------------------------------


def _click_dict(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "event_id": f"bad-{i:06d}",
        "user_id": f"shopper-{rng.randint(1, 999):04d}",
        "item_id": f"audio-{rng.randint(1, 25):03d}",
        "kind": "view",
        "ts": 1.7e9 + rng.randint(0, 10**7),
    }


def _search_dict(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "event_id": f"bad-{i:06d}",
        "user_id": f"shopper-{rng.randint(1, 999):04d}",
        "query": rng.choice(("wireless earbuds", "running shoes", "tent")),
        "ts": 1.7e9 + rng.randint(0, 10**7),
    }


def _dump(data: Any) -> bytes:
    return json.dumps(data).encode()


def _with(
    base: Callable[[random.Random, int], dict[str, Any]], **changes: Any
) -> Callable[[random.Random, int], bytes]:
    def make(rng: random.Random, i: int) -> bytes:
        data = base(rng, i)
        for key, value in changes.items():
            if value is _DROP:
                data.pop(key, None)
            else:
                data[key] = value(rng, data) if callable(value) else value
        return _dump(data)

    return make


_DROP = object()


def _raw_ts(data: dict[str, Any], literal: bytes) -> bytes:
    """``data`` as JSON with ``ts`` replaced by a raw (invalid) number literal."""
    data["ts"] = "__TS__"
    return _dump(data).replace(b'"__TS__"', literal)


def _truncated(rng: random.Random, i: int) -> bytes:
    raw = _dump(_click_dict(rng, i))
    return raw[: rng.randint(1, len(raw) - 2)]


def _invalid_utf8(rng: random.Random, i: int) -> bytes:
    data = _search_dict(rng, i)
    data["query"] = "CAFE_QUERY"
    return _dump(data).replace(b"CAFE_QUERY", rng.choice((b"caf\xe9", b"\xff\xfeshoes", b"tent\xc3")))


#: Makers of invalid payloads: (what is wrong, maker); each fails as a ClickEvent and as a SearchEvent.
_BAD_MAKERS: tuple[tuple[str, Callable[[random.Random, int], bytes]], ...] = (
    ("truncated JSON", _truncated),
    ("not JSON", lambda rng, i: rng.choice((b"user=shopper-0001&item=audio-001", b"hello", b"<xml/>", b""))),
    ("JSON array", lambda rng, i: _dump([_click_dict(rng, i)])),
    ("NaN ts", lambda rng, i: _raw_ts(_click_dict(rng, i), b"NaN")),
    ("ts as a string", _with(_click_dict, ts=lambda rng, d: str(d["ts"]))),
    ("user_id as a number", _with(_click_dict, user_id=lambda rng, d: rng.randint(1, 999))),
    ("null item_id", _with(_click_dict, item_id=None)),
    ("ts as a boolean", _with(_search_dict, ts=True)),
    ("missing item_id", _with(_click_dict, item_id=_DROP)),
    ("missing query", _with(_search_dict, query=_DROP)),
    ("missing ts", _with(_click_dict, ts=_DROP)),
    ("unknown kind", _with(_click_dict, kind=lambda rng, d: rng.choice(("like", "wishlist", "share", "VIEW")))),
    ("ts in milliseconds", _with(_click_dict, ts=lambda rng, d: d["ts"] * 1000.0)),
    ("ts in milliseconds", _with(_search_dict, ts=lambda rng, d: int(d["ts"] * 1000))),
    ("oversized query", _with(_search_dict, query=lambda rng, d: "wireless earbuds " * rng.randint(31, 60))),
    ("invalid UTF-8", _invalid_utf8),
    ("blank query", _with(_search_dict, query="   ")),
    ("empty user_id", _with(_click_dict, user_id="")),
    ("unknown field", _with(_click_dict, price=19.99)),
    ("negative position", _with(_click_dict, position=-1)),
    ("infinite ts", lambda rng, i: _raw_ts(_search_dict(rng, i), rng.choice((b"1e400", b"-1e999", b"Infinity")))),
)


def bad_events(n: int, seed: int = 0) -> Iterator[bytes]:
    """``n`` raw payloads that :func:`streams.validation.decode_event` must reject.

    They cycle through malformed JSON, wrong types, missing fields, an unknown click
    kind, millisecond timestamps, an oversized query, invalid UTF-8 and more, and fail
    whether decoded as a ``ClickEvent`` or a ``SearchEvent``.

    >>> payloads = list(bad_events(3, seed=1))
    >>> len(payloads), all(isinstance(p, bytes) for p in payloads)
    (3, True)
    """
    rng = random.Random(f"streamrec-demo-bad:{seed}")
    for i in range(n):
        _, make = _BAD_MAKERS[i % len(_BAD_MAKERS)]
        yield make(rng, i)
