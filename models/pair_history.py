"""Co-visitation and bundle pairs that do not depend on the order a user's events arrive in.

Each interaction pairs its item with the user's last few distinct items *before it in event
time* (:func:`~models.covisitation.covisit_pairs`, :func:`~models.bundles.bundle_pairs`). In
event-time order that is simply the items seen so far. A late event (a retry, a message re-read
after a crash or a rebalance, a slow producer) is different: had it come in order, the events
after it would have paired with it, and some of them with one item fewer from further back.

:class:`PairHistory` (the user state's ``history``) keeps the user's last ``keep`` interactions
(item, event time, kind) and a summary of the ones before them, and
:meth:`PairHistory.increments` gives, for a new event, the pairs of the history *with* it minus
those of the history *without* it, from the event's place onwards. For an event in order that
is its own pairs; for a late one it also takes back the pairs the events after it no longer
make (negative weights) and adds the ones they make with it. Summed over a user's events, the
increments are then those of the events in event-time order, whatever order they arrived in,
as long as a late event is no older than the oldest retained interaction (an older one pairs
only with what came before it, and is not retained).

The summary of the interactions before the retained ones is what their look-backs need: the
distinct items by latest occurrence (all, and engaged only) and the items bought. A state
written before the history existed starts its summary from its ``recent``, ``engaged`` and
``bought`` lists, so it pairs as it did.

>>> h = PairHistory().insert(("a", 1.0, "click"), keep=50).insert(("c", 3.0, "click"), keep=50)
>>> inc = h.increments("b", 2.0, "click", keep=50, window=1, bundle_window=1)  # late: b came before c
>>> sorted(inc.covisit)  # b pairs with a; c pairs with b instead of a
[('a', 'b', 1.0), ('a', 'c', -1.0), ('b', 'a', 1.0), ('b', 'c', 1.0), ('c', 'a', -1.0), ('c', 'b', 1.0)]
>>> inc.bundles == inc.covisit  # clicks: the same pairs count towards bundles
True
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from models.bundles import bundle_pairs, is_engagement
from models.covisitation import Pair, covisit_pairs
from models.types import ItemId, Timestamp

#: One retained interaction: item, event time, kind.
Interaction = tuple[ItemId, Timestamp, str]

#: How many distinct items each summary list keeps (look-backs reaching past the retained
#: interactions need at most a window's worth, plus the items they skip as already seen).
SUMMARY = 30

#: What the pairs need of an interaction's kind, one letter each: a view (never paired into
#: bundles), a purchase (weighs more in bundles), or another engagement.
VIEW, PURCHASE, ENGAGED = "v", "p", "e"
_KIND_OF = {VIEW: "view", PURCHASE: "purchase", ENGAGED: "click"}


def kind_code(kind: str) -> str:
    """The letter :class:`PairHistory` keeps for an interaction of ``kind``.

    >>> kind_code("view"), kind_code("add_to_cart"), kind_code("purchase")
    ('v', 'e', 'p')
    """
    if kind == "purchase":
        return PURCHASE
    return ENGAGED if is_engagement(kind) else VIEW


class PairIncrements(NamedTuple):
    """What one event adds to the co-visitation and bundle counts (weights may be negative)."""

    covisit: list[Pair]
    bundles: list[Pair]


@dataclass(frozen=True)
class PairHistory:
    """A user's latest interactions in event time, and what the look-backs need of older ones.

    The retained interactions are three parallel columns, oldest first by event time (equal
    times in arrival order): ``items``, ``times`` and ``kinds`` (one letter each, see
    :func:`kind_code`).
    """

    items: tuple[ItemId, ...] = ()
    times: tuple[Timestamp, ...] = ()
    kinds: str = ""
    #: Distinct items of the interactions before the retained ones, oldest first by latest occurrence.
    earlier: tuple[ItemId, ...] = ()
    #: The same for engagements (everything but views).
    earlier_engaged: tuple[ItemId, ...] = ()
    #: Items bought in the interactions before the retained ones.
    earlier_bought: frozenset[ItemId] = field(default_factory=frozenset)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def starting_from(cls, recent: Sequence[ItemId], engaged: Sequence[ItemId], bought: Collection[ItemId]) -> PairHistory:
        """An empty history whose earlier interactions are a state's lists (for states
        written before the history existed)."""
        return cls(earlier=tuple(recent[-SUMMARY:]), earlier_engaged=tuple(engaged[-SUMMARY:]),
                   earlier_bought=frozenset(bought))

    def insert(self, entry: Interaction, keep: int) -> PairHistory:
        """The history with ``entry`` at its place in event time; the oldest interactions
        beyond ``keep`` move to the summary. An entry older than all of a full history is
        left out."""
        item_id, ts, kind = entry
        pos = bisect_right(self.times, ts)
        if pos == 0 and len(self.items) >= keep:
            return self
        items = (*self.items[:pos], item_id, *self.items[pos:])
        times = (*self.times[:pos], ts, *self.times[pos:])
        kinds = self.kinds[:pos] + kind_code(kind) + self.kinds[pos:]
        drop = len(items) - keep
        if drop <= 0:
            return replace(self, items=items, times=times, kinds=kinds)
        earlier, engaged, bought = list(self.earlier), list(self.earlier_engaged), set(self.earlier_bought)
        for item, code in zip(items[:drop], kinds[:drop], strict=True):
            _move_to_end(earlier, item)
            if code != VIEW:
                _move_to_end(engaged, item)
            if code == PURCHASE:
                bought.add(item)
        return PairHistory(items[drop:], times[drop:], kinds[drop:], tuple(earlier[-SUMMARY:]),
                           tuple(engaged[-SUMMARY:]), frozenset(bought))

    def increments(
        self,
        item_id: ItemId,
        ts: Timestamp,
        kind: str,
        keep: int = 50,
        window: int = 5,
        decay: float = 0.0,
        bundle_window: int = 10,
    ) -> PairIncrements:
        """The pairs an interaction with ``item_id`` at ``ts`` adds to this history: its own,
        plus, for a late event, the change in the pairs of the retained events after it (see
        the module docstring). ``keep`` is how many interactions are retained; ``window`` and
        ``decay`` are co-visitation's, ``bundle_window`` the bundles'."""
        n = len(self.items)
        pos = bisect_right(self.times, ts)
        code = kind_code(kind)
        if pos == n or (pos == 0 and n >= keep):
            # In order (or older than everything a full history holds): the event's own pairs.
            items, kinds = (*self.items[:pos], item_id), self.kinds[:pos] + code
            return PairIncrements(self._covisit_at(items, kinds, pos, window, decay),
                                  self._bundles_at(items, kinds, pos, bundle_window))
        new_items = (*self.items[:pos], item_id, *self.items[pos:])
        new_kinds = self.kinds[:pos] + code + self.kinds[pos:]
        covisit: defaultdict[tuple[ItemId, ItemId], float] = defaultdict(float)
        bundles: defaultdict[tuple[ItemId, ItemId], float] = defaultdict(float)
        for k in range(pos, n + 1):
            _add(covisit, self._covisit_at(new_items, new_kinds, k, window, decay), 1.0)
            _add(bundles, self._bundles_at(new_items, new_kinds, k, bundle_window), 1.0)
        for k in range(pos, n):
            _add(covisit, self._covisit_at(self.items, self.kinds, k, window, decay), -1.0)
            _add(bundles, self._bundles_at(self.items, self.kinds, k, bundle_window), -1.0)
        return PairIncrements(_pairs(covisit), _pairs(bundles))

    def _covisit_at(self, items: Sequence[ItemId], kinds: str, k: int, window: int, decay: float) -> list[Pair]:
        before = _distinct_before(items, kinds, k, self.earlier, window, engaged_only=False)
        return covisit_pairs(before, items[k], window, decay)

    def _bundles_at(self, items: Sequence[ItemId], kinds: str, k: int, window: int) -> list[Pair]:
        code = kinds[k]
        if code == VIEW:
            return []
        before = _distinct_before(items, kinds, k, self.earlier_engaged, window, engaged_only=True)
        bought: Collection[ItemId] = ()
        if code == PURCHASE:
            bought = self.earlier_bought | {items[j] for j in range(k) if kinds[j] == PURCHASE}
        return bundle_pairs(before, bought, items[k], _KIND_OF[code], window)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the times are kept apart, see :meth:`from_json`)."""
        return {"i": list(self.items), "k": self.kinds, "er": list(self.earlier), "ee": list(self.earlier_engaged),
                "eb": sorted(self.earlier_bought)}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None, times: Sequence[float]) -> PairHistory:
        """Inverse of :meth:`to_json`, with the interactions' ``times``."""
        if not d:
            return cls()
        items, kinds = tuple(d.get("i", ())), str(d.get("k", ""))
        if not len(items) == len(kinds) == len(times):
            raise ValueError(f"a pair history of {len(items)} items, {len(kinds)} kinds and {len(times)} times")
        return cls(items, tuple(times), kinds, tuple(d.get("er", ())), tuple(d.get("ee", ())),
                   frozenset(d.get("eb", ())))


def _move_to_end(items: list[ItemId], item: ItemId) -> None:
    if item in items:
        items.remove(item)
    items.append(item)


def _distinct_before(
    items: Sequence[ItemId], kinds: str, k: int, earlier: Sequence[ItemId], n: int, engaged_only: bool
) -> list[ItemId]:
    """The last ``n`` distinct items other than ``items[k]`` before position ``k`` (walking back
    through ``items``, then ``earlier``), oldest first."""
    picked: list[ItemId] = []
    seen = {items[k]}
    for j in range(k - 1, -1, -1):
        if len(picked) == n:
            break
        other = items[j]
        if other not in seen and (not engaged_only or kinds[j] != VIEW):
            seen.add(other)
            picked.append(other)
    for other in reversed(earlier):
        if len(picked) == n:
            break
        if other not in seen:
            seen.add(other)
            picked.append(other)
    return picked[::-1]


def _add(total: defaultdict[tuple[ItemId, ItemId], float], pairs: Iterable[Pair], sign: float) -> None:
    for a, b, w in pairs:
        total[(a, b)] += sign * w


def _pairs(total: defaultdict[tuple[ItemId, ItemId], float]) -> list[Pair]:
    """The non-zero net weights, in a fixed order (by pair)."""
    return [(a, b, w) for (a, b), w in sorted(total.items()) if abs(w) > 1e-12]
