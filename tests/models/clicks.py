"""Click events and a random item index for the tests that fold events into user states."""

from __future__ import annotations

import numpy as np

from models.item_index import ItemIndex


class Click:
    """Shaped like ``streams.records.ClickEvent`` for :func:`models.state_updates.apply_events`."""

    def __init__(self, user: str, item: str, ts: float, kind: str = "click", session: str | None = None) -> None:
        self.user_id, self.item_id, self.kind, self.ts, self.session_id = user, item, kind, ts, session


def random_index(dim: int, n: int, seed: int) -> ItemIndex:
    """Items ``i0`` .. ``i{n-1}`` with random vectors."""
    idx = ItemIndex(dim=dim)
    rng = np.random.default_rng(seed)
    for i in range(n):
        idx.upsert(f"i{i}", rng.normal(size=dim).astype(np.float32))
    return idx
