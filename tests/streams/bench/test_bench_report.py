"""Ratios, the Markdown table, the JSON file and the plot, from hand-made results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.bench.machine import SIMD_FLAGS, machine_facts, source_revision
from streams.bench.plot import plot
from streams.bench.report import (
    catchup_ratios,
    fmt,
    fmt_ratio,
    live_ratios,
    markdown,
    write_json,
)


def _live(rate: float, processed: float, p50: float, p99: float, cpu: float, rss: float) -> dict[str, Any]:
    return {
        "offered_rate": rate, "skipped": False, "sent_rate": rate, "processed_rate": processed,
        "refreshes_rate": processed * 0.9, "latency_ms": {"p50": p50, "p95": (p50 + p99) / 2, "p99": p99},
        "writer_latency_ms": {"p50": p50 - 1, "p99": p99 - 1}, "lag_end": 0, "drain_s": 0.5,
        "cpu_s": cpu * 20, "cpu_cores": cpu, "rss_mib": rss, "peak_rss_mib": rss + 10, "note": "",
    }


def _results() -> dict[str, Any]:
    pipeline = [_live(500, 500, 120, 400, 0.5, 900), _live(2000, 1200, 3000, 9000, 1.0, 950),
                {"offered_rate": 5000, "skipped": True, "note": "skipped: still 9,000 events behind after 2,000/s"}]
    echo = [_live(500, 500, 12, 40, 0.1, 48), _live(2000, 2000, 15, 50, 0.25, 50), _live(5000, 5000, 20, 80, 0.5, 52)]
    catchup: dict[str, Any] = {
        "pipeline": {"events": 300000, "processed": 300000, "events_per_s": 1500.0, "elapsed_s": 200.0,
                     "wall_s": 222.0, "start_to_first_s": 22.0, "cpu_s": 300.0, "cpu_cores": 1.5,
                     "cpu_s_total": 330.0, "rss_mib": 700.0, "peak_rss_mib": 800.0, "note": ""},
        "echo": {"events": 300000, "processed": 300000, "events_per_s": 30000.0, "elapsed_s": 10.0,
                 "wall_s": 16.0, "start_to_first_s": 6.0, "cpu_s": 8.0, "cpu_cores": 0.8,
                 "cpu_s_total": 9.0, "rss_mib": 50.0, "peak_rss_mib": 64.0, "note": ""},
    }
    catchup["ratio"] = catchup_ratios(catchup["pipeline"], catchup["echo"])
    return {
        "run_id": "r1", "started_at": "2030-01-01T00:00:00+00:00", "command": "streamrec bench",
        "config": {"users": 50000, "seconds": 20, "events": 300000, "partitions": 8},
        "machine": {"cpu": "Test CPU", "usable_cores": 2, "memory_gib": 8.0, "python": "3.11.7"},
        "servers": {"broker": {"kind": "embedded Tansu"}, "redis": {"kind": "embedded Valkey", "version": "9.1"}},
        "live": {"pipeline": pipeline, "echo": echo, "ratio": live_ratios(pipeline, echo)},
        "catchup": catchup,
        "notes": ["a note"],
    }


def test_live_ratios_are_pipeline_over_echo_for_rates_both_ran() -> None:
    ratios = _results()["live"]["ratio"]
    assert [r["offered_rate"] for r in ratios] == [500, 2000]  # 5000 was skipped by the pipeline
    first, second = ratios
    assert first["processed_rate"] == 1.0 and first["latency_ms.p50"] == 10.0 and first["latency_ms.p99"] == 10.0
    assert first["cpu_cores"] == 5.0 and first["rss_mib"] == pytest.approx(18.75)
    assert second["processed_rate"] == 0.6 and second["latency_ms.p99"] == 180.0
    assert first["lag_end"] is None  # 0 / 0 is no ratio


def test_catchup_ratios() -> None:
    ratio = _results()["catchup"]["ratio"]
    assert ratio["events_per_s"] == 0.05 and ratio["elapsed_s"] == 20.0 and ratio["peak_rss_mib"] == 12.5
    assert ratio["cpu_s"] == 37.5 and ratio["wall_s"] == pytest.approx(222 / 16)


def test_markdown_tables() -> None:
    text = markdown(_results())
    lines = text.splitlines()
    assert "Test CPU, 2 cores, 8.0 GiB RAM" in lines[0]
    header = next(line for line in lines if line.startswith("| offered/s"))
    assert header.count("|") == 14
    assert "| 500 | pipeline | 500 | 500 | 450 | 120 | 260 | 400 | 0 | 0.5 | 0.50 | 900 |  |" in lines
    assert "| 500 | echo | 500 | 500 | 450 | 12 | 26 | 40 | 0 | 0.5 | 0.10 | 48 |  |" in lines
    assert "| 500 | pipeline ÷ echo | 1.00× | 1.00× | 1.00× | 10.00× | 10.00× | 10.00× | - | 1.00× | 5.00× | 18.75× |  |" in lines
    assert any(line.startswith("| 5,000 | pipeline | - |") and "still 9,000 events behind" in line for line in lines)
    assert "| pipeline | 300,000 | 1,500 | 200.0 | 222.0 | 300.0 | 1.50 | 800 |  |" in lines
    assert "| pipeline ÷ echo |  | 0.05× | 20.00× | 13.88× | 37.50× | 1.88× | 12.50× |  |" in lines
    assert lines[-1] == "- a note"
    # Every table row has as many cells as its header.
    for line in lines:
        if line.startswith(("| 500", "| 2,000", "| 5,000")):
            assert line.count("|") == 14


def test_formatting() -> None:
    assert fmt(1234567.891, 1) == "1,234,567.9" and fmt(None) == "-" and fmt("x") == "x"
    assert fmt_ratio(12.345) == "12.35×" and fmt_ratio(0.05) == "0.05×" and fmt_ratio(True) == "-"


def test_json_and_png_are_written(tmp_path: Path) -> None:
    results = _results()
    path = write_json(results, tmp_path / "out" / "bench.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(results))
    png = plot(results, tmp_path / "out" / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    only_catchup = {**results, "live": None}
    assert plot(only_catchup, tmp_path / "c.png").stat().st_size > 5_000


def test_machine_facts() -> None:
    facts = machine_facts()
    assert facts["cores"] >= 1 and 1 <= facts["usable_cores"] <= facts["cores"]
    assert facts["python"].count(".") == 2 and facts["memory_gib"] > 0
    assert facts["packages"]["faust-streaming"] and facts["packages"]["aiokafka"]
    assert len(facts["load_average_at_start"]) == 3
    assert isinstance(facts["simd"], list) and set(facts["simd"]) <= set(SIMD_FLAGS)
    source = source_revision()
    assert source is not None and len(source["commit"]) == 40 and isinstance(source["modified_files"], list)
