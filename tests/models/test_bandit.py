"""Bandit policies: JSON state round-trips exactly, propensities match the choices made."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from models.bandit import POLICIES, make_policy, policy_from_state

ARMS = ["interest", "covisit", "trending", 7]
CTX = {"recent": 0.4, "hour": 0.5}


def _trained(name: str, steps: int = 200, seed: int = 3):
    p = make_policy(name, seed=seed)
    rng = np.random.default_rng(seed)
    truth = {"interest": 0.3, "covisit": 0.5, "trending": 0.1, 7: 0.2}
    for _ in range(steps):
        arm = p.pull(ARMS, CTX)
        p.update(arm, int(rng.random() < truth[arm]), CTX)
    return p


@pytest.mark.parametrize("name", POLICIES)
def test_state_round_trips_through_json_and_restored_policy_acts_the_same(name: str) -> None:
    p = _trained(name)
    state = json.loads(json.dumps(p.state_dict()))
    q = policy_from_state(state)
    assert q.state_dict() == p.state_dict()
    assert [q.pull(ARMS, CTX) for _ in range(20)] == [p.pull(ARMS, CTX) for _ in range(20)]
    np.testing.assert_array_equal(q.propensities(ARMS, CTX), p.propensities(ARMS, CTX))


def test_integer_and_string_arm_ids_stay_distinct_through_json() -> None:
    p = make_policy("thompson")
    p.update(7, 1)
    p.update("7", 0)
    q = policy_from_state(json.loads(p.to_json()))
    assert q.posterior([7, "7"])[0].tolist() == [2.0, 1.0]


@pytest.mark.parametrize("name", POLICIES)
def test_propensities_are_the_frequencies_of_the_choices(name: str) -> None:
    p = _trained(name)
    props = p.propensities(ARMS, CTX)
    assert props.shape == (len(ARMS),) and abs(props.sum() - 1.0) < 1e-9 and (props >= 0).all()
    n = 3000
    counts = Counter(p.pull(ARMS, CTX) for _ in range(n))  # no updates: the same distribution every time
    freq = np.array([counts[a] / n for a in ARMS])
    np.testing.assert_allclose(freq, props, atol=0.03)


def test_closed_forms() -> None:
    assert make_policy("random").propensities(["a", "b"]).tolist() == [0.5, 0.5]
    g = make_policy("epsilon_greedy", epsilon=0.2)
    g.update("b", 1)
    np.testing.assert_allclose(g.propensities(["a", "b", "c", "d"]), [0.05, 0.85, 0.05, 0.05])
    u = make_policy("ucb")
    u.update("a", 1)
    assert u.propensities(["a", "b", "c"]).tolist() == [0.0, 0.5, 0.5]  # unseen arms: infinite bound, tie
    t = make_policy("thompson", burn_in=1)
    t.update("a", 0)
    assert t.propensities(["a", "b"]).tolist() == [0.0, 1.0]  # burn-in pulls the first unseen arm


def test_thompson_learns_the_better_arm() -> None:
    p = make_policy("thompson", seed=0)
    for _ in range(50):
        p.update("good", 1)
        p.update("bad", 0)
    assert p.propensities(["good", "bad"])[0] > 0.99


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown bandit policy 'best'"):
        make_policy("best")
    p = make_policy()
    with pytest.raises(ValueError, match="rewards are 0 or 1"):
        p.update("a", 0.5)
    with pytest.raises(ValueError, match="no arms"):
        p.pull([])
    with pytest.raises(ValueError, match="not a bandit policy state"):
        policy_from_state({"policy": "thompson"})
