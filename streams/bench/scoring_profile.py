"""Where an onnxruntime scoring call spends its time, by operator type.

``streamrec bench scoring --profile-calls N`` runs the ranker's pair scorer ``N`` more
times per batch size under onnxruntime's own profiler and reports, per call:

* the kernel time of each operator type (``Gemm``, ``Mul``, ``Concat``...), summed over
  the graph's nodes of that type;
* the matrix products' (:data:`MATRIX_OPS`) share of that kernel time. The profiler
  itself slows every kernel down, so its absolute times are not those of the timed
  calls; the share is applied to onnxruntime's median call time from the timed rounds
  to estimate the products' time in a call, and the rate they reach from the
  multiply-adds of the model's dense layers (:func:`matrix_flops`);
* the **ceiling** that time puts on "onnxruntime ÷ eager": PyTorch eager's median call
  time over that estimate, the ratio onnxruntime would reach if every other operator
  took no time. When the products already run near the CPU's peak, no graph
  optimisation can pass it with the same model in the same precision.

>>> events = [
...     {"cat": "Session", "name": "model_run", "ts": 0, "dur": 50},
...     {"cat": "Node", "name": "a_kernel_time", "ts": 10, "dur": 40, "args": {"op_name": "Gemm"}},
...     {"cat": "Session", "name": "model_run", "ts": 100, "dur": 50},
...     {"cat": "Node", "name": "a_kernel_time", "ts": 110, "dur": 30, "args": {"op_name": "Gemm"}},
...     {"cat": "Node", "name": "b_kernel_time", "ts": 140, "dur": 6, "args": {"op_name": "Mul"}},
...     {"cat": "Node", "name": "b_fence_before", "ts": 139, "dur": 1, "args": {"op_name": "Mul"}},
... ]
>>> operator_times(events, skip_runs=1)
(1, {'Gemm': 30.0, 'Mul': 6.0})
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Operator types counted as matrix products (plain and fused forms).
MATRIX_OPS: frozenset[str] = frozenset({"Gemm", "FusedGemm", "MatMul", "FusedMatMul", "MatMulInteger",
                                        "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm"})


def operator_times(events: Sequence[Mapping[str, Any]], skip_runs: int = 0) -> tuple[int, dict[str, float]]:
    """From onnxruntime profile ``events``: the runs counted (all but the first ``skip_runs``)
    and the kernel microseconds per run of each operator type, largest first."""
    runs = sorted(float(e["ts"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    counted = len(runs) - skip_runs
    if counted < 1:
        raise ValueError(f"the profile holds {len(runs)} runs, not more than the {skip_runs} skipped")
    start = runs[skip_runs]
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time") and float(e["ts"]) >= start:
            totals[str(e.get("args", {}).get("op_name", "?"))] += float(e["dur"])
    return counted, {op: us / counted for op, us in sorted(totals.items(), key=lambda kv: -kv[1])}


def matrix_flops(layer_shapes: Sequence[tuple[int, int]], pairs: int,
                 user_shapes: Sequence[tuple[int, int]] = (), users: int = 0) -> int:
    """Floating-point operations (2 per multiply-add) of the dense layers of one call: each
    ``(in, out)`` of ``layer_shapes`` once per pair, each of ``user_shapes`` once per user.

    >>> matrix_flops([(4, 3), (3, 1)], pairs=10, user_shapes=[(5, 2)], users=2)
    340
    """
    per_pair = sum(i * o for i, o in layer_shapes)
    per_user = sum(i * o for i, o in user_shapes)
    return 2 * (per_pair * pairs + per_user * users)


def profile_calls(onnx_path: Path, feeds: Mapping[str, np.ndarray], output: str, calls: int,
                  threads: int, warmup: int = 5) -> tuple[int, dict[str, float]]:
    """Run ``onnx_path`` on ``feeds`` ``warmup + calls`` times under onnxruntime's profiler (CPU,
    ``threads`` intra-op threads): the calls counted and the kernel µs per call by operator type."""
    from models.onnx_session import CPU_PROVIDER, create_session

    with tempfile.TemporaryDirectory(prefix="streamrec-profile-") as tmp:
        session = create_session(onnx_path, [CPU_PROVIDER], intra_op_threads=threads,
                                 profile_prefix=str(Path(tmp) / "ort"))
        for _ in range(warmup + calls):
            session.run([output], dict(feeds))
        events = json.loads(Path(session.end_profiling()).read_text())
    return operator_times(events, skip_runs=warmup)


def profile_row(by_op: Mapping[str, float], calls: int, flops: int, ort_ms: float, eager_ms: float) -> dict[str, Any]:
    """The report of one batch size: time by operator, the matrix products' share, their
    estimated time and rate in a timed call of ``ort_ms``, and the ceiling on onnxruntime ÷
    eager (see the module docstring).

    >>> r = profile_row({"Gemm": 240.0, "Mul": 60.0}, calls=10, flops=16_000_000, ort_ms=0.25, eager_ms=0.4)
    >>> r["matrix_share"], r["matrix_us_per_call"], r["matrix_gflop_per_s"], r["ceiling_ort_over_eager"]
    (0.8, 200.0, 80.0, 2.0)
    """
    matrix_us = sum(us for op, us in by_op.items() if op in MATRIX_OPS)
    kernel_us = sum(by_op.values())
    share = matrix_us / kernel_us if kernel_us else 0.0
    in_call_us = share * ort_ms * 1e3
    return {
        "calls": calls,
        "kernel_us_per_call": round(kernel_us, 2),
        "by_operator_us": {op: round(us, 2) for op, us in by_op.items()},
        "matrix_share": round(share, 3),
        "matrix_us_per_call": round(in_call_us, 2),
        "matrix_flops_per_call": flops,
        "matrix_gflop_per_s": round(flops / in_call_us / 1e3, 1) if in_call_us else 0.0,
        "ceiling_ort_over_eager": round(eager_ms * 1e3 / in_call_us, 3) if in_call_us else 0.0,
    }


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The profile table of a scoring run's profiled rows (those with a ``profile``)."""
    lines = ["| batch | profiled kernel µs/call | matrix products' share | their µs in a timed call | their GFLOP/s "
             "| largest other operators (profiled µs) | ceiling on ORT ÷ eager |", "|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        p = r.get("profile")
        if not p:
            continue
        others = [f"{op} {us:.0f}" for op, us in p["by_operator_us"].items() if op not in MATRIX_OPS][:4]
        lines.append(f"| {r['batch']:,} | {p['kernel_us_per_call']:.0f} | {p['matrix_share']:.0%} "
                     f"| {p['matrix_us_per_call']:.0f} | {p['matrix_gflop_per_s']:.1f} | {', '.join(others)} "
                     f"| {p['ceiling_ort_over_eager']:.2f}× |")
    return "\n".join(lines) + "\n"
