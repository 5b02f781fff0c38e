"""`streamrec train`, `export`, `evaluate --model` and `bench scoring` on a tiny generated log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from export.bundle import newest_bundle
from streams.cli import main
from tests.export.ranker_logs import walk_log


def _write_log(path: Path) -> Path:
    with path.open("w") as f:
        for ev in walk_log(users=80).interactions:
            f.write(json.dumps({"event_id": "e", "user_id": ev.user_id, "item_id": ev.item_id, "kind": ev.kind,
                                "ts": ev.ts}) + "\n")
    return path


def test_train_export_and_evaluate_with_the_ranker(tmp_path: Path) -> None:
    log = _write_log(tmp_path / "shop.jsonl")
    bundles, ckpt = tmp_path / "bundles", tmp_path / "r.pt"
    runner = CliRunner()
    res = runner.invoke(main, ["train", str(log), "--format", "jsonl", "--share", "0.4", "--epochs", "2",
                               "--negatives", "5", "--out", str(ckpt), "--export-to", str(bundles)])
    assert res.exit_code == 0, res.output
    assert "HR@10" in res.output and "AUC" in res.output and ckpt.is_file()
    bundle = newest_bundle(bundles)
    assert bundle is not None and bundle.meta["training"]["events_used"] == 384
    assert bundle.meta["metrics"]["val_auc"] is not None

    res = runner.invoke(main, ["export", str(ckpt), "--to", str(tmp_path / "again")])
    assert res.exit_code == 0, res.output
    assert "max |diff|" in res.output and newest_bundle(tmp_path / "again") is not None
    res = runner.invoke(main, ["export", str(ckpt), "--to", str(tmp_path / "int8"), "--precision", "int8"])
    assert res.exit_code == 0, res.output
    int8 = newest_bundle(tmp_path / "int8")
    assert "(int8)" in res.output and int8 is not None and int8.precision == "int8"
    assert int8.meta["parity"]["tolerance"] == 0.5 and int8.meta["parity"]["top10_agreement"] is not None
    held_out = int8.meta["parity"]["int8_held_out"]
    assert f"a copy calibrated without {held_out['users']} of the real users kept" in " ".join(res.output.split())

    out = tmp_path / "eval.json"
    res = runner.invoke(main, ["evaluate", str(log), "--format", "jsonl", "--warmup", "0.4", "--model", str(bundles),
                               "--json", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    figures = result["figures"]
    assert {"product", "product+ranker", "popularity"} <= set(figures)
    assert figures["product"]["n"] == figures["product+ranker"]["n"] > 0  # the same events, the same candidates
    assert result["ranker"]["version"] == bundle.version and result["ranker"]["same_log"]
    assert result["ranker"]["precision"] == "float32"
    assert not result["ranker"]["overlaps_scored_events"]
    assert "no scored event was seen in training" in " ".join(res.output.split())  # rich wraps lines
    assert result["ranker"]["reference_check"].startswith("reference scores reproduced: max |served - PyTorch| = ")
    assert "reference scores reproduced" in " ".join(res.output.split())

    res = runner.invoke(main, ["evaluate", str(log), "--format", "jsonl", "--warmup", "0.1", "--model", str(bundles)])
    assert res.exit_code == 0, res.output
    assert "WARNING" in res.output and "were training data" in " ".join(res.output.split())

    (int8.path / "ranker.onnx").write_bytes(b"not a model")  # a bundle onnxruntime cannot open: a clear error
    res = runner.invoke(main, ["evaluate", str(log), "--format", "jsonl", "--model", str(int8.path)])
    assert res.exit_code != 0 and "cannot use the ranker in" in res.output and "Protobuf parsing failed" in res.output


def test_train_and_export_refuse_bad_input_clearly(tmp_path: Path) -> None:
    log = _write_log(tmp_path / "shop.jsonl")
    runner = CliRunner()
    res = runner.invoke(main, ["train", str(log), "--format", "jsonl", "--events", "999999"])
    assert res.exit_code != 0 and "training needs between 2 and" in res.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    res = runner.invoke(main, ["export", str(bad), "--to", str(tmp_path / "b")])
    assert res.exit_code != 0 and "not a streamrec ranker checkpoint" in res.output
    res = runner.invoke(main, ["evaluate", str(log), "--format", "jsonl", "--model", str(tmp_path)])
    assert res.exit_code != 0 and "holds no ranker bundle" in res.output
    res = runner.invoke(main, ["export", str(bad), "--precision", "fp16"])
    assert res.exit_code != 0 and "'fp16' is not one of 'float32', 'int8'" in res.output


def test_bench_scoring_writes_its_report_and_bench_keeps_its_options(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["bench", "--help"])
    assert res.exit_code == 0 and "--mode" in res.output and "scoring" in res.output
    out = tmp_path / "scoring"
    res = runner.invoke(main, ["bench", "scoring", "--batches", "1,64", "--rounds", "2", "--seconds", "0.05",
                               "--items", "500", "--profile-calls", "4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "scoring.json").read_text())
    for row in data["rows"]:  # onnxruntime's profiler split each batch size's calls by operator
        p = row["profile"]
        assert p["calls"] == 4 and p["matrix_us_per_call"] > 0 and 0 < p["matrix_share"] < 1
        assert p["kernel_us_per_call"] == pytest.approx(sum(p["by_operator_us"].values()), abs=0.1)
        assert p["ceiling_ort_over_eager"] > 0
    assert "ceiling on ORT ÷ eager" in (out / "scoring.md").read_text()
    assert [r["batch"] for r in data["rows"]] == [1, 64]
    for row in data["rows"]:
        assert row["onnxruntime-cpu"]["candidates_per_s"] > 0 and row["pytorch-eager-cpu"]["candidates_per_s"] > 0
        assert row["onnxruntime-cpu-one-graph"]["calls"] >= 3 and row["pytorch-eager-cpu-one-graph"]["calls"] >= 3
        assert row["onnxruntime-cpu-int8"]["candidates_per_s"] > 0 and row["int8_over_eager"] > 0
        assert row["pytorch-eager-cpu-int8"]["calls"] >= 3 and row["int8_over_eager_int8"] > 0
    for engine, diff in data["int8_max_abs_diff_on_bench_inputs"].items():  # both int8 engines quantized
        assert 1e-5 < diff <= 0.5, engine
    assert data["eager_mode"] == "torch.inference_mode()" and data["item_features_pass"]["items"] == 500
    assert data["item_features_pass"]["onnxruntime_ms"] > 0 and data["parity_max_abs_diff"] <= 1e-4
    assert 1e-4 < data["int8_parity_max_abs_diff"] <= 0.5  # quantized, and within its tolerance
    assert data["gpu"].startswith("not measured") and (out / "scoring.png").stat().st_size > 0
    assert "| 64 |" in (out / "scoring.md").read_text()
    res = runner.invoke(main, ["bench", "scoring", "--batches", "0,5"])
    assert res.exit_code != 0 and "between 1 and 1,000,000" in res.output


def test_train_and_bench_scoring_take_the_ranker_shape(tmp_path: Path) -> None:
    log = _write_log(tmp_path / "shop.jsonl")
    ckpt = tmp_path / "small.pt"
    runner = CliRunner()
    res = runner.invoke(main, ["train", str(log), "--format", "jsonl", "--share", "0.4", "--epochs", "1",
                               "--negatives", "5", "--out", str(ckpt), "--rank", "4", "--hidden", "8",
                               "--cross-layers", "0"])
    assert res.exit_code == 0, res.output
    from export.training import load_checkpoint

    model, saved = load_checkpoint(ckpt)
    assert (model.config.rank, model.config.hidden, model.config.cross_layers) == (4, (8,), 0)
    assert saved["train_config"]["hidden"] == [8] and len(model.cross) == 0

    out = tmp_path / "scoring"
    res = runner.invoke(main, ["bench", "scoring", "--batches", "8", "--rounds", "1", "--seconds", "0.02",
                               "--items", "100", "--rank", "8", "--hidden", "32,16", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "scoring.json").read_text())
    assert "rank 8, hidden 32,16, 1 cross layer(s)" in data["model"]
    assert data["config"]["shape"] == {"rank": 8, "hidden": [32, 16]}

    res = runner.invoke(main, ["bench", "scoring", "--checkpoint", str(ckpt), "--rank", "8"])
    assert res.exit_code != 0 and "brings its own shape" in res.output
    res = runner.invoke(main, ["train", str(log), "--format", "jsonl", "--hidden", "64,x"])
    assert res.exit_code != 0 and "comma-separated integers such as 64,32" in res.output
    res = runner.invoke(main, ["train", str(log), "--format", "jsonl", "--hidden", "0"])
    assert res.exit_code != 0 and "between 1 and 4096" in res.output
