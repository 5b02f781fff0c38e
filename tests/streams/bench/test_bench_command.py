"""``streamrec bench`` end to end on a tiny input: real broker, Redis, worker and echo processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.settings import Settings
from streams.topics import describe_topics

pytestmark = pytest.mark.integration


def _children() -> list[str]:
    """Command lines of this process's live children started by streamrec (worker, echo, generator)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and state != "Z" and ("streams.cli" in cmdline or "streams.bench" in cmdline):
            found.append(cmdline)
    return found


def _sane_live(row: dict[str, Any], rate: float, seconds: float) -> None:
    assert not row["skipped"] and not row["generator_limited"], row
    assert row["offered_rate"] == rate and row["sent"] == round(rate * seconds) and row["send_errors"] == 0
    assert 0.8 * rate < row["sent_rate"] <= rate * 1.01
    assert row["drained"] and row["lag_after_drain"] == 0 and 0 <= row["lag_end"] <= row["sent"]
    assert 0 < row["processed"] <= row["sent"] and row["refreshes"] > 0
    lat = row["latency_ms"]
    assert row["latency_samples"] > 0 and 0 < lat["p50"] <= lat["p95"] <= lat["p99"] < 30_000
    assert row["writer_latency_ms"]["p50"] > 0
    assert row["cpu_s"] > 0 and 0 < row["cpu_cores"] < 4 and row["rss_mib"] > 10
    assert row["peak_rss_mib"] >= row["rss_mib"]
    assert 0 <= row["other_cpu_cores"] <= row["machine_cpu_cores"]


def _sane_catchup(row: dict[str, Any], events: int) -> None:
    assert row["completed"] and row["processed"] == events and "stopped waiting" not in row["note"], row
    assert 0 <= row["other_cpu_cores"] <= row["machine_cpu_cores"]
    assert row["events_per_s"] > 0 and 0 < row["elapsed_s"] <= row["wall_s"]
    assert row["cpu_s_total"] > 0 and row["peak_rss_mib"] > 10


def test_bench_runs_live_and_catchup_with_the_echo(settings: Settings, tmp_path: Path, redis_client: Any) -> None:
    out = tmp_path / "bench"
    args = ["bench", "--mode", "all", "--rates", "100", "--seconds", "2", "--events", "2000", "--users", "200",
            "--out", str(out), "--text-only-catalog"]
    result = CliRunner().invoke(main, args, env=settings.to_env())
    assert result.exit_code == 0, result.output + "".join(
        f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in (out / "logs").rglob("*.log")
    )

    data = json.loads((out / "bench.json").read_text())
    assert data["config"]["rates"] == [100.0] and data["config"]["events"] == 2000
    assert data["config"]["partitions"] == settings.partitions
    assert data["machine"]["usable_cores"] >= 1 and data["machine"]["packages"]["faust-streaming"]
    assert data["servers"]["broker"]["bootstrap"] == settings.kafka_bootstrap_servers
    assert any(note.startswith("Other processes on the machine used up to") for note in data["notes"])

    (pipeline,), (echo,) = data["live"]["pipeline"], data["live"]["echo"]
    _sane_live(pipeline, 100.0, 2.0)
    _sane_live(echo, 100.0, 2.0)
    (ratio,) = data["live"]["ratio"]
    assert ratio["latency_ms.p50"] == pytest.approx(pipeline["latency_ms"]["p50"] / echo["latency_ms"]["p50"])
    assert ratio["rss_mib"] > 1  # a worker holds models and state; the echo holds nothing

    _sane_catchup(data["catchup"]["pipeline"], 2000)
    _sane_catchup(data["catchup"]["echo"], 2000)
    assert data["catchup"]["ratio"]["events_per_s"] == pytest.approx(
        data["catchup"]["pipeline"]["events_per_s"] / data["catchup"]["echo"]["events_per_s"]
    )

    png = out / "bench.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "| 100 | pipeline ÷ echo |" in result.output and (out / "bench.md").read_text() in result.output

    # Nothing left behind: no process, no topic, no Redis key of the run.
    assert _children() == []
    run = data["run_id"]
    assert not [t for t in describe_topics(settings) if f"bench-{run}" in t]
    assert not list(redis_client.scan_iter(match=f"*bench-{run}-*"))
