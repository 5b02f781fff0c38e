"""Candidate generation in numpy against a brute-force reading of its definition."""

from __future__ import annotations

import numpy as np
import pytest

from models.candidates import COVISIT, INTEREST, SEARCH, UserContext, generate_candidates
from models.covisitation import CoVisitation
from models.onnx_retrieval import OnnxRetrieval
from models.trending import Trending
from tests.models.test_onnx_retrieval import _catalog, _users


@pytest.mark.parametrize("n_users", [1, 40])
def test_interest_and_search_pick_each_users_nearest_allowed_items(n_users: int) -> None:
    index = _catalog(n=600)
    users = _users(index, n=n_users, seed=3) if n_users > 1 else _users(index, n=2, seed=3)[1:]
    per_source = 20
    c = generate_candidates(users, index, CoVisitation(), Trending(), per_source=per_source, exclude_recent=5)
    matrix = index.matrix
    assert c.user.shape[0] > 0
    for ui, u in enumerate(users):
        blocked = set(index.rows(list(u.bought) + list(u.recent)[-5:]).tolist())
        allowed = np.array([r for r in range(index.size) if index.alive[r] and r not in blocked])
        zero = np.zeros(index.dim, np.float32)
        long_, short_, query = (zero if v is None else v for v in (u.long, u.short, u.query))
        interest = u.conf_long * (matrix[allowed] @ long_) + u.conf_short * (matrix[allowed] @ short_)
        mine = c.user == ui
        for source, scores, wanted in ((INTEREST, interest, u.conf_long + u.conf_short > 0),
                                       (SEARCH, matrix[allowed] @ query, u.conf_query > 0.05)):
            got = set(c.row[mine & (c.source == source)].tolist())
            if not wanted:
                assert not got
                continue
            best = set(allowed[np.argsort(-scores)[:per_source]].tolist())
            # A pair found by a source of higher priority keeps that label (search first).
            assert got <= best and len(best - got - set(c.row[mine].tolist())) == 0
        rows = c.row[mine]
        np.testing.assert_allclose(c.sim_long[mine], matrix[rows] @ long_, atol=1e-6)
        np.testing.assert_allclose(c.sim_short[mine], matrix[rows] @ short_, atol=1e-6)
        np.testing.assert_allclose(c.sim_query[mine], matrix[rows] @ query, atol=1e-6)
        assert not blocked & set(rows.tolist())


@pytest.mark.parametrize("engine", ["numpy", "onnxruntime"])
@pytest.mark.parametrize("n_users", [1, 40])
def test_zero_vectors_are_near_nothing(engine: str, n_users: int) -> None:
    """Behaviour-only items (zero vectors) never come from interest or search, yet co-visitation
    still finds them with similarities of 0; a user whose vectors are all zero gets no
    interest or search candidates, whatever their confidences say."""
    index = _catalog(n=600)
    behaviour_only = [i for i in index.ids[1::5] if i in index]
    for item in behaviour_only:
        index.upsert(item, np.zeros(index.dim, np.float32))
    blank = UserContext("blank", conf_long=0.9, conf_short=0.8, conf_query=0.7, recent=("i2",))
    users = [blank, *_users(index, n=n_users - 1, seed=3)]
    covisitation = CoVisitation()
    for u in users:
        for recent in u.recent:
            for item in behaviour_only[:15]:
                covisitation.learn_one(recent, item)
    retrieval = OnnxRetrieval() if engine == "onnxruntime" else None
    c = generate_candidates(users, index, covisitation, Trending(), per_source=20, exclude_recent=5,
                            retrieval=retrieval)
    found = np.isin(c.source, [INTEREST, SEARCH])
    assert found.any() == (n_users > 1)
    assert index.has_vector[c.row[found]].all()
    assert not found[c.user == 0].any()
    linked = ~index.has_vector[c.row] & (c.source == COVISIT)
    assert linked.sum() >= 15  # the blank user's at least
    for sims in (c.sim_long, c.sim_short, c.sim_query):
        assert (sims[linked] == 0).all()
