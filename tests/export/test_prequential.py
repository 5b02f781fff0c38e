"""The prequential loop on tiny streams with hand-computed figures, and the product adapter."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from export.datasets import Dataset, Interaction
from export.prequential import ProductRecommender, run_prequential
from models.baselines import (
    CoVisitationBaseline,
    Popularity,
    RecencyPopularity,
    tie_key,
)

STREAM = Dataset(
    "toy",
    [
        Interaction("u1", "a", 1.0),  # warm-up (20% of 5 events)
        Interaction("u2", "a", 2.0),  # pop [a]            -> rank 1
        Interaction("u2", "b", 3.0),  # a excluded, only a known -> miss
        Interaction("u3", "b", 4.0),  # pop [a, b]         -> rank 2 (k=2) / miss (k=1)
        Interaction("u3", "a", 5.0),  # b excluded: [a]    -> rank 1
    ],
)


def test_popularity_figures_by_hand() -> None:
    k1 = run_prequential(STREAM, [Popularity()], k=1)["popularity"]
    assert (k1["hr"], k1["mrr"], k1["ndcg"], k1["n"]) == (0.5, 0.5, 0.5, 4)
    k2 = run_prequential(STREAM, [Popularity()], k=2)["popularity"]
    assert k2["n"] == 4 and k2["hr"] == 0.75 and k2["mrr"] == 0.625
    assert k2["ndcg"] == pytest.approx((2 + 1 / math.log2(3)) / 4, abs=1e-6)


def test_no_warmup_scores_every_event() -> None:
    res = run_prequential(STREAM, [Popularity()], k=1, warmup=0.0)["popularity"]
    assert res["n"] == 5 and res["hr"] == 0.4  # the very first event meets an empty model


def tie_stream(n_items: int = 10) -> tuple[list[str], list[Interaction]]:
    items = [f"i{n}" for n in range(n_items)]
    return items, [Interaction(f"w{n}", i, 100.0) for n, i in enumerate(items)]


@pytest.mark.parametrize("make", [Popularity, CoVisitationBaseline, lambda: RecencyPopularity(3600.0)])
def test_target_never_wins_a_tie(make) -> None:  # type: ignore[no-untyped-def]
    """All items tie (count 1, no co-visits): a hit happens only where the fixed order puts the target."""
    items, warm = tie_stream()
    top3 = set(sorted(items, key=lambda i: tie_key(i, 0))[:3])
    hits = {}
    for target in items:
        ds = Dataset("tie", warm + [Interaction("newcomer", target, 200.0)])
        name = make().name
        hits[target] = run_prequential(ds, [make()], k=3, warmup=0.91)[name]["hr"]
    assert {t for t, h in hits.items() if h == 1.0} == top3
    assert sum(hits.values()) == 3.0  # 1.0 would be 10: the target winning every tie


def test_all_recommenders_see_the_same_stream() -> None:
    res = run_prequential(STREAM, [Popularity(), CoVisitationBaseline(), RecencyPopularity(10.0)], k=2)
    assert {r["n"] for r in res.values()} == {4}
    assert set(res["popularity"]) == {"hr", "mrr", "ndcg", "n", "coverage", "repeats", "seconds", "curve"}
    assert 0.0 < res["popularity"]["coverage"] <= 1.0
    with pytest.raises(ValueError, match="unique"):
        run_prequential(STREAM, [Popularity(), Popularity()])


def test_progress_is_reported() -> None:
    calls: list[tuple[int, int]] = []
    run_prequential(STREAM, [Popularity()], progress=lambda d, n: calls.append((d, n)), progress_every=2)
    assert calls == [(2, 5), (4, 5), (5, 5)]


VECTORS = {
    "a": np.array([1.0, 0.0], np.float32),
    "b": np.array([0.9, 0.1], np.float32),
    "c": np.array([0.0, 1.0], np.float32),
    "d": np.array([0.1, 0.9], np.float32),
}


def test_repeated_items_are_learned_but_not_scored() -> None:
    ds = Dataset("rep", [Interaction("u1", "a", 1.0), Interaction("u2", "a", 2.0), Interaction("u2", "a", 3.0)])
    res = run_prequential(ds, [Popularity()], k=1, warmup=0.0)["popularity"]
    assert (res["n"], res["repeats"]) == (2, 1)
    assert res["hr"] == 0.5  # u1 meets an empty model, u2 gets [a]; u2's second "a" is not scored


def test_product_adapter_follows_interest_and_covisitation() -> None:
    prod = ProductRecommender(VECTORS, seed=0, k=2)
    prod.learn_one(Interaction("u", "a", 0.0))
    assert prod.recommend("u", 2, {"a"}, now=0.0) == []  # nothing is served before the refresh
    prod.end_batch()
    # Interest in "a": b is the nearest unseen item, then d (c is orthogonal).
    assert prod.recommend("u", 2, {"a"}, now=0.0) == ["b", "d"]
    for ev in [Interaction("v", "c", 1.0), Interaction("v", "d", 2.0)]:
        prod.learn_one(ev)
    prod.end_batch()
    assert prod.recommender.covisitation.neighbors("c") == [("d", 1.0)]
    assert prod.recommender.trending.score("d") > 0
    assert "u" in prod.states and prod.states["u"].recent == ["a"]
    assert "c" not in prod.live["v"] and "d" not in prod.live["v"]  # the whole history is excluded


def test_product_adapter_new_user_gets_trending_and_unknown_items_are_added() -> None:
    prod = ProductRecommender(VECTORS)
    prod.learn_one(Interaction("u", "c", 10.0))
    prod.learn_one(Interaction("v", "zz", 10.0))  # not in the catalog: zero vector
    prod.end_batch()
    assert "zz" in prod.recommender.index
    assert prod.recommend("newcomer", 2, set(), now=10.0) == []  # no list is published before a first event
    prod.learn_one(Interaction("newcomer", "a", 11.0))
    prod.end_batch()
    assert {"c", "zz"} <= set(prod.recommend("newcomer", 10, set(), now=11.0))


def test_product_adapter_serves_the_list_of_the_last_refresh() -> None:
    events = [Interaction("u", "a", 1.0), Interaction("u", "b", 2.0)]
    one = ProductRecommender(VECTORS, k=3)
    run_prequential(events, [one], k=3, warmup=0.0, batch=1)
    two = ProductRecommender(VECTORS, k=3)
    res = run_prequential(events, [two], k=3, warmup=0.0, batch=2)
    # With batch=2 both events share one refresh: "b" meets no list at all.
    assert res["product"]["hr"] == 0.0
    assert one.live["u"] == two.live["u"]


def test_product_adapter_without_text_ties_on_a_fixed_order() -> None:
    items, warm = tie_stream()
    probe_ds = Dataset("tie", warm + [Interaction("x", "probe", 100.0)])
    index = ProductRecommender.for_dataset(probe_ds, seed=5).recommender.index
    top3 = set(sorted(items, key=lambda i: index.row(i))[:3])  # type: ignore[arg-type, return-value]
    hits = {}
    for target in items:
        ds = Dataset("tie", probe_ds.interactions + [Interaction("x", target, 101.0)])
        prod = ProductRecommender.for_dataset(ds, seed=5, k=3)  # same items, same shuffled rows
        hits[target] = run_prequential(ds, [prod], k=3, warmup=0.95)["product"]["hr"]
    assert {t for t, h in hits.items() if h == 1.0} == top3


def test_product_adapter_in_the_loop() -> None:
    ds = Dataset(
        "toy",
        [Interaction(u, i, float(t)) for t, (u, i) in enumerate(
            [("u1", "a"), ("u1", "c"), ("u2", "a"), ("u2", "c"), ("u3", "a"), ("u3", "c"), ("u4", "a"), ("u4", "b")]
        )],
    )
    res = run_prequential(ds, [ProductRecommender(VECTORS, k=2), Popularity()], k=2)
    assert res["product"]["n"] == res["popularity"]["n"] == 7
    assert res["product"]["hr"] > 0.0  # u2 and u3 are served "c" after "a" (co-visitation of u1)


def test_for_dataset_embeds_items_as_the_catalog_agent_does(model_dir: Path) -> None:
    """In-process vectors are the worker's: a dataset text is embedded as the catalog agent
    embeds an item with that title, and an item without text is behaviour-only (zero); the
    dataset's categories are the index's."""
    from agents.catalog import embed_items
    from streams.model_loading import load_embedder
    from streams.records import ItemEvent
    from streams.settings import Settings

    settings = Settings(model_dir=model_dir)
    embedder = load_embedder(settings)
    ds = Dataset("shop", [Interaction("u1", "a", 1.0), Interaction("u1", "b", 2.0)], {"a": "wireless earbuds"},
                 {"a": "audio"})
    index = ProductRecommender.for_dataset(ds, embedder).recommender.index
    assert (index.category("a"), index.category("b")) == ("audio", "")  # what the category cap reads
    worker = SimpleNamespace(embedder=embedder, settings=settings, metrics=None)
    served = embed_items(worker, [ItemEvent(item_id="a", title="wireless earbuds"), ItemEvent(item_id="b")])  # type: ignore[arg-type]
    for item, vector in zip(("a", "b"), served, strict=True):
        np.testing.assert_allclose(index.matrix[index.row(item)], vector.vector, atol=1e-6)
    assert np.linalg.norm(served[0].vector) > 0.99 and not served[1].vector.any()


@pytest.mark.parametrize("policy", ["thompson", "ucb", "linucb", "epsilon_greedy", "random"])
def test_every_bandit_policy_closes_the_feedback_loop_in_process(policy: str) -> None:
    from models.slate import SlateSettings

    rng = np.random.default_rng(0)
    vectors = {f"i{n}": (v / np.linalg.norm(v)).astype(np.float32) for n, v in enumerate(rng.normal(size=(40, 8)))}
    events = [Interaction(f"u{n % 10}", f"i{int(rng.integers(40))}", float(n)) for n in range(300)]
    prod = ProductRecommender(vectors, k=5, slate=SlateSettings(k=5, explore_slots=1), bandit_policy=policy)
    res = run_prequential(events, [prod], k=5, batch=10)[prod.name]
    assert res["n"] > 0
    learned = [prod.recommender.user_bandit(u, s).policy.state_dict() for u, s in prod.states.items()]
    assert all(d["policy"] == policy for d in learned)
    assert sum(len(d["arms"]) for d in learned) > 0  # rewards from the simulated clicks reached the policies
