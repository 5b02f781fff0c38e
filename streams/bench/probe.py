"""The event-to-Redis latency probe over a sample of users.

:class:`~streams.demo.latency.LatencyProbe` reads back every ``rec:*`` key written;
at thousands of writes per second that one thread falls behind and its own queueing
shows up as latency. :class:`SampledLatencyProbe` is the same probe subscribed to
the keys of a sample of users only (chosen by the last digits of their number, so
the sample is uniform over users and the same for the worker and the echo), sized
by :func:`sample_for_rate` to a few hundred reads per second.
"""

from __future__ import annotations

import redis

from streams.demo.latency import LatencyProbe

#: Glob on a user id (``bench-000042``) and the share of users it matches, largest first.
SAMPLES: tuple[tuple[str, float], ...] = (
    ("*", 1.0),
    ("*[0-4]", 0.5),
    ("*[0-1]", 0.2),
    ("*0", 0.1),
    ("*[0-4]0", 0.05),
    ("*[0-1]0", 0.02),
    ("*00", 0.01),
)

#: Largest number of reads per second the probe is sized for.
PROBE_READS_PER_S = 250.0


def sample_for_rate(events_per_s: float, reads_per_s: float = PROBE_READS_PER_S) -> tuple[str, float]:
    """The largest user sample whose share of ``events_per_s`` stays within ``reads_per_s``.

    >>> sample_for_rate(200), sample_for_rate(500), sample_for_rate(2000), sample_for_rate(10000)
    (('*', 1.0), ('*[0-4]', 0.5), ('*0', 0.1), ('*[0-1]0', 0.02))
    """
    for glob, share in SAMPLES:
        if events_per_s * share <= reads_per_s:
            return glob, share
    return SAMPLES[-1]


class SampledLatencyProbe(LatencyProbe):
    """A :class:`LatencyProbe` that only follows keys whose user id matches ``user_glob``."""

    def __init__(self, client: redis.Redis, key_prefix: str = "", user_glob: str = "*") -> None:
        super().__init__(client, key_prefix)
        if not self._pattern.endswith("rec:*"):  # pragma: no cover - guards a change in LatencyProbe
            raise RuntimeError(f"unexpected LatencyProbe pattern {self._pattern!r}")
        self._pattern = self._pattern[:-1] + user_glob
        self.user_glob = user_glob
