"""Bandit policies behind one interface, with JSON state and choice propensities.

:func:`make_policy` builds a :class:`RiverPolicy` around a ``river.bandit`` policy
chosen by name (:data:`POLICIES`): Thompson sampling with a Beta reward model (the
default), UCB, LinUCB (disjoint, on a small context dict), epsilon-greedy and uniform
random. Every policy

* learns one binary reward at a time (``update``) and picks one arm (``pull``),
* gives the probability with which ``pull`` picks each arm (``propensities``):
  closed form for UCB, LinUCB, epsilon-greedy and random, a seeded Monte-Carlo
  estimate (vectorised numpy) for Thompson sampling,
* saves its whole learned state as a plain JSON-able dict (``state_dict``) and is
  rebuilt from it (:func:`policy_from_state`) exactly: the same state and the same
  next choices. Nothing is pickled, so the state can live in a changelog table.

Randomness is counter-based: before each decision the policy's random generator
(shared by river's policy and every arm's Beta) is re-seeded from ``(seed,
decisions)``, so the state needs no Mersenne-Twister internals and a restored
policy makes the same choices as the one it was saved from.

>>> p = make_policy("thompson", seed=1)
>>> p.update("a", 1.0); p.update("b", 0.0)
>>> q = policy_from_state(json.loads(json.dumps(p.state_dict())))
>>> q.state_dict() == p.state_dict(), q.pull(["a", "b"]) == p.pull(["a", "b"])
(True, True)
>>> make_policy("random").propensities(["a", "b", "c", "d"]).tolist()
[0.25, 0.25, 0.25, 0.25]
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np
from numpy.typing import NDArray
from river import bandit, proba, stats

ArmId: TypeAlias = "int | str"
Context = Mapping[str, float]
FloatArray = NDArray[np.float64]

#: Policy names accepted by :func:`make_policy`; the first is the default.
POLICIES: tuple[str, ...] = ("thompson", "ucb", "linucb", "epsilon_greedy", "random")
DEFAULT_POLICY = POLICIES[0]

#: Policies that read a context (the others ignore it).
CONTEXTUAL: frozenset[str] = frozenset({"linucb"})

_MASK = (1 << 63) - 1


def _features(context: Context | None) -> dict[str, float]:
    """A contextual policy's features: ``context``, or the intercept alone when there is none
    (river's linear models cannot learn from an empty context)."""
    return dict(context) if context else {"bias": 1.0}


def user_context(n_events: int, conf_short: float, conf_query: float) -> dict[str, float]:
    """The small context a contextual policy (LinUCB) decides on for a user: an intercept,
    how much history the user has (log scale, 1 at 1,000 events and above) and how much
    their current session and latest search still count (the interest learner's
    confidences, in [0, 1]). A new user's context is the intercept alone.

    >>> user_context(0, 0.0, 0.0)
    {'bias': 1.0, 'history': 0.0, 'session': 0.0, 'search': 0.0}
    >>> user_context(999, 0.5, 1.0)
    {'bias': 1.0, 'history': 1.0, 'session': 0.5, 'search': 1.0}
    """
    history = min(1.0, math.log1p(max(0, n_events)) / math.log1p(999))
    return {"bias": 1.0, "history": round(history, 6), "session": round(float(conf_short), 6),
            "search": round(float(conf_query), 6)}


def _mix(seed: int, counter: int) -> int:
    """A 63-bit seed for decision ``counter`` of a policy seeded with ``seed`` (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + counter * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK


class Policy(Protocol):
    """A bandit policy: pick an arm, learn its reward, tell the choice probabilities."""

    name: str

    def pull(self, arms: Sequence[ArmId], context: Context | None = None) -> ArmId:
        """Pick one of ``arms``."""
        ...

    def update(self, arm: ArmId, reward: float, context: Context | None = None) -> None:
        """Learn ``reward`` (0 or 1) for ``arm`` (shown with ``context``)."""
        ...

    def propensities(self, arms: Sequence[ArmId], context: Context | None = None) -> FloatArray:
        """Probability that ``pull(arms, context)`` returns each arm (sums to 1)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The learned state as plain JSON-able data."""
        ...


def _arm_key(arm: ArmId) -> list[Any]:
    """JSON keeps no int/str distinction in object keys, so arms travel as ``[type, value]``."""
    if isinstance(arm, bool) or not isinstance(arm, (int, str)):
        raise TypeError(f"arm ids must be int or str, got {type(arm).__name__}")
    return ["i", arm] if isinstance(arm, int) else ["s", arm]


def _arm_of(key: Sequence[Any]) -> ArmId:
    kind, value = key
    return int(value) if kind == "i" else str(value)


class RiverPolicy:
    """A ``river.bandit`` policy with propensities and exact JSON state.

    Parameters
    ----------
    name
        One of :data:`POLICIES`.
    seed
        Seeds every decision (with the decision counter) and the Monte-Carlo propensities.
    epsilon, decay
        Epsilon-greedy: exploration probability and its exponential decay per update.
    delta
        UCB: width of the confidence bonus (1 is UCB1).
    alpha, beta
        LinUCB: prior precision and noise precision of each arm's Bayesian linear regression.
    burn_in
        Every arm is pulled (deterministically, in the order given) until it has this many updates.
    mc_samples
        Thompson sampling: posterior draws behind each propensity estimate.
    """

    def __init__(
        self,
        name: str = DEFAULT_POLICY,
        seed: int = 0,
        *,
        epsilon: float = 0.1,
        decay: float = 0.0,
        delta: float = 1.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        burn_in: int = 0,
        mc_samples: int = 2000,
    ) -> None:
        if name not in POLICIES:
            raise ValueError(f"unknown bandit policy {name!r}; choose one of {', '.join(POLICIES)}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1] (got {epsilon})")
        if mc_samples < 1:
            raise ValueError(f"mc_samples must be at least 1 (got {mc_samples})")
        self.name = name
        self.seed = int(seed)
        self.params: dict[str, float | int] = {
            "epsilon": float(epsilon), "decay": float(decay), "delta": float(delta),
            "alpha": float(alpha), "beta": float(beta), "burn_in": int(burn_in), "mc_samples": int(mc_samples),
        }
        self._decisions = 0
        self._rng = random.Random(0)
        # Any: the propensities and bounds read each river policy's own private state.
        self._policy: Any = self._build()

    # -- construction -------------------------------------------------------------

    def _build(self) -> bandit.base.Policy:
        p, burn_in = self.params, int(self.params["burn_in"])
        policy: bandit.base.Policy
        if self.name == "thompson":
            policy = bandit.ThompsonSampling(reward_obj=proba.Beta(), burn_in=burn_in, seed=self.seed)
            policy._rewards.default_factory = self._new_beta
        elif self.name == "ucb":
            policy = bandit.UCB(delta=p["delta"], reward_obj=stats.Mean(), burn_in=burn_in, seed=self.seed)
        elif self.name == "linucb":
            policy = bandit.LinUCBDisjoint(alpha=p["alpha"], beta=p["beta"], burn_in=burn_in, seed=self.seed)
        elif self.name == "epsilon_greedy":
            policy = bandit.EpsilonGreedy(
                epsilon=p["epsilon"], decay=p["decay"], reward_obj=stats.Mean(), burn_in=burn_in, seed=self.seed
            )
        else:
            policy = bandit.RandomPolicy(burn_in=burn_in, seed=self.seed)
        policy._rng = self._rng  # one counter-seeded generator for every draw
        return policy

    def _new_beta(self) -> proba.Beta:
        dist = proba.Beta()
        dist._rng = self._rng
        return dist

    @property
    def decisions(self) -> int:
        """Number of ``pull`` calls so far."""
        return self._decisions

    def at_decision(self, n: int) -> None:
        """Make the next ``pull`` (and ``propensities``) decision number ``n``.

        A caller that does not store the policy after each decision numbers its
        decisions itself (e.g. by the user's event count), so a replay of the same
        events makes the same choices and different events do not repeat one draw.
        """
        if n < 0:
            raise ValueError(f"decision numbers are not negative (got {n})")
        self._decisions = int(n)

    # -- acting and learning --------------------------------------------------------

    def _check(self, arms: Sequence[ArmId]) -> list[ArmId]:
        arms = list(arms)
        if not arms:
            raise ValueError("no arms to choose from")
        return arms

    def pull(self, arms: Sequence[ArmId], context: Context | None = None) -> ArmId:
        """Pick one of ``arms`` (``context`` is read by LinUCB only)."""
        arms = self._check(arms)
        self._rng.seed(_mix(self.seed, self._decisions))
        self._decisions += 1
        if self.name == "linucb":
            return self._policy.pull(arms, context=_features(context))
        return self._policy.pull(arms)

    def update(self, arm: ArmId, reward: float, context: Context | None = None) -> None:
        """Learn a binary ``reward`` for ``arm``."""
        _arm_key(arm)
        if reward not in (0, 1):
            raise ValueError(f"rewards are 0 or 1 (got {reward!r})")
        if self.name == "linucb":
            self._policy.update(arm, _features(context), float(reward))
        elif self.name == "thompson":
            self._policy.update(arm, bool(reward))
        else:
            self._policy.update(arm, float(reward))

    def propensities(self, arms: Sequence[ArmId], context: Context | None = None) -> FloatArray:
        """Probability that the next ``pull(arms, context)`` returns each arm."""
        arms = self._check(arms)
        n = len(arms)
        pol = self._policy
        burn_in = int(self.params["burn_in"])
        out = np.zeros(n, np.float64)
        for i, a in enumerate(arms):  # river pulls the first arm still in burn-in
            if pol._counts[a] < burn_in:
                out[i] = 1.0
                return out
        if self.name == "random":
            return np.full(n, 1.0 / n)
        if self.name == "thompson":
            return self._thompson_propensities(arms)
        if self.name == "epsilon_greedy":
            eps = pol.current_epsilon
            means = np.array([pol._rewards[a].get() if a in pol._rewards else 0.0 for a in arms])
            out[:] = eps / n
            out[int(np.argmax(means))] += 1.0 - eps  # river's max() keeps the first best arm
            return out
        bounds = self.upper_bounds(arms, context)
        best = bounds == bounds.max()
        return best / best.sum()

    def upper_bounds(self, arms: Sequence[ArmId], context: Context | None = None) -> FloatArray:
        """UCB and LinUCB: each arm's upper confidence bound, as river computes it."""
        pol = self._policy
        if self.name == "ucb":
            n = pol._n
            return np.array([
                math.inf if a not in pol._rewards
                else pol._rewards[a].get() + self.params["delta"] * math.sqrt(2 * math.log(n) / pol._counts[a])
                for a in arms
            ])
        if self.name == "linucb":
            ctx = _features(context)
            dists = [pol._bayes_lin_regs[a].predict_one(ctx, with_dist=True) for a in arms]
            return np.array([d.mu + d.sigma for d in dists])
        raise ValueError(f"{self.name} has no upper confidence bounds")

    def posterior(self, arms: Sequence[ArmId]) -> tuple[FloatArray, FloatArray]:
        """Thompson sampling: each arm's Beta (alpha, beta), the prior Beta(1, 1) for a new arm."""
        rewards = self._policy._rewards
        a = np.array([rewards[x].alpha if x in rewards else 1 for x in arms], np.float64)
        b = np.array([rewards[x].beta if x in rewards else 1 for x in arms], np.float64)
        return a, b

    def _thompson_propensities(self, arms: Sequence[ArmId]) -> FloatArray:
        a, b = self.posterior(arms)
        m = int(self.params["mc_samples"])
        rng = np.random.default_rng(_mix(self.seed ^ 0x5EED, self._decisions))
        draws = rng.beta(a[None, :], b[None, :], size=(m, len(arms)))
        wins = np.bincount(np.argmax(draws, axis=1), minlength=len(arms))
        return wins / m

    # -- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything learned, as JSON-able data (arms as ``[type, id]`` pairs)."""
        pol = self._policy
        arms: list[list[Any]] = []
        for arm, count in pol._counts.items():
            entry: list[Any] = [_arm_key(arm), int(count)]
            reward = pol._rewards.get(arm)
            if isinstance(reward, proba.Beta):
                entry.append([reward.alpha, reward.beta])
            elif isinstance(reward, stats.Mean):
                entry.append([reward.n, reward._mean])
            else:
                entry.append(None)
            if self.name == "linucb":
                entry.append(_blr_state(pol._bayes_lin_regs[arm]))
            arms.append(entry)
        return {
            "policy": self.name, "seed": self.seed, "params": dict(self.params),
            "decisions": self._decisions, "n": pol._n, "arms": arms,
        }

    def to_json(self) -> str:
        """:meth:`state_dict` as a compact JSON string."""
        return json.dumps(self.state_dict(), separators=(",", ":"))


def _blr_state(model: Any) -> dict[str, Any]:
    return {
        "idx": [[k, v] for k, v in model._idx.items()], "cap": model._cap, "n": model._n,
        "ss": model._ss_arr.tolist(), "ss_inv": model._ss_inv_arr.tolist(),
        "eta": model._eta_arr.tolist(), "m": model._m_arr.tolist(), "m_dirty": model._m_dirty,
    }


def _load_blr(model: Any, s: Mapping[str, Any]) -> None:
    model._idx = {k: int(v) for k, v in s["idx"]}
    model._cap = int(s["cap"])
    model._n = s["n"]
    model._ss_arr = np.array(s["ss"], np.float64).reshape(model._cap, model._cap)
    model._ss_inv_arr = np.asfortranarray(np.array(s["ss_inv"], np.float64).reshape(model._cap, model._cap))
    model._eta_arr = np.array(s["eta"], np.float64).reshape(model._cap)
    model._m_arr = np.array(s["m"], np.float64)
    model._m_dirty = bool(s["m_dirty"])


def make_policy(name: str = DEFAULT_POLICY, seed: int = 0, **params: Any) -> RiverPolicy:
    """A fresh policy by name (one of :data:`POLICIES`), seeded."""
    return RiverPolicy(name, seed, **params)


def policy_from_state(state: Mapping[str, Any]) -> RiverPolicy:
    """Rebuild a policy from :meth:`RiverPolicy.state_dict` output (a clear error if malformed)."""
    try:
        p = RiverPolicy(str(state["policy"]), int(state["seed"]), **state["params"])
        p._decisions = int(state["decisions"])
        pol = p._policy
        pol._n = int(state["n"])
        for entry in state["arms"]:
            arm, count, reward = _arm_of(entry[0]), int(entry[1]), entry[2]
            pol._counts[arm] = count
            if reward is not None:
                obj = pol._rewards[arm]  # created by the policy's own factory
                if isinstance(obj, proba.Beta):
                    obj.alpha, obj.beta = reward
                else:
                    obj.n, obj._mean = reward
            if p.name == "linucb":
                _load_blr(pol._bayes_lin_regs[arm], entry[3])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not a bandit policy state ({type(exc).__name__}: {exc})") from None
    return p
