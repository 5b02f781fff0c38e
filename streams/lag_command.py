"""``streamrec lag``: the consumer group's lag per partition, like ``kafka-consumer-groups --describe``.

Exit status (for scripts and cron checks): 0 when within the thresholds, 3 when the
total lag exceeds ``--max-lag`` or any partition's lag in seconds exceeds
``--max-lag-seconds``, 1 when the lag cannot be read, 2 for bad usage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streams.lag import GroupLag, LagReader, describe_rows, format_table
from streams.settings import Settings

#: Exit status when a threshold is exceeded.
EXIT_OVER_THRESHOLD = 3


@dataclass(frozen=True)
class Thresholds:
    """Limits above which ``streamrec lag`` exits non-zero (None: no limit)."""

    max_lag: int | None = None
    max_lag_seconds: float | None = None

    def violations(self, lag: GroupLag) -> list[str]:
        """Why ``lag`` is over the limits (empty when it is not)."""
        out = []
        if self.max_lag is not None and lag.total > self.max_lag:
            out.append(f"total lag {lag.total} > --max-lag {self.max_lag}")
        if self.max_lag_seconds is not None and lag.max_seconds > self.max_lag_seconds:
            out.append(f"lag {lag.max_seconds:.1f}s > --max-lag-seconds {self.max_lag_seconds:g}")
        return out


def render(lag: GroupLag, as_json: bool) -> str:
    """The reading as the table (or JSON) the command prints."""
    if as_json:
        return json.dumps(
            {
                "group": lag.group,
                "measured_at": lag.measured_at,
                "total_lag": lag.total,
                "max_lag_seconds": round(lag.max_seconds, 3),
                "partitions": [
                    {
                        "topic": p.topic, "partition": p.partition, "committed": p.committed,
                        "log_start": p.start, "log_end": p.end, "reported_log_end": p.reported_end,
                        "lag": p.lag, "lag_seconds": round(p.lag_seconds(lag.measured_at), 3),
                        "consumer_id": p.member.consumer_id if p.member else None,
                        "host": p.member.host if p.member else None,
                        "client_id": p.member.client_id if p.member else None,
                    }
                    for p in lag.partitions
                ],
            }
        )
    lines = [format_table(describe_rows(lag)), ""]
    lines.append(f"total lag {lag.total} records, oldest unprocessed event {lag.max_seconds:.1f}s old "
                 f"(measured {time.strftime('%H:%M:%S', time.localtime(lag.measured_at))})")
    trailing = [p for p in lag.partitions if p.end_trails_log]
    if trailing:
        lines.append(
            f"note: the broker's ListOffsets reported a log end behind the fetch high watermark on {len(trailing)} "
            "partition(s); the high watermark is shown (some brokers, e.g. Tansu, report the last batch's base offset)"
        )
    if not lag.members_known:
        lines.append("note: the broker did not describe the group's members; CONSUMER-ID, HOST and CLIENT-ID are unknown")
    return "\n".join(lines)


def run_lag(
    settings: Settings,
    group: str,
    topics: Sequence[str],
    thresholds: Thresholds,
    echo: Callable[[str], None],
    *,
    watch: bool = False,
    interval: float = 2.0,
    count: int | None = None,
    as_json: bool = False,
) -> int:
    """Print the group's lag once (or every ``interval`` seconds) and return the exit status.

    Raises :class:`~streams.lag.LagError` when the lag cannot be read.
    """
    status = 0
    n = 0
    with LagReader(settings, group, topics) as reader:
        while True:
            lag = reader.read()
            problems = thresholds.violations(lag)
            status = EXIT_OVER_THRESHOLD if problems else 0
            if watch and not as_json and _tty():
                echo("\x1b[2J\x1b[H")
            echo(render(lag, as_json))
            for problem in problems:
                echo(f"OVER THRESHOLD: {problem}")
            n += 1
            if not watch or (count is not None and n >= count):
                return status
            time.sleep(interval)


def _tty() -> bool:
    import sys

    return sys.stdout.isatty()
