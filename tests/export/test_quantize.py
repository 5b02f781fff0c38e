"""int8 dense layers for the pair scorer: the rewrite, its accuracy, and int8 bundles end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from export.quantize import QuantizeError, input_quantization, input_ranges, quantize_dense_layers, quantized_weights
from export.ranker_export import (
    INT8_TOLERANCE,
    RANKER_TOLERANCE,
    ParityError,
    export_model_bundle,
    export_onnx,
    item_model_path,
    quantize_pair_scorer,
    random_inputs,
    validate_parity,
)
from models.onnx_ranker import OnnxRanker
from models.onnx_session import CPU_PROVIDER, create_session
from models.ranker import Ranker
from models.ranker_features import INPUT_NAMES, ITEM_OUTPUT_NAME, OUTPUT_NAME, RankerInputs


def _model(seed: int = 0) -> Ranker:
    torch.manual_seed(seed)
    return Ranker(dim=24, text_dim=16, rank=4, hidden=(16, 8)).eval()


def _onnx_scores(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    items = create_session(item_model_path(path), [CPU_PROVIDER])
    (features,) = items.run([ITEM_OUTPUT_NAME], {"item_vectors": feeds["item_vectors"]})
    pair_feeds = {**{k: v for k, v in feeds.items() if k != "item_vectors"}, "item_features": features}
    return create_session(path, [CPU_PROVIDER]).run([OUTPUT_NAME], pair_feeds)[0]


def test_weights_round_trip_within_half_a_step_per_output_column() -> None:
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((40, 6)) * np.array([0.01, 0.1, 1, 10, 100, 0])).astype(np.float32)
    q, scale = quantized_weights(weight)
    assert q.dtype == np.int8 and scale.shape == (6,) and np.abs(q).max() == 127
    assert (np.abs(q * scale - weight) <= scale / 2 * (1 + 1e-5)).all()  # each column its own step
    assert not q[:, 5].any()  # an all-zero column stays zero


def test_the_cross_and_hidden_layers_become_int8_and_the_logit_layer_stays_float(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "ranker.onnx"
    export_onnx(model, path)
    float_ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    quantize_pair_scorer(model, path)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("MatMulIntegerToFloat") == ops.count("QuantizeLinear") == 3  # one cross, two hidden layers
    assert ops.count("Gemm") == float_ops.count("Gemm") - 3 == 1  # the last layer (one output) is float
    assert not {t.name for t in graph.graph.initializer} & {"ranker.mlp.0.weight", "ranker.cross.0.weight"}
    feeds = random_inputs(model, pairs=500, users=5, items=200, seed=1)
    with torch.no_grad():
        want = model(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES)).numpy()
    got = _onnx_scores(path, feeds)
    diff = np.abs(got - want)
    assert diff.max() <= INT8_TOLERANCE and diff.max() > RANKER_TOLERANCE  # close, and really quantized
    assert np.corrcoef(got, want)[0, 1] > 0.99


def test_a_graph_without_a_dense_layer_is_refused() -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    with pytest.raises(QuantizeError, match="no Gemm layer with constant weights"):
        quantize_dense_layers(helper.make_model(graph), {})
    with pytest.raises(QuantizeError, match="no Gemm layer with constant weights .* to calibrate"):
        input_ranges(helper.make_model(graph), [{"x": np.zeros(2, np.float32)}])


def _one_gemm() -> onnx.ModelProto:
    w = onnx.numpy_helper.from_array(np.array([[1.0, -1.0], [0.5, 2.0]], np.float32), "w")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_input_ranges_are_calibrated_over_every_call_and_a_layer_without_one_is_refused() -> None:
    model = _one_gemm()
    calls = [{"x": np.array([[0.5, -2.0]], np.float32)}, {"x": np.array([[3.0, 1.0], [0.0, 0.0]], np.float32)}]
    assert input_ranges(model, calls) == {"x": (-2.0, 3.0)}
    with pytest.raises(QuantizeError, match="no calibrated input range for x"):
        quantize_dense_layers(model, {"z": (0.0, 1.0)})
    with pytest.raises(QuantizeError, match="gave no finite value for x"):
        input_ranges(model, [{"x": np.zeros((0, 2), np.float32)}])
    with pytest.raises(QuantizeError, match="must be finite"):
        input_quantization(0.0, float("inf"))


def test_an_input_beyond_its_calibrated_range_saturates_and_zero_is_exact() -> None:
    quantized, layers = quantize_dense_layers(_one_gemm(), {"x": (-1.0, 2.0)})
    session = create_session(quantized.SerializeToString(), [CPU_PROVIDER])
    x = np.array([[0.0, 0.0], [1.0, 0.5], [50.0, -50.0]], np.float32)
    got = session.run(None, {"x": x})[0]
    assert layers == 1 and (got[0] == 0.0).all()  # zero quantizes exactly
    np.testing.assert_allclose(got[1], x[1] @ np.array([[1.0, -1.0], [0.5, 2.0]]), atol=0.05)
    np.testing.assert_allclose(got[2], np.array([2.0, -1.0]) @ np.array([[1.0, -1.0], [0.5, 2.0]]), atol=0.05)


def test_a_pairs_int8_score_does_not_depend_on_the_other_pairs_in_the_call(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "ranker.onnx"
    export_onnx(model, path)
    quantize_pair_scorer(model, path)
    feeds = random_inputs(model, pairs=600, users=6, items=200, seed=4)
    batch = _onnx_scores(path, feeds)
    outlying = {**feeds, "dense": feeds["dense"].copy()}
    outlying["dense"][0] *= 50.0  # one pair far beyond the calibrated range
    with_outlier = _onnx_scores(path, outlying)
    np.testing.assert_allclose(with_outlier[1:], batch[1:], rtol=0, atol=1e-5)
    for user in range(6):
        mine = feeds["user_index"] == user
        alone = _onnx_scores(path, {**feeds, "user_index": feeds["user_index"][mine],
                                    "item_rows": feeds["item_rows"][mine], "dense": feeds["dense"][mine]})
        np.testing.assert_allclose(alone, batch[mine], rtol=0, atol=1e-5)


def test_an_int8_bundle_records_its_precision_and_checks_and_is_served(tmp_path: Path) -> None:
    model = _model()
    sample = random_inputs(model, pairs=400, users=4, items=100, seed=2)
    bundle, report = export_model_bundle(model, tmp_path, embedding_space=None, training={"fingerprint": "ab12"},
                                         sample=sample, precision="int8")
    assert bundle.precision == "int8" and report.tolerance == INT8_TOLERANCE
    parity = bundle.meta["parity"]
    assert parity["float32_max_abs_diff"] <= RANKER_TOLERANCE < parity["max_abs_diff"] <= INT8_TOLERANCE
    assert 0.9 <= parity["top10_agreement"] <= 1.0 and parity["min_top10_agreement"] == 0.9  # 4 users, ~100 pairs each
    assert parity["int8_calibration_pairs"] == {"random": 4096, "real": 400}
    held_out = parity["int8_held_out"]  # a graph calibrated on users 0 and 2, checked on users 1 and 3
    assert held_out["users"] == 2 and held_out["pairs"] == int((sample["user_index"] % 2 == 1).sum())
    assert 0.0 < held_out["max_abs_diff"] and held_out["top10_agreement"] >= 0.9
    assert len(parity["int8_input_ranges"]) == 3
    lows = sorted(low for low, _ in parity["int8_input_ranges"].values())
    assert len(lows) == 3 and lows[0] < 0.0 and lows[-1] == 0.0  # the last hidden layer reads a ReLU
    feeds = random_inputs(model, pairs=300, users=3, items=100, seed=3)
    scorer = OnnxRanker(bundle.model_path, bundle.version, item_model_path=bundle.item_model_path)
    got = scorer.run(RankerInputs(feeds["user_vectors"], feeds["user_index"], feeds["item_rows"], feeds["dense"]),
                     feeds["item_vectors"])
    with torch.no_grad():
        want = model(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES)).numpy()
    np.testing.assert_allclose(got, want, atol=INT8_TOLERANCE, rtol=0)
    float_bundle, float_report = export_model_bundle(model, tmp_path / "f", embedding_space=None,
                                                     training={"fingerprint": "ab12"}, sample=sample)
    assert float_bundle.precision == "float32" and float_report.top_k_agreement == 1.0


def test_an_int8_export_beyond_its_tolerance_writes_nothing(tmp_path: Path) -> None:
    model = _model()
    with pytest.raises(ParityError, match=r"max \|diff\| = .* > tolerance 1\.0e-06"):
        export_model_bundle(model, tmp_path / "b", embedding_space=None, training={}, precision="int8",
                            tolerance=1e-6)
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    with pytest.raises(ValueError, match="precision must be one of float32, int8, got 'fp16'"):
        export_model_bundle(model, tmp_path / "b", embedding_space=None, training={}, precision="fp16")


def test_the_int8_check_catches_a_model_that_is_not_the_one_quantized(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "ranker.onnx"
    export_onnx(model, path)
    quantize_pair_scorer(model, path)
    with torch.no_grad():
        model.mlp[-1].bias += 1.0  # the PyTorch model no longer is what was quantized
    with pytest.raises(ParityError, match=r"differs from PyTorch by max \|diff\| = 1\.0"):
        validate_parity(model, path, tolerance=INT8_TOLERANCE)


def test_an_int8_export_that_reorders_the_real_top_10_is_refused_though_within_tolerance(tmp_path: Path) -> None:
    model = _model()
    sample = random_inputs(model, pairs=400, users=4, items=100, seed=2)
    sample["dense"][0, :] = 20.0  # one outlying real pair widens the calibrated input ranges: every pair coarsens
    # within INT8_TOLERANCE (that check comes first), but the ranking is not the model's
    with pytest.raises(ParityError, match=r"keeps \d+\.\d% of each user's top 10 on the real validation pairs, "
                                          r"below the 90% required"):
        export_model_bundle(model, tmp_path / "b", embedding_space=None, training={}, sample=sample, precision="int8")
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    bundle, report = export_model_bundle(model, tmp_path / "f", embedding_space=None, training={}, sample=sample)
    assert bundle.precision == "float32" and report.top_k_agreement == 1.0  # the float graph keeps the ranking


def test_int8_ranges_that_do_not_hold_for_users_left_out_of_calibration_are_refused(tmp_path: Path) -> None:
    model = _model()
    sample = random_inputs(model, pairs=400, users=4, items=100, seed=2)
    odd = sample["user_index"] % 2 == 1
    mean, std = model.dense_mean.numpy(), model.dense_std.numpy()
    shifted = np.random.default_rng(0).standard_normal((int(odd.sum()), 3))
    sample["dense"][np.ix_(odd, [0, 1, 2])] = mean[:3] + std[:3] * (8.0 + shifted)  # beyond the even users' range
    # Calibrated on every real pair, the int8 graph passes the export's check on those same pairs ...
    path = tmp_path / "seen" / "ranker.onnx"
    path.parent.mkdir()
    export_onnx(model, path)
    quantize_pair_scorer(model, path, sample)
    seen = validate_parity(model, path, sample, INT8_TOLERANCE, 0.9)
    assert seen.top_k_agreement is not None and seen.top_k_agreement >= 0.9
    # ... but its ranges do not generalise: calibrated without users 1 and 3, it reorders their lists.
    with pytest.raises(ParityError, match=r"int8 input ranges calibrated without half the real users do not hold on "
                                          r"those users' pairs: .* keeps \d+\.\d% of each user's top 10"):
        export_model_bundle(model, tmp_path / "b", embedding_space=None, training={}, sample=sample, precision="int8")
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_a_worker_warns_when_an_int8_bundle_lands_on_a_gpu_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from streams import model_loading
    from streams.settings import Settings

    model = _model()
    bundle, _ = export_model_bundle(model, tmp_path, embedding_space="s", training={"fingerprint": "ab12"},
                                    precision="int8")
    caplog.set_level("INFO")
    on_cpu = model_loading.load_ranker(Settings(ranker_dir=tmp_path, providers=[CPU_PROVIDER]), 24, "s")
    assert on_cpu is not None and on_cpu.device_type == "cpu"  # what int8 is made for: no warning
    assert "int8 dense layers" not in caplog.text
    settings = Settings(ranker_dir=tmp_path, providers=["CUDAExecutionProvider", CPU_PROVIDER])

    class OnTheGpu(OnnxRanker):
        """What a session that took the CUDA provider reports (this machine has none to open)."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            self.provider, self.device_type = "CUDAExecutionProvider", "cuda"

    monkeypatch.setattr(model_loading, "OnnxRanker", OnTheGpu)
    assert model_loading.load_ranker(settings, 24, "s") is not None
    assert (f"ranker {bundle.version} has int8 dense layers, which are made for onnxruntime's CPU provider: "
            "on CUDAExecutionProvider export a float32 bundle") in caplog.text
