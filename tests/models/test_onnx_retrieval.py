"""Nearest-item retrieval in onnxruntime gives the candidates numpy gives, with or without I/O binding."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from models.candidates import Candidates, UserContext, generate_candidates
from models.covisitation import CoVisitation
from models.item_index import ItemIndex
from models.onnx_retrieval import OnnxRetrieval
from models.trending import Trending
from models.vectors import l2_normalize
from streams.model_loading import load_retrieval
from streams.settings import Settings


def _catalog(n: int = 1500, dim: int = 24, seed: int = 0) -> ItemIndex:
    rng = np.random.default_rng(seed)
    index = ItemIndex(dim=dim)
    for i in range(n):
        index.upsert(f"i{i}", l2_normalize(rng.normal(size=dim).astype(np.float32)))
    for i in range(0, n, 7):  # dead rows: catalog tombstones
        index.delete(f"i{i}")
    return index


def _users(index: ItemIndex, n: int = 40, seed: int = 1) -> list[UserContext]:
    rng = np.random.default_rng(seed)
    ids = [i for i in index.ids if i in index]

    def vec() -> np.ndarray:
        return l2_normalize(rng.normal(size=index.dim).astype(np.float32))

    users = []
    for u in range(n):
        users.append(UserContext(
            f"u{u}",
            long=vec() if u % 5 else None,
            short=vec() if u % 3 else None,
            query=vec() if u % 2 else None,
            conf_long=float(rng.uniform(0.2, 1)) if u % 5 else 0.0,
            conf_short=float(rng.uniform(0.2, 1)) if u % 3 else 0.0,
            conf_query=float(rng.uniform(0, 1)) if u % 2 else 0.0,
            recent=tuple(rng.choice(ids, size=u % 9, replace=False)),
            bought=tuple(rng.choice(ids, size=u % 4, replace=False)),
        ))
    return users


def _pairs(c: Candidates) -> dict[tuple[int, int], int]:
    return {(int(u), int(r)): int(s) for u, r, s in zip(c.user, c.row, c.source, strict=True)}


def _by_pair(c: Candidates, values: np.ndarray) -> dict[tuple[int, int], float]:
    return {(int(u), int(r)): float(v) for u, r, v in zip(c.user, c.row, values, strict=True)}


@pytest.mark.parametrize("io_binding", [False, True])
def test_onnx_retrieval_finds_the_candidates_numpy_finds(io_binding: bool) -> None:
    index, trending = _catalog(), Trending(half_life=3600.0)
    for i in range(1, 60, 3):
        trending.learn_one(f"i{i}", 1.0, 0.0)
    users = _users(index)
    retrieval = OnnxRetrieval(io_binding=io_binding)
    numpy_c = generate_candidates(users, index, CoVisitation(), trending, per_source=30)
    onnx_c = generate_candidates(users, index, CoVisitation(), trending, per_source=30, retrieval=retrieval)
    assert len(numpy_c) > 1000
    assert _pairs(onnx_c) == _pairs(numpy_c)  # same pairs, same sources
    for name in ("sim_long", "sim_short", "sim_query"):
        a, b = _by_pair(numpy_c, getattr(numpy_c, name)), _by_pair(onnx_c, getattr(onnx_c, name))
        assert max(abs(a[k] - b[k]) for k in a) < 1e-5, name
    for name in ("conf_long", "trending", "covisit"):
        assert _by_pair(onnx_c, getattr(onnx_c, name)) == _by_pair(numpy_c, getattr(numpy_c, name))
    dead = {int(r) for r in np.flatnonzero(~index.alive)}
    assert not dead & {r for _, r in _pairs(onnx_c)}
    for ui, u in enumerate(users):  # bought and recent items never come back
        blocked = set(index.rows(list(u.bought) + list(u.recent)[-5:]).tolist())
        assert not blocked & {r for (v, r) in _pairs(onnx_c) if v == ui}


def test_the_resident_catalog_follows_upserts_and_deletes() -> None:
    index = _catalog(n=300)
    retrieval = OnnxRetrieval(io_binding=True)
    target = l2_normalize(np.arange(1, index.dim + 1, dtype=np.float32))
    vectors = np.stack([target, np.zeros_like(target), target])[None]
    weights = np.array([[1.0, 0.0]], np.float32)
    before = retrieval.top_rows(index, vectors, weights, k=3)
    index.upsert("new", target)  # the exact match arrives
    after = retrieval.top_rows(index, vectors, weights, k=3)
    assert index.item_ids(after.interest_rows[0])[0] == "new" != index.item_ids(before.interest_rows[0])[0]
    assert after.search_scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    index.delete("new")
    gone = retrieval.top_rows(index, vectors, weights, k=3)
    assert "new" not in index.item_ids(gone.interest_rows[0])
    assert gone.interest_rows[0].tolist() == before.interest_rows[0].tolist()


def test_dead_rows_score_minus_infinity_when_too_few_items_are_alive() -> None:
    index = ItemIndex(dim=2)
    for item, v in {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [1.0, 1.0]}.items():
        index.upsert(item, np.array(v, np.float32))
    index.delete("b")
    found = OnnxRetrieval().top_rows(index, np.ones((1, 3, 2), np.float32), np.ones((1, 2), np.float32), k=5)
    assert found.interest_rows.shape == (1, 3)  # k is capped at the index size
    assert np.isneginf(found.interest_scores[0, -1]) and index.item_ids(found.interest_rows[0][:2]) == ["c", "a"]


def test_the_setting_picks_numpy_for_small_catalogs_on_a_cpu_and_onnx_when_asked() -> None:
    assert load_retrieval(Settings(retrieval="numpy")) is None
    auto = load_retrieval(Settings(retrieval="auto", providers=["CUDAExecutionProvider", "CPUExecutionProvider"]))
    assert isinstance(auto, OnnxRetrieval)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert auto.device_type == "cuda" and auto.io_binding and auto.min_items == 0
    else:  # on the CPU numpy is faster for small catalogs (BENCHMARKS.md)
        assert auto.device_type == "cpu" and auto.min_items == 10_000
        assert load_retrieval(Settings(retrieval="auto", retrieval_min_items=0)) is None
        assert load_retrieval(Settings(retrieval="auto", retrieval_min_items=2_000)).min_items == 2_000  # type: ignore[union-attr]
    onnx = load_retrieval(Settings(retrieval="onnx"))
    assert isinstance(onnx, OnnxRetrieval) and onnx.provider == "CPUExecutionProvider" and onnx.min_items == 0
    with pytest.raises(ValueError, match="retrieval_min_items"):
        Settings(retrieval_min_items=-1)


def test_a_catalog_smaller_than_min_items_is_searched_in_numpy() -> None:
    index, trending = _catalog(), Trending(half_life=3600.0)
    users = _users(index)
    calls: list[int] = []
    retrieval = OnnxRetrieval(min_items=index.size + 1)
    real_top_rows = retrieval.top_rows

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_top_rows(*args, **kwargs)  # type: ignore[arg-type]

    retrieval.top_rows = counted  # type: ignore[method-assign]
    below = generate_candidates(users, index, CoVisitation(), trending, per_source=30, retrieval=retrieval)
    assert calls == []
    retrieval.min_items = index.size
    at = generate_candidates(users, index, CoVisitation(), trending, per_source=30, retrieval=retrieval)
    assert calls == [1] and _pairs(at) == _pairs(below)
    with pytest.raises(ValueError, match="min_items"):
        OnnxRetrieval(min_items=-1)
    with pytest.raises(ValueError, match="retrieval"):
        Settings(retrieval="faiss")
