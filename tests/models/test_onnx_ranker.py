"""The served ranker keeps its item features up to date row by row as the catalog changes."""

from __future__ import annotations

import numpy as np
import pytest

from models.item_index import ItemIndex
from models.onnx_ranker import OnnxRanker
from tests.export.ranker_logs import tiny_bundle

DIM, TEXT_DIM = 8, 6


@pytest.fixture(scope="module")
def ranker(tmp_path_factory: pytest.TempPathFactory) -> OnnxRanker:
    bundle, _ = tiny_bundle(tmp_path_factory.mktemp("bundles"), dim=DIM, text_dim=TEXT_DIM, seed=3)
    return OnnxRanker(bundle.model_path, bundle.version)


def _index(n: int, rng: np.random.Generator) -> ItemIndex:
    idx = ItemIndex(dim=DIM, capacity=4)
    for i in range(n):
        idx.upsert(f"i{i}", rng.normal(size=DIM).astype(np.float32))
    return idx


class _RowCounter:
    """Counts the rows the item model is run on."""

    def __init__(self, ranker: OnnxRanker) -> None:
        self.rows = 0
        self._run = ranker._run_item_model

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        self.rows += len(vectors)
        return self._run(vectors)


@pytest.fixture
def counter(ranker: OnnxRanker, monkeypatch: pytest.MonkeyPatch) -> _RowCounter:
    """The ranker's item model, counting the rows it is run on (for one test)."""
    counting = _RowCounter(ranker)
    monkeypatch.setattr(ranker, "_run_item_model", counting)
    return counting


def test_only_changed_rows_are_recomputed_and_match_a_full_pass(ranker: OnnxRanker, counter: _RowCounter) -> None:
    rng = np.random.default_rng(0)
    idx = _index(40, rng)
    first = ranker.index_features(idx)
    assert counter.rows == 40 and first.shape[0] == 40
    before = first.copy()

    idx.upsert("i3", rng.normal(size=DIM).astype(np.float32))  # changed
    idx.delete("i7")  # deleted: its row goes to zeros
    for i in range(40, 44):  # new rows, past the old capacity
        idx.upsert(f"i{i}", rng.normal(size=DIM).astype(np.float32))
    counter.rows = 0
    updated = ranker.index_features(idx)
    assert counter.rows == 5  # i3, the row i7 freed (i40 reuses it) and three appended rows
    np.testing.assert_allclose(updated, counter._run(idx.matrix), rtol=1e-6, atol=1e-6)  # as a full pass
    np.testing.assert_array_equal(first, before)  # the array handed out before did not change under its holder
    assert ranker.index_features(idx) is updated and counter.rows == 5  # nothing changed: reused


def test_a_large_change_or_another_index_is_recomputed_whole(ranker: OnnxRanker, counter: _RowCounter) -> None:
    rng = np.random.default_rng(1)
    idx = _index(20, rng)
    ranker.index_features(idx)
    for i in range(10):  # half the catalog
        idx.upsert(f"i{i}", rng.normal(size=DIM).astype(np.float32))
    counter.rows = 0
    ranker.index_features(idx)
    assert counter.rows == 20
    other = _index(20, rng)  # same size, another catalog: never mistaken for the first
    counter.rows = 0
    np.testing.assert_allclose(ranker.index_features(other), counter._run(other.matrix), rtol=1e-6, atol=1e-6)
    assert counter.rows == 20
