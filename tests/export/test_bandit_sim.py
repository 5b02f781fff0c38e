"""Regret on the simulated shop, and the `streamrec ope` and `streamrec bench bandit` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from export.bandit_sim import (
    BanditEnvironment,
    SimConfig,
    run_policy,
    run_simulation,
    simulate_log,
)
from models.bandit import DEFAULT_POLICY
from streams.cli import main


def test_default_policy_regret_is_below_greedy_and_random_over_20000_rounds() -> None:
    env = BanditEnvironment(SimConfig(rounds=20_000, seed=0))
    assert env.n_available[0] == 10 and env.n_available[-1] == 20  # items arrive over time
    regret = {name: run_policy(env, name, seed=0)[-1] for name in (DEFAULT_POLICY, "greedy", "random")}
    assert regret[DEFAULT_POLICY] < regret["greedy"] and regret[DEFAULT_POLICY] < regret["random"]
    assert regret[DEFAULT_POLICY] < 0.25 * min(regret["greedy"], regret["random"])


def test_simulation_is_deterministic() -> None:
    config = SimConfig(rounds=2000, seed=5, policies=("thompson", "ucb"))
    a, b = run_simulation(config), run_simulation(config)
    for name in config.policies:
        assert a["policies"][name]["curve"] == b["policies"][name]["curve"]
    assert np.all(np.diff(a["policies"]["thompson"]["curve"]) >= 0)


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_ope_command_estimates_a_simulated_log(tmp_path: Path) -> None:
    click_p = [0.05, 0.3, 0.1]
    log = _write(tmp_path / "log.jsonl", simulate_log(5000, click_p, [0.5, 0.2, 0.3], seed=3))
    r = CliRunner().invoke(main, ["ope", str(log), "--target", "arm:arm-1", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["decisions"] == 5000
    for e in out["estimates"]:
        assert e["low"] <= 0.3 <= e["high"], e
    r = CliRunner().invoke(main, ["ope", str(log), "--target", "uniform", "--bootstrap", "200"])
    assert r.exit_code == 0 and "snips-bootstrap" in r.output and "interval" in r.output


def test_ope_command_refuses_a_malformed_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"arm": "a", "reward": 1, "propensity": 0.5}\n{"arm": "b", "reward": 1}\n')
    r = CliRunner().invoke(main, ["ope", str(bad)])
    assert r.exit_code != 0 and "line 2: missing propensity" in r.output
    bad.write_text('{"arm": "a", "reward": 1, "propensity": 0}\n')
    assert "propensity must be in (0, 1]" in CliRunner().invoke(main, ["ope", str(bad)]).output
    bad.write_text("not json\n")
    assert "line 1: not valid JSON" in CliRunner().invoke(main, ["ope", str(bad)]).output
    bad.write_text('{"arm": "a", "reward": 1, "propensity": 0.5}\n')
    r = CliRunner().invoke(main, ["ope", str(bad), "--target", "uniform"])
    assert r.exit_code != 0 and "add an `arms` list" in r.output
    r = CliRunner().invoke(main, ["ope", str(tmp_path / "missing.jsonl")])
    assert r.exit_code != 0 and "cannot read" in r.output


def test_bench_bandit_command_writes_json_and_png(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["bench", "bandit", "--rounds", "500", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "bandit.json").read_text())
    assert set(data["policies"]) >= {"thompson", "greedy", "random"}
    assert (tmp_path / "bandit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
