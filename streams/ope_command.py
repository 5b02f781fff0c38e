"""``streamrec ope LOG``: a target policy's click rate from a log of another policy's decisions.

The log is JSON lines, one logged decision per line::

    {"arm": "trending", "reward": 1, "propensity": 0.25,
     "arms": ["interest", "covisit", "trending", "fresh"], "target_propensity": 0.5}

* ``arm`` (string or integer, required): what was chosen (a candidate source or an item);
* ``reward`` (0 or 1, required): clicked within the feedback window or not;
* ``propensity`` (number in (0, 1], required): the probability with which the logging
  policy chose ``arm`` (the ``propensity`` each published item carries);
* ``arms`` (list, optional): the arms that were available; needed by ``--target uniform``;
* ``target_propensity`` (number in [0, 1], optional): the probability with which the
  policy under evaluation would have chosen ``arm``; needed by ``--target logged``.

Other fields (``request_id``, ``user_id``, ...) are allowed and ignored. Targets:
``uniform`` (each available arm alike), ``arm:NAME`` (always ``NAME``) and
``logged`` (the ``target_propensity`` field).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.ope import Estimate, bootstrap, ips, snips


class OpeError(Exception):
    """The log or the options cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class LoggedDecision:
    """One line of the log."""

    arm: str | int
    reward: int
    propensity: float
    arms: tuple[str | int, ...] | None
    target_propensity: float | None


def _number(rec: dict[str, Any], key: str, where: str) -> float:
    v = rec[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise OpeError(f"{where}: {key} must be a number (got {v!r})")
    return float(v)


def parse_line(line: str, lineno: int) -> LoggedDecision:
    """One log line, or an :class:`OpeError` naming the line and the problem."""
    where = f"line {lineno}"
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise OpeError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(rec, dict):
        raise OpeError(f"{where}: expected a JSON object")
    missing = [k for k in ("arm", "reward", "propensity") if k not in rec]
    if missing:
        raise OpeError(f"{where}: missing {', '.join(missing)} (every line needs arm, reward and propensity)")
    arm = rec["arm"]
    if isinstance(arm, bool) or not isinstance(arm, (str, int)):
        raise OpeError(f"{where}: arm must be a string or an integer (got {arm!r})")
    if isinstance(rec["reward"], bool) or rec["reward"] not in (0, 1):
        raise OpeError(f"{where}: reward must be 0 or 1 (got {rec['reward']!r})")
    p = _number(rec, "propensity", where)
    if not 0.0 < p <= 1.0:
        raise OpeError(f"{where}: propensity must be in (0, 1] (got {p}); a logged choice had a positive probability")
    arms = rec.get("arms")
    if arms is not None and (not isinstance(arms, list) or arm not in arms):
        raise OpeError(f"{where}: arms must be a list that contains the chosen arm")
    tp = None
    if rec.get("target_propensity") is not None:
        tp = _number(rec, "target_propensity", where)
        if not 0.0 <= tp <= 1.0:
            raise OpeError(f"{where}: target_propensity must be in [0, 1] (got {tp})")
    return LoggedDecision(arm, int(rec["reward"]), p, tuple(arms) if arms is not None else None, tp)


def read_log(lines: Iterable[str]) -> list[LoggedDecision]:
    """Every non-blank line of a log."""
    out = [parse_line(line, i) for i, line in enumerate(lines, 1) if line.strip()]
    if not out:
        raise OpeError("the log has no decisions (expected JSON lines with arm, reward and propensity)")
    return out


def target_probabilities(log: list[LoggedDecision], target: str) -> np.ndarray:
    """Probability the target policy gives each logged arm."""
    if target == "uniform":
        if any(d.arms is None for d in log):
            raise OpeError("--target uniform needs the available arms: add an `arms` list to every line")
        return np.array([1.0 / len(d.arms) for d in log if d.arms is not None])
    if target == "logged":
        if any(d.target_propensity is None for d in log):
            n = sum(d.target_propensity is None for d in log)
            raise OpeError(f"--target logged needs target_propensity on every line ({n} lines lack it)")
        return np.array([float(d.target_propensity or 0.0) for d in log])
    if target.startswith("arm:") and len(target) > 4:
        name = target[4:]
        return np.array([1.0 if str(d.arm) == name else 0.0 for d in log])
    raise OpeError(f"unknown target {target!r}: use uniform, logged or arm:NAME")


def run_ope(path: Path, target: str, confidence: float = 0.95, resamples: int = 0, seed: int = 0) -> dict[str, Any]:
    """Estimates for ``target`` from the log at ``path``, as a dict."""
    try:
        with path.open(encoding="utf-8") as fh:
            log = read_log(fh)
    except OSError as exc:
        raise OpeError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise OpeError(f"{path} is not UTF-8 text (expected JSON lines)") from None
    r = np.array([d.reward for d in log], np.float64)
    p = np.array([d.propensity for d in log], np.float64)
    t = target_probabilities(log, target)
    try:
        estimates: list[Estimate] = [ips(r, p, t, confidence), snips(r, p, t, confidence)]
        if resamples > 0:
            estimates += [bootstrap(r, p, t, m, confidence, resamples, seed) for m in ("ips", "snips")]
    except ValueError as exc:
        raise OpeError(str(exc)) from None
    return {"log": str(path), "target": target, "decisions": len(log), "logged_click_rate": float(r.mean()),
            "estimates": [e.as_dict() for e in estimates]}


def format_report(result: dict[str, Any]) -> str:
    """Human-readable lines of :func:`run_ope` output."""
    lines = [f"{result['decisions']} logged decisions; logging policy's click rate {result['logged_click_rate']:.4f}",
             f"target {result['target']}:"]
    for e in result["estimates"]:
        lines.append(f"  {e['method']:<16} {e['value']:.4f}  {e['confidence']:.0%} interval "
                     f"[{e['low']:.4f}, {e['high']:.4f}]  effective sample size {e['ess']:.0f}")
    return "\n".join(lines)
