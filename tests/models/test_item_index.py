from __future__ import annotations

import numpy as np
import pytest

from models.item_index import ItemIndex


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_nearest_matches_brute_force_and_grows() -> None:
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 3000, 16)  # more than the initial capacity
    idx = ItemIndex(dim=16, capacity=8)
    for i, v in enumerate(vecs):
        idx.upsert(f"i{i}", v)
    q = _unit(rng, 5, 16)
    rows, scores = idx.nearest(q, k=7)
    expected = np.argsort(-(q @ vecs.T), axis=1)[:, :7]
    assert [[idx.item_id(r) for r in rr] for rr in rows] == [[f"i{r}" for r in rr] for rr in expected]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_delete_hides_item_and_reuses_row() -> None:
    idx = ItemIndex(dim=2)
    idx.upsert("a", np.array([1, 0], np.float32), category="x")
    idx.upsert("b", np.array([0.9, 0.1], np.float32))
    idx.delete("a")
    rows, _ = idx.nearest(np.array([[1, 0]], np.float32), k=5)
    assert idx.item_ids(rows[0]) == ["b"]
    idx.upsert("c", np.array([0, 1], np.float32))
    assert idx.size == 2 and len(idx) == 2 and idx.category("c") == ""



def test_zero_vectors_are_never_nearest_and_track_upserts() -> None:
    idx = ItemIndex(dim=2, capacity=1)
    idx.upsert("a", np.array([1, 0], np.float32))
    idx.upsert("blank", np.zeros(2, np.float32))  # behaviour-only, and grows the index
    idx.upsert("b", np.array([-1, 0], np.float32))
    rows, scores = idx.nearest(np.array([[1, 0], [0, 0]], np.float32), k=5)
    assert idx.item_ids(rows[0]) == ["a", "b"] and np.isneginf(scores[1]).all()
    idx.upsert("blank", np.array([0, 1], np.float32))  # the item gets a text later
    idx.upsert("a", np.zeros(2, np.float32))  # and this one loses its vector
    idx.delete("b")
    assert idx.has_vector.tolist() == [False, True, False]
    rows, _ = idx.nearest(np.array([[1, 0]], np.float32), k=5)
    assert idx.item_ids(rows[0]) == ["blank"]

def test_upsert_replaces_vector_and_metadata() -> None:
    idx = ItemIndex(dim=2)
    idx.upsert("a", np.array([1, 0], np.float32), category="x", price=3.0)
    idx.upsert("a", np.array([0, 2], np.float32), category="y")
    assert len(idx) == 1 and idx.category("a") == "y"
    np.testing.assert_allclose(idx.vector("a"), [0, 1])


def test_wrong_dimension_is_rejected() -> None:
    with pytest.raises(ValueError, match="expected"):
        ItemIndex(dim=3).upsert("a", np.ones(2, np.float32))
