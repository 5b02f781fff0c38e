"""Small, exact statistics for the benchmark: percentiles, rates and ratios.

>>> latency_percentiles([0.010, 0.020, 0.030, 0.040])
{'p50': 25.0, 'p95': 38.5, 'p99': 39.7}
>>> ratio(300.0, 1200.0)
0.25
>>> ratio(1.0, 0.0) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

#: The latency percentiles reported everywhere.
PERCENTILES: tuple[int, ...] = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as ``numpy.percentile``'s default: position ``(n - 1) * q / 100``
    in the sorted values, interpolated linearly.

    >>> percentile([3.0, 1.0, 2.0], 50)
    2.0
    >>> percentile([1.0, 2.0, 3.0, 4.0], 75)
    3.25
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


def latency_percentiles(seconds: Sequence[float], qs: Iterable[int] = PERCENTILES) -> dict[str, float]:
    """``{"p50": ms, ...}`` of latencies given in seconds; empty when there are none."""
    if not seconds:
        return {}
    return {f"p{q}": round(percentile(seconds, q) * 1000.0, 3) for q in qs}


def per_second(count: float, seconds: float) -> float | None:
    """``count / seconds``, or None for a window of no length.

    >>> per_second(1000, 4.0), per_second(5, 0.0)
    (250.0, None)
    """
    if seconds <= 0:
        return None
    return count / seconds


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None when either is missing or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def ratios(
    values: Mapping[str, object], references: Mapping[str, object], keys: Iterable[str]
) -> dict[str, float | None]:
    """``{key: values[key] / references[key]}`` for numeric figures (dotted keys reach into dicts).

    >>> ratios({"rate": 100.0, "lat": {"p50": 30.0}}, {"rate": 400.0, "lat": {"p50": 10.0}}, ["rate", "lat.p50"])
    {'rate': 0.25, 'lat.p50': 3.0}
    """
    return {key: ratio(_number(values, key), _number(references, key)) for key in keys}


def _number(data: Mapping[str, object], dotted: str) -> float | None:
    value: object = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
