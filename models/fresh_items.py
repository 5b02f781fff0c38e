"""New items get exploration impressions until their click rate is informed.

:class:`FreshItems` keeps, for every item that arrived in the catalog, a Beta
posterior of its click rate from impressions and clicks (``learn_shown`` /
``learn_one``). An item is *fresh* until it has had ``informed_after``
impressions; fresh items are offered to the slate's fresh slot fewest-impressions
first, then oldest first, so a new item waits behind at most the fresh items that
have fewer impressions or arrived before it with as many: with one fresh slot per
refresh it is shown within (number of fresh items ahead of it + 1) refreshes.
The choice is deterministic given the state, so its propensity is 1. With
``max_age_s``, an item also stops being fresh that long after it arrived (a catalog
loaded all at once does not crowd out the items that come later). Freshness is judged
in event time: a replay of an old log sees no item of today's catalog as fresh.

>>> f = FreshItems(informed_after=2)
>>> f.add("a", ts=1.0); f.add("b", ts=2.0)
>>> f.pick(1)
[('a', 1.0)]
>>> f.learn_shown("a"); f.pick(1)
[('b', 1.0)]
>>> f.learn_shown("b"); f.learn_shown("a"); f.learn_one("a", 1); f.fresh()
['b']
>>> round(f.mean("a"), 3)
0.5
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class FreshItems:
    """Per-item impressions and clicks; the items not yet informed, in serving order.

    Parameters
    ----------
    informed_after
        Impressions after which an item's posterior counts as informed and it leaves
        the fresh pool.
    prior_alpha, prior_beta
        Beta prior of every item's click rate.
    max_age_s
        Seconds after its arrival an item stops being fresh however few impressions it had
        (None: never), judged at the ``now`` given to :meth:`fresh` and :meth:`pick`.
    """

    def __init__(self, informed_after: int = 20, prior_alpha: float = 1.0, prior_beta: float = 1.0,
                 max_age_s: float | None = None) -> None:
        if informed_after < 1:
            raise ValueError(f"informed_after must be at least 1 (got {informed_after})")
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive (got {max_age_s})")
        self.informed_after = int(informed_after)
        self.max_age_s = max_age_s
        self.prior_alpha = float(prior_alpha)
        self.prior_beta = float(prior_beta)
        self._items: dict[str, list[float]] = {}  # item -> [arrival ts, impressions, clicks]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def add(self, item_id: str, ts: float) -> None:
        """A catalog item arrived (a re-sent upsert keeps what was learned)."""
        self._items.setdefault(item_id, [float(ts), 0.0, 0.0])

    def remove(self, item_id: str) -> None:
        """The item left the catalog."""
        self._items.pop(item_id, None)

    def learn_shown(self, item_id: str, n: int = 1) -> None:
        """The item was shown ``n`` times (from impressions)."""
        if item_id in self._items:
            self._items[item_id][1] += n

    def learn_one(self, item_id: str, reward: int, n: int = 1) -> None:
        """A resolved reward for ``n`` impressions of the item (1 clicked, 0 not)."""
        if item_id in self._items and reward:
            self._items[item_id][2] += n

    def impressions(self, item_id: str) -> int:
        """Impressions the item has had."""
        return int(self._items[item_id][1]) if item_id in self._items else 0

    def mean(self, item_id: str) -> float:
        """Posterior mean click rate."""
        _, shown, clicks = self._items.get(item_id, [0.0, 0.0, 0.0])
        return (self.prior_alpha + clicks) / (self.prior_alpha + self.prior_beta + shown)

    def fresh(self, now: float | None = None) -> list[str]:
        """Items not yet informed, in the order they are served. With ``now`` (event time),
        only items that had arrived by then, and not more than ``max_age_s`` before."""
        oldest = now - self.max_age_s if now is not None and self.max_age_s is not None else float("-inf")
        newest = now if now is not None else float("inf")
        pool = [(v[1], v[0], k) for k, v in self._items.items()
                if v[1] < self.informed_after and oldest <= v[0] <= newest]
        return [k for _, _, k in sorted(pool)]

    def pick(self, n: int, exclude: Iterable[str] = (), now: float | None = None) -> list[tuple[str, float]]:
        """The next ``n`` fresh items not in ``exclude``, each with its propensity (1: deterministic)."""
        skip = set(exclude)
        return [(item, 1.0) for item in self.fresh(now) if item not in skip][:n]

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"informed_after": self.informed_after, "prior": [self.prior_alpha, self.prior_beta],
                "max_age_s": self.max_age_s, "items": {k: list(v) for k, v in self._items.items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FreshItems:
        """Rebuild from :meth:`state_dict` output."""
        prior_alpha, prior_beta = state["prior"]
        f = cls(int(state["informed_after"]), float(prior_alpha), float(prior_beta), max_age_s=state.get("max_age_s"))
        f._items = {k: [float(x) for x in v] for k, v in state["items"].items()}
        return f
