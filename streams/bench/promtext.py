"""Reading counters and histograms from Prometheus text exposition (a worker's ``/metrics``).

>>> text = '''# TYPE streamrec_events_total counter
... streamrec_events_total{outcome="ok",topic="events.clicks"} 120.0
... streamrec_events_total{outcome="dlq",topic="events.clicks"} 3.0
... streamrec_refreshes_total 90.0
... '''
>>> counter(text, "streamrec_events_total"), counter(text, "streamrec_events_total", outcome="ok")
(123.0, 120.0)
>>> counter(text, "streamrec_refreshes_total"), counter(text, "missing_total")
(90.0, 0.0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

#: Cumulative histogram buckets: ``(upper bound, observations at or below it)``, ``+Inf`` last.
Buckets = list[tuple[float, float]]


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """Every ``(name, labels, value)`` sample of an exposition (comments skipped)."""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        parsed = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(labels or "")}
        yield name, parsed, float(value)


def counter(text: str, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels`` (0 when absent)."""
    return sum(
        (value
        for sample, have, value in samples(text)
        if sample == name and all(have.get(k) == v for k, v in labels.items())),
        0.0,
    )


def histogram(text: str, name: str) -> Buckets:
    """The cumulative buckets of histogram ``name`` (summed over its other labels), sorted by bound."""
    totals: dict[float, float] = {}
    for sample, labels, value in samples(text):
        if sample == f"{name}_bucket" and "le" in labels:
            bound = math.inf if labels["le"] in ("+Inf", "Inf") else float(labels["le"])
            totals[bound] = totals.get(bound, 0.0) + value
    return sorted(totals.items())


def subtract(after: Buckets, before: Buckets) -> Buckets:
    """Bucket counts observed between two scrapes of the same histogram.

    >>> subtract([(0.1, 5.0), (math.inf, 9.0)], [(0.1, 2.0), (math.inf, 3.0)])
    [(0.1, 3.0), (inf, 6.0)]
    """
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0-1) of cumulative ``buckets``, as Prometheus' ``histogram_quantile``.

    Linear interpolation inside the bucket the rank falls in (the first bucket starts at
    0); a rank in the ``+Inf`` bucket gives the highest finite bound. None without data.

    >>> round(quantile(0.5, [(0.1, 10.0), (0.2, 30.0), (math.inf, 40.0)]), 6)
    0.15
    >>> quantile(0.99, [(0.1, 10.0), (0.2, 30.0), (math.inf, 40.0)])
    0.2
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = (bound if not math.isinf(bound) else lower_bound), count
    return lower_bound
