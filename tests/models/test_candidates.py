"""Candidate generation in numpy against a brute-force reading of its definition."""

from __future__ import annotations

import numpy as np
import pytest

from models.candidates import INTEREST, SEARCH, generate_candidates
from models.covisitation import CoVisitation
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
