"""``streamrec bench retrieval``: numpy against onnxruntime candidate generation."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from models.candidates import generate_candidates
from models.covisitation import CoVisitation
from models.trending import Trending
from streams.bench.retrieval import build_catalog, build_users, candidate_pairs
from streams.cli import main


def test_the_catalog_and_users_give_every_source_its_candidates() -> None:
    index, users = build_catalog(300, 16, seed=1), build_users(3, 16, seed=2)
    assert index.size == 300 and len(users) == 3
    found = generate_candidates(users, index, CoVisitation(), Trending(), per_source=10)
    pairs = candidate_pairs(found)
    assert len(pairs) == len(found) and {u for u, _, _ in pairs} == {0, 1, 2}
    assert {s for _, _, s in pairs} == {0, 2}  # search and interest (no co-visits, nothing trending)
    assert pairs != candidate_pairs(generate_candidates(users, index, CoVisitation(), Trending(), per_source=5))


def test_bench_retrieval_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "retrieval"
    res = CliRunner().invoke(main, ["bench", "retrieval", "--items", "200,500", "--users", "1,8", "--dim", "16",
                                    "--rounds", "2", "--seconds", "0.02", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "retrieval.json").read_text())
    assert [(r["items"], r["users"]) for r in data["rows"]] == [(200, 1), (200, 8), (500, 1), (500, 8)]
    for row in data["rows"]:
        assert row["same_candidates"] and 100 * row["users"] <= row["candidates"] <= 200 * row["users"]
        assert row["numpy"]["calls"] >= 6 and row["onnxruntime-cpu"]["median_ms"] > 0 and row["ort_over_numpy"] > 0
    assert data["gpu"].startswith("not measured") and data["config"]["threads"] == 1
    assert "| 500 | 8 |" in (out / "retrieval.md").read_text() and "numpy ÷ ORT" in res.output


def test_bench_retrieval_refuses_bad_sizes() -> None:
    res = CliRunner().invoke(main, ["bench", "retrieval", "--items", "10,x"])
    assert res.exit_code == 2 and "catalog sizes must be comma-separated integers, got '10,x'" in res.output
    res = CliRunner().invoke(main, ["bench", "retrieval", "--users", "0"])
    assert res.exit_code == 2 and "users per call must be between 1 and 1,000,000" in res.output
