"""A simulated shop with known click probabilities, for bandit regret and off-policy checks.

:class:`BanditEnvironment` has ``n_items`` items, each with a fixed click
probability drawn from a Beta distribution (seeded); ``initial_items`` are there
from the start and one more arrives every ``arrival_every`` rounds, so policies
also have to find new items. Every round one policy picks one item among those
that have arrived, and is paid a click drawn with that item's probability.
Regret is the expected one, ``max(p of the available items) - p(chosen)``, summed
over rounds. Clicks come from one pre-drawn uniform per round, shared by every
policy, so policies are compared on the same luck. Deterministic for a seed.

:func:`simulate_log` writes the logged decisions of a stochastic logging policy
(with their propensities) in the ``streamrec ope`` log format, with the true
click rate of a target policy to compare the estimates with.

Run it: ``streamrec bench bandit`` or ``python -m export.bandit_sim --out benchmarks/bandit``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.bandit import make_policy

#: Policies compared by default: name -> (river policy name, settings).
DEFAULT_POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "thompson": ("thompson", {}),
    "ucb": ("ucb", {"delta": 1.0}),
    "epsilon_greedy": ("epsilon_greedy", {"epsilon": 0.1}),
    "greedy": ("epsilon_greedy", {"epsilon": 0.0}),
    "random": ("random", {}),
    # The simulated items carry no context: LinUCB sees the intercept alone (a ridge UCB per arm).
    "linucb": ("linucb", {}),
}


@dataclass(frozen=True)
class SimConfig:
    """The simulated environment and run."""

    rounds: int = 20_000
    n_items: int = 20
    initial_items: int = 10
    arrival_every: int = 1000
    prior: tuple[float, float] = (1.0, 9.0)  # click probabilities ~ Beta(1, 9): mean 0.1
    seed: int = 0
    checkpoints: int = 100
    policies: tuple[str, ...] = field(default_factory=lambda: tuple(DEFAULT_POLICIES))


class BanditEnvironment:
    """Items with known click probabilities, arriving over time (see the module docstring)."""

    def __init__(self, config: SimConfig) -> None:
        if not 1 <= config.initial_items <= config.n_items:
            raise ValueError("initial_items must be between 1 and n_items")
        rng = np.random.default_rng(config.seed)
        self.config = config
        self.p = rng.beta(*config.prior, size=config.n_items)
        self.u = rng.random(config.rounds)  # one shared uniform per round
        t = np.arange(config.rounds)
        self.n_available = np.minimum(config.n_items, config.initial_items + t // max(config.arrival_every, 1))
        self.best = np.maximum.accumulate(self.p)[self.n_available - 1]  # best available p each round

    def arms(self, t: int) -> list[int]:
        """Items available at round ``t``, oldest first."""
        return list(range(int(self.n_available[t])))


def run_policy(env: BanditEnvironment, name: str, seed: int = 0) -> NDArray[np.float64]:
    """Cumulative expected regret after every round for one policy from :data:`DEFAULT_POLICIES`."""
    kind, params = DEFAULT_POLICIES[name]
    policy = make_policy(kind, seed=seed, **params)
    regret = np.empty(env.config.rounds)
    p, u = env.p, env.u
    for t in range(env.config.rounds):
        arm = int(policy.pull(env.arms(t)))
        policy.update(arm, int(u[t] < p[arm]))
        regret[t] = env.best[t] - p[arm]
    return np.cumsum(regret)


def run_simulation(config: SimConfig) -> dict[str, Any]:
    """Every policy of ``config`` on one environment: final regret, curves, timings."""
    env = BanditEnvironment(config)
    idx = np.unique(np.linspace(0, config.rounds - 1, config.checkpoints).astype(int))
    results: dict[str, Any] = {}
    for name in config.policies:
        start = time.perf_counter()
        curve = run_policy(env, name, seed=config.seed)
        results[name] = {
            "final_regret": float(curve[-1]),
            "seconds": round(time.perf_counter() - start, 3),
            "curve": [round(float(x), 4) for x in curve[idx]],
        }
    return {
        "config": {**asdict(config), "policies": list(config.policies)},
        "rounds_at": idx.tolist(),
        "click_probabilities": [round(float(x), 5) for x in env.p],
        "policies": results,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """Cumulative regret curves of every policy, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, r in results["policies"].items():
        ax.plot(results["rounds_at"], r["curve"], label=f"{name} ({r['final_regret']:.0f})")
    c = results["config"]
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative expected regret")
    ax.set_title(f"{c['n_items']} items ({c['initial_items']} at start, one more every {c['arrival_every']} rounds)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``bandit.json`` and ``bandit.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    js, png = out / "bandit.json", out / "bandit.png"
    js.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, png)
    return js, png


def markdown(results: dict[str, Any]) -> str:
    """A Markdown table of final regrets."""
    lines = ["| policy | cumulative regret | seconds |", "|---|---|---|"]
    for name, r in sorted(results["policies"].items(), key=lambda kv: kv[1]["final_regret"]):
        lines.append(f"| {name} | {r['final_regret']:.1f} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def simulate_log(
    n: int, click_p: Sequence[float], logging_probs: Sequence[float], seed: int = 0
) -> list[dict[str, Any]]:
    """``n`` logged decisions of a stochastic logging policy over fixed arms (the ``streamrec ope`` format).

    Arms are named ``arm-<i>``; each record has the arm, reward, propensity and the
    available arms.
    """
    rng = np.random.default_rng(seed)
    probs = np.asarray(logging_probs, np.float64)
    arms = rng.choice(len(probs), size=n, p=probs / probs.sum())
    rewards = (rng.random(n) < np.asarray(click_p)[arms]).astype(int)
    names = [f"arm-{i}" for i in range(len(probs))]
    return [{"request_id": f"r{t}", "arm": names[a], "reward": int(r), "propensity": float(probs[a] / probs.sum()),
             "arms": names} for t, (a, r) in enumerate(zip(arms.tolist(), rewards.tolist(), strict=True))]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m export.bandit_sim``: run the simulation, write JSON and PNG, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=SimConfig.rounds)
    ap.add_argument("--items", type=int, default=SimConfig.n_items)
    ap.add_argument("--initial-items", type=int, default=SimConfig.initial_items)
    ap.add_argument("--arrival-every", type=int, default=SimConfig.arrival_every)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench-results/bandit"))
    a = ap.parse_args(argv)
    config = SimConfig(rounds=a.rounds, n_items=a.items, initial_items=a.initial_items,
                       arrival_every=a.arrival_every, seed=a.seed)
    results = run_simulation(config)
    js, png = write_results(results, a.out)
    print(markdown(results))
    print(f"wrote {js} and {png}")


if __name__ == "__main__":  # pragma: no cover
    main()
