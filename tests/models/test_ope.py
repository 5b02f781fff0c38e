"""IPS and SNIPS on simulated logs land within their interval of the true click rate."""

from __future__ import annotations

import numpy as np
import pytest

from models.ope import bootstrap, ips, snips

CLICK_P = np.array([0.05, 0.12, 0.30, 0.08])
LOGGING = np.array([0.4, 0.3, 0.1, 0.2])  # the logging policy rarely shows the best arm


def _log(n: int, seed: int):
    rng = np.random.default_rng(seed)
    arms = rng.choice(4, size=n, p=LOGGING)
    rewards = (rng.random(n) < CLICK_P[arms]).astype(float)
    return arms, rewards, LOGGING[arms]


@pytest.mark.parametrize("target", [np.array([0, 0, 1.0, 0]), np.array([0.25] * 4), np.array([0.1, 0.2, 0.6, 0.1])])
def test_estimates_cover_the_true_rate(target) -> None:
    truth = float(target @ CLICK_P)
    arms, rewards, props = _log(20_000, seed=1)
    for est in (ips(rewards, props, target[arms]), snips(rewards, props, target[arms]),
                bootstrap(rewards, props, target[arms], "snips", resamples=300, seed=2)):
        assert est.low <= truth <= est.high, (est, truth)
        assert est.high - est.low < 0.06  # informative, not a vacuous interval
    assert abs(float(rewards.mean()) - truth) > 0.03 or np.allclose(target, 0.25)  # the logged rate is not the answer


def test_interval_coverage_is_near_nominal() -> None:
    """Over 400 independent logs the 95% intervals hold the truth about 95% of the time."""
    target = np.array([0.0, 0.0, 1.0, 0.0])
    truth = 0.30
    rng = np.random.default_rng(7)
    n, reps = 2000, 400
    arms = rng.choice(4, size=(reps, n), p=LOGGING)
    rewards = (rng.random((reps, n)) < CLICK_P[arms]).astype(float)
    hits = {"ips": 0, "snips": 0}
    for i in range(reps):
        for name, fn in (("ips", ips), ("snips", snips)):
            e = fn(rewards[i], LOGGING[arms[i]], target[arms[i]])
            hits[name] += e.low <= truth <= e.high
    for name, h in hits.items():
        assert 0.90 <= h / reps <= 0.99, (name, h / reps)


def test_hand_computed() -> None:
    e = ips([1, 0, 1, 1], [0.5, 0.5, 0.25, 1.0], [1.0, 1.0, 0.5, 0.0])
    assert e.value == pytest.approx((2 + 0 + 2 + 0) / 4)
    s = snips([1, 0, 1, 1], [0.5, 0.5, 0.25, 1.0], [1.0, 1.0, 0.5, 0.0])
    assert s.value == pytest.approx(4 / 6)
    assert e.ess == pytest.approx(36 / 12)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="propensities must be in"):
        ips([1], [0.0], [1.0])
    with pytest.raises(ValueError, match="one length"):
        snips([1, 0], [0.5], [1.0])
    with pytest.raises(ValueError, match="zero probability"):
        snips([1, 0], [0.5, 0.5], [0.0, 0.0])
