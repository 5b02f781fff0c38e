""""Frequently bought together": item pairs the same user engaged with, purchases counting most.

A bundle is not a co-visitation neighbour: browsing two items one after the other
says little about buying them together. Only *engagements* pair items: a click, an
add-to-cart or a purchase (never a view). Each engagement pairs its item with the
user's last ``window`` engaged items before it in event time; the pair counts
``click_weight`` (1), or ``purchase_weight`` (4) when both items were bought. An
item's bundle is its strongest partners by those counts; an item that was never
engaged with next to another has no bundle (nothing is made up from views).

>>> b = Bundles()
>>> b.learn_many(bundle_pairs([], set(), "phone", "purchase"))   # nothing engaged before
>>> b.learn_many(bundle_pairs(["phone"], {"phone"}, "case", "purchase"))
>>> b.learn_many(bundle_pairs(["phone"], {"phone"}, "charger", "click"))
>>> b.of(["phone", "sofa"], k=2)
{'phone': ['case', 'charger']}
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

from models.covisitation import CoVisitation, Pair, covisit_pairs
from models.types import ItemId

#: Kinds that are not engagements: they never pair items into a bundle.
NOT_ENGAGED = frozenset({"view"})


def is_engagement(kind: str) -> bool:
    """Whether an interaction of ``kind`` counts towards bundles (everything but a view)."""
    return kind not in NOT_ENGAGED


def bundle_pairs(
    engaged_before: Sequence[ItemId],
    bought_before: Collection[ItemId],
    item_id: ItemId,
    kind: str,
    window: int = 10,
    click_weight: float = 1.0,
    purchase_weight: float = 4.0,
) -> list[Pair]:
    """Pairs (both directions) between an engagement with ``item_id`` and the user's last
    ``window`` engaged items before it (``engaged_before``, oldest first).

    A pair counts ``purchase_weight`` when this is a purchase and the other item is in
    ``bought_before``, else ``click_weight``; a view pairs nothing.

    >>> bundle_pairs(["a", "b"], {"a"}, "c", "purchase")
    [('b', 'c', 1.0), ('c', 'b', 1.0), ('a', 'c', 4.0), ('c', 'a', 4.0)]
    >>> bundle_pairs(["a", "b"], {"a"}, "c", "view")
    []
    """
    if not is_engagement(kind):
        return []
    pairs = covisit_pairs(engaged_before, item_id, window)  # the same window, every pair weighing 1

    def weight(a: ItemId, b: ItemId) -> float:
        other = a if b == item_id else b
        return purchase_weight if kind == "purchase" and other in bought_before else click_weight

    return [(a, b, weight(a, b)) for a, b, _ in pairs]


class Bundles:
    """Pruned, symmetric engagement counts between items, and each item's strongest partners.

    Parameters
    ----------
    max_partners
        Partners kept per item: when an item has twice as many, only the strongest
        ``max_partners`` stay (memory stays bounded).
    """

    def __init__(self, max_partners: int = 50) -> None:
        self.max_partners = max_partners
        self._graph = CoVisitation(max_neighbors=max_partners)

    def __len__(self) -> int:
        """Items with at least one partner."""
        return len(self._graph)

    def learn_many(self, pairs: Iterable[Pair]) -> None:
        """Add a batch of ``(a, b, weight)`` pairs, as :func:`bundle_pairs` makes them."""
        self._graph.learn_many(pairs)

    def forget(self, item_id: ItemId) -> None:
        """Drop an item (deleted from the catalog) as a source of partners."""
        self._graph.forget(item_id)

    def partners(self, item_id: ItemId, k: int = 3) -> list[tuple[ItemId, float]]:
        """The ``k`` strongest partners of an item with their counts, strongest first (ties by id)."""
        return self._graph.neighbors(item_id, k)

    def of(
        self, item_ids: Sequence[ItemId], k: int = 3, keep: Callable[[ItemId], bool] | None = None
    ) -> dict[ItemId, list[ItemId]]:
        """Each item's bundle (its ``k`` strongest partners for which ``keep`` holds, e.g.
        those still in the catalog), for the items that have one."""
        out: dict[ItemId, list[ItemId]] = {}
        if k <= 0:
            return out
        for item_id in dict.fromkeys(item_ids):
            partners = [i for i, _ in self._graph.neighbors(item_id, self.max_partners) if keep is None or keep(i)]
            if partners:
                out[item_id] = partners[:k]
        return out
