"""The benchmark's outputs: pipeline-to-echo ratios, a Markdown table, the JSON file.

>>> pipeline = [{"offered_rate": 500.0, "skipped": False, "processed_rate": 480.0, "latency_ms": {"p99": 90.0}}]
>>> echo = [{"offered_rate": 500.0, "skipped": False, "processed_rate": 500.0, "latency_ms": {"p99": 30.0}}]
>>> [(r["offered_rate"], r["processed_rate"], r["latency_ms.p99"]) for r in live_ratios(pipeline, echo)]
[(500.0, 0.96, 3.0)]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.bench.stats import ratios

#: Live figures compared with the echo (dotted keys reach into dicts).
LIVE_RATIO_KEYS: tuple[str, ...] = (
    "sent_rate", "processed_rate", "refreshes_rate",
    "latency_ms.p50", "latency_ms.p95", "latency_ms.p99",
    "writer_latency_ms.p50", "writer_latency_ms.p95", "writer_latency_ms.p99",
    "lag_end", "drain_s", "cpu_s", "cpu_cores", "rss_mib", "peak_rss_mib",
)
#: Catch-up figures compared with the echo.
CATCHUP_RATIO_KEYS: tuple[str, ...] = (
    "events_per_s", "elapsed_s", "wall_s", "start_to_first_s", "cpu_s", "cpu_cores", "cpu_s_total",
    "rss_mib", "peak_rss_mib",
)


def live_ratios(pipeline: Sequence[dict[str, Any]], echo: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pipeline figure / echo figure for every rate both ran (None where the echo figure is 0 or absent)."""
    echo_by_rate = {r["offered_rate"]: r for r in echo if not r.get("skipped")}
    out = []
    for row in pipeline:
        ref = echo_by_rate.get(row["offered_rate"])
        if row.get("skipped") or ref is None:
            continue
        out.append({"offered_rate": row["offered_rate"], **ratios(row, ref, LIVE_RATIO_KEYS)})
    return out


def catchup_ratios(pipeline: dict[str, Any], echo: dict[str, Any]) -> dict[str, float | None]:
    """Pipeline figure / echo figure for the catch-up."""
    return ratios(pipeline, echo, CATCHUP_RATIO_KEYS)


def fmt(value: object, digits: int = 0) -> str:
    """A figure for a table: thousands separators, ``-`` when missing.

    >>> fmt(12345.678), fmt(0.456, 2), fmt(None), fmt(True)
    ('12,346', '0.46', '-', 'yes')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def fmt_ratio(value: object) -> str:
    """A ratio for a table: ``2.35×``, ``-`` when missing.

    >>> fmt_ratio(2.3456), fmt_ratio(None), fmt_ratio(0.0123)
    ('2.35×', '-', '0.012×')
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return f"{value:.2f}×" if abs(value) >= 0.1 else f"{value:.2g}×"


def _source(source: object) -> str:
    """`` on abc1234567`` plus the count of locally modified files, or nothing.

    >>> _source({"commit": "abc1234567890", "modified_files": ["a.py"]}), _source(None)
    (' on abc1234567 (with local changes to 1 file(s))', '')
    """
    if not isinstance(source, dict) or not source.get("commit"):
        return ""
    modified = source.get("modified_files") or []
    return f" on {source['commit'][:10]}" + (f" (with local changes to {len(modified)} file(s))" if modified else "")


def _first(values: object) -> object:
    return values[0] if isinstance(values, list) and values else None


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


_LIVE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("sent/s", "sent_rate", 0),
    ("processed/s", "processed_rate", 0),
    ("refreshes/s", "refreshes_rate", 0),
    ("p50 ms", "latency_ms.p50", 0),
    ("p95 ms", "latency_ms.p95", 0),
    ("p99 ms", "latency_ms.p99", 0),
    ("lag at end", "lag_end", 0),
    ("drained in s", "drain_s", 1),
    ("CPU cores", "cpu_cores", 2),
    ("RSS MiB", "rss_mib", 0),
)
_CATCHUP_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("events/s", "events_per_s", 0),
    ("first → last event s", "elapsed_s", 1),
    ("wall s (start, join, catch-up)", "wall_s", 1),
    ("CPU s", "cpu_s", 1),
    ("CPU cores", "cpu_cores", 2),
    ("peak RSS MiB", "peak_rss_mib", 0),
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    aligns = ["---" if i < 2 or i == len(header) - 1 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def live_table(live: dict[str, Any]) -> list[str]:
    """Markdown rows: per offered rate, the pipeline, the echo and their ratio."""
    pipeline, echo = live.get("pipeline") or [], live.get("echo") or []
    ratio_by_rate = {r["offered_rate"]: r for r in live.get("ratio") or []}
    echo_by_rate = {r["offered_rate"]: r for r in echo}
    rates = sorted({r["offered_rate"] for r in [*pipeline, *echo]})
    rows: list[list[str]] = []
    for rate in rates:
        for system, data in (("pipeline", next((r for r in pipeline if r["offered_rate"] == rate), None)),
                             ("echo", echo_by_rate.get(rate))):
            if data is None:
                continue
            if data.get("skipped"):
                rows.append([fmt(rate), system, *["-"] * len(_LIVE_COLUMNS), data.get("note", "")])
                continue
            cells = [fmt(_get(data, key), digits) for _, key, digits in _LIVE_COLUMNS]
            rows.append([fmt(rate), system, *cells, data.get("note") or ""])
        if rate in ratio_by_rate:
            ratio = ratio_by_rate[rate]
            rows.append([fmt(rate), "pipeline ÷ echo", *[fmt_ratio(ratio.get(key)) for _, key, _ in _LIVE_COLUMNS], ""])
    return _table(["offered/s", "system", *[title for title, _, _ in _LIVE_COLUMNS], "note"], rows)


def catchup_table(catchup: dict[str, Any]) -> list[str]:
    """Markdown rows: the pipeline, the echo and their ratio on the same backlog."""
    rows: list[list[str]] = []
    for system in ("pipeline", "echo"):
        data = catchup.get(system)
        if data:
            cells = [fmt(data.get(key), digits) for _, key, digits in _CATCHUP_COLUMNS]
            rows.append([system, fmt(data.get("processed")), *cells, data.get("note") or ""])
    if catchup.get("ratio"):
        ratio = catchup["ratio"]
        rows.append(["pipeline ÷ echo", "", *[fmt_ratio(ratio.get(key)) for _, key, _ in _CATCHUP_COLUMNS], ""])
    return _table(["system", "events", *[title for title, _, _ in _CATCHUP_COLUMNS], "note"], rows)


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown, ready to paste."""
    m, cfg, servers = results.get("machine", {}), results.get("config", {}), results.get("servers", {})
    lines = [
        (f"**streamrec bench** (run {results.get('run_id', '?')}, {results.get('started_at', '')}): "
        f"{m.get('cpu', '?')}, {m.get('usable_cores', '?')} cores, {fmt(m.get('memory_gib'), 1)} GiB RAM, "
        f"Python {m.get('python', '?')}; broker: {servers.get('broker', {}).get('kind', '?')}, "
        f"Redis: {servers.get('redis', {}).get('kind', '?')} {servers.get('redis', {}).get('version') or ''}. "
        "Load generator, latency probe and servers share the machine with the measured process; "
         f"load average (1 min) {fmt(_first(m.get('load_average_at_start')), 2)} at the start, "
         f"{fmt(_first(m.get('load_average_at_end')), 2)} at the end."),
        "",
        f"Command: `{results.get('command', 'streamrec bench')}`{_source(results.get('source'))}",
    ]
    live = results.get("live")
    if live and (live.get("pipeline") or live.get("echo")):
        lines += [
            "",
            (f"### Live: offered load, {fmt(cfg.get('users'))} users, {fmt(cfg.get('seconds'), 0)} s per rate, "
             f"{cfg.get('partitions', '?')} partitions"),
            "",
            ("Latency: event timestamp (send time) to the refresh being readable in Redis, seen by a "
             "keyspace-notification probe over a sample of users. CPU in cores of the measured process "
             "while the load was offered; lag = events sent but not yet counted when sending ended."),
            "",
            *live_table(live),
        ]
    catchup = results.get("catchup")
    if catchup and (catchup.get("pipeline") or catchup.get("echo")):
        lines += [
            "",
            (f"### Catch-up: a backlog of {fmt(cfg.get('events'))} click events over {fmt(cfg.get('users'))} "
             "users, produced before the process starts"),
            "",
            *catchup_table(catchup),
        ]
    notes = results.get("notes") or []
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def write_json(results: dict[str, Any], path: Path) -> Path:
    """Write ``results`` as indented JSON; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    return path
