"""Bundles: pairs of items the same users engaged with, purchases counting most, views never."""

from __future__ import annotations

import numpy as np

from models.bundles import Bundles, bundle_pairs
from models.interest import InterestLearner, UserState
from models.state_updates import apply_events
from streams.internal import AppliedEvents, StatsDelta
from tests.models.clicks import Click, random_index


def _bundles_from(log: list[tuple[str, str, str]], window: int = 10) -> tuple[Bundles, dict[str, UserState]]:
    """Replay (user, item, kind) events through :func:`apply_events`, learning the bundle pairs."""
    idx = random_index(dim=8, n=12, seed=1)
    states: dict[str, UserState] = {}
    together = Bundles()
    for n, (user, item, kind) in enumerate(log):
        fx = apply_events(states, [(f"e{n}", Click(user, item, float(n), kind, "s"))], [], idx, InterestLearner())
        together.learn_many(fx.bundle_pairs)
        assert len(fx.bundle_pairs) == len(fx.bundle_events)
    return together, states


def test_views_make_no_bundle_however_often_they_come_together() -> None:
    log = [(f"u{n}", item, "view") for n in range(20) for item in ("i0", "i1")]
    together, states = _bundles_from(log)
    assert len(together) == 0 and together.of(["i0", "i1"]) == {}
    assert states["u0"].recent == ["i0", "i1"] and states["u0"].engaged == []


def test_a_co_purchase_outweighs_more_frequent_co_clicks() -> None:
    log = [("a", "i0", "purchase"), ("a", "i1", "purchase")]  # one user bought i0 and i1
    log += [(f"c{n}", item, "click") for n in range(3) for item in ("i0", "i2")]  # three clicked i0 and i2
    log += [(f"v{n}", item, "view") for n in range(10) for item in ("i0", "i3")]  # ten viewed i0 and i3
    together, _ = _bundles_from(log)
    assert together.partners("i0", k=5) == [("i1", 4.0), ("i2", 3.0)]
    assert together.of(["i1", "i3"]) == {"i1": ["i0"]}


def test_a_purchase_after_a_click_counts_as_a_co_click() -> None:
    together, _ = _bundles_from([("a", "i0", "click"), ("a", "i1", "purchase"), ("a", "i2", "add_to_cart")])
    assert together.partners("i1", k=5) == [("i0", 1.0), ("i2", 1.0)]


def test_only_the_last_engaged_items_in_the_window_pair() -> None:
    assert [b for a, b, _ in bundle_pairs(["i0", "i1", "i2"], set(), "i3", "click", window=2) if a == "i3"] == ["i2", "i1"]


def test_bundle_pairs_travel_on_the_item_stats_topic_and_apply_once() -> None:
    delta = StatsDelta(events=["u/e1"], bundle_pairs=[("a", "b", 4.0), ("b", "a", 4.0)], bundle_events=[0, 0])
    back = StatsDelta.from_bytes(delta.to_bytes())
    assert back == delta
    applied = AppliedEvents()
    assert applied.first_time(back).bundle_pairs == delta.bundle_pairs
    assert applied.first_time(back).bundle_pairs == []  # the same event resent after a crash
    assert StatsDelta.from_bytes(b'{"pairs": [], "counts": []}').bundle_pairs == []  # an older writer's delta


def test_a_deleted_item_is_no_longer_a_source_of_partners() -> None:
    together = Bundles()
    together.learn_many(bundle_pairs(["a"], {"a"}, "b", "purchase"))
    together.forget("a")
    assert together.of(["a"]) == {}
    assert together.of(["b"], keep=lambda i: i != "a") == {}  # the catalog filter drops it as a partner
    assert np.isclose(together.partners("b")[0][1], 4.0)
