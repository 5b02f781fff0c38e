"""Off-policy estimates of a target policy's click rate from logged decisions.

Each logged decision is (arm shown, reward 0/1, propensity: the probability with
which the logging policy chose that arm). Given the probability ``target`` with
which the policy under evaluation would have chosen the same arm in the same
situation, the importance weight is ``w = target / propensity`` and

* **IPS** (inverse propensity scoring) estimates the target's click rate as
  ``mean(w * r)``: unbiased, with a normal-approximation interval from the
  empirical variance of ``w * r``;
* **SNIPS** (self-normalised IPS) as ``sum(w * r) / sum(w)``: slightly biased,
  much lower variance when weights are large; its interval is the delta-method
  normal approximation, variance ``mean(w**2 * (r - snips)**2) / mean(w)**2 / n``.

Assumptions (when they fail the estimates are wrong, not just noisy): the logged
propensities are the true probabilities of the logging policy; every arm the target
may choose had a non-zero logging propensity (support); rewards of one decision do
not depend on other decisions (no interference between slots); decisions are
independent draws (the interval treats them as i.i.d.). ``ess`` (the effective
sample size, ``sum(w)**2 / sum(w**2)``) says how many logged decisions the estimate is
really worth: far below ``n``, trust the interval less.

>>> est = ips([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 1.0])
>>> est.value, est.n
(0.5, 4)
>>> round(snips([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 1.0]).value, 3)
0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    method: str
    value: float
    low: float
    high: float
    n: int
    ess: float
    confidence: float

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain dict (for JSON)."""
        return asdict(self)


def _arrays(rewards: ArrayLike, propensities: ArrayLike, target: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    r = np.asarray(rewards, np.float64)
    p = np.asarray(propensities, np.float64)
    t = np.asarray(target, np.float64)
    if not (r.ndim == p.ndim == t.ndim == 1 and r.shape == p.shape == t.shape):
        raise ValueError("rewards, propensities and target probabilities must be 1-d and of one length")
    if r.shape[0] == 0:
        raise ValueError("no logged decisions")
    if np.any((p <= 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise ValueError("logged propensities must be in (0, 1]")
    if np.any((t < 0) | (t > 1)) or not np.all(np.isfinite(t)):
        raise ValueError("target probabilities must be in [0, 1]")
    return r, p, t


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (got {confidence})")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _ess(w: NDArray[np.float64]) -> float:
    sq = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / sq if sq > 0 else 0.0


def ips(rewards: ArrayLike, propensities: ArrayLike, target: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Inverse propensity scoring estimate of the target's mean reward."""
    r, p, t = _arrays(rewards, propensities, target)
    w = t / p
    x = w * r
    n = x.shape[0]
    mean = float(x.mean())
    half = _z(confidence) * (float(x.std(ddof=1)) / np.sqrt(n) if n > 1 else np.inf)
    return Estimate("ips", mean, mean - half, mean + half, n, _ess(w), confidence)


def snips(rewards: ArrayLike, propensities: ArrayLike, target: ArrayLike, confidence: float = 0.95) -> Estimate:
    """Self-normalised IPS estimate of the target's mean reward (delta-method interval)."""
    r, p, t = _arrays(rewards, propensities, target)
    w = t / p
    n = w.shape[0]
    total = float(w.sum())
    if total <= 0:
        raise ValueError("the target gives zero probability to every logged decision: nothing to estimate from")
    value = float(np.sum(w * r)) / total
    var = float(np.mean(w * w * (r - value) ** 2)) / float(np.mean(w)) ** 2 / n
    half = _z(confidence) * np.sqrt(var) if n > 1 else np.inf
    return Estimate("snips", value, value - half, value + half, n, _ess(w), confidence)


def bootstrap(
    rewards: ArrayLike, propensities: ArrayLike, target: ArrayLike, method: str = "snips",
    confidence: float = 0.95, resamples: int = 1000, seed: int = 0, chunk: int = 100,
) -> Estimate:
    """Percentile-bootstrap interval for IPS or SNIPS (seeded, resampled in vectorised chunks)."""
    r, p, t = _arrays(rewards, propensities, target)
    _z(confidence)
    point = (ips if method == "ips" else snips)(r, p, t).value
    w = t / p
    n = w.shape[0]
    rng = np.random.default_rng(seed)
    stats_: list[NDArray[np.float64]] = []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        wr, ww = (w * r)[idx].sum(axis=1), w[idx].sum(axis=1)
        stats_.append(wr / n if method == "ips" else np.divide(wr, ww, out=np.zeros_like(wr), where=ww > 0))
    values = np.concatenate(stats_)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return Estimate(f"{method}-bootstrap", point, float(low), float(high), n, _ess(w), confidence)


def estimate_all(rewards: Sequence[float], propensities: Sequence[float], target: Sequence[float],
                 confidence: float = 0.95) -> list[Estimate]:
    """IPS and SNIPS side by side."""
    return [ips(rewards, propensities, target, confidence), snips(rewards, propensities, target, confidence)]
