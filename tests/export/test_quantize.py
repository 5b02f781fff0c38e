"""int8 dense layers for the pair scorer: the rewrite, its accuracy, and int8 bundles end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from export.quantize import QuantizeError, quantize_dense_layers, quantized_weights
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
    assert ops.count("DynamicQuantizeMatMul") == 3  # one cross layer, two hidden layers
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
        quantize_dense_layers(helper.make_model(graph))


def test_an_int8_bundle_records_its_precision_and_checks_and_is_served(tmp_path: Path) -> None:
    model = _model()
    sample = random_inputs(model, pairs=400, users=4, items=100, seed=2)
    bundle, report = export_model_bundle(model, tmp_path, embedding_space=None, training={"fingerprint": "ab12"},
                                         sample=sample, precision="int8")
    assert bundle.precision == "int8" and report.tolerance == INT8_TOLERANCE
    parity = bundle.meta["parity"]
    assert parity["float32_max_abs_diff"] <= RANKER_TOLERANCE < parity["max_abs_diff"] <= INT8_TOLERANCE
    assert 0.9 <= parity["top10_agreement"] <= 1.0 and parity["min_top10_agreement"] == 0.9  # 4 users, ~100 pairs each
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
    sample["dense"][0, :] = 20.0  # one outlying pair coarsens the per-call input scale of every pair
    # within INT8_TOLERANCE (that check comes first), but the ranking is not the model's
    with pytest.raises(ParityError, match=r"keeps \d+\.\d% of each user's top 10 on the real validation pairs, "
                                          r"below the 90% required"):
        export_model_bundle(model, tmp_path / "b", embedding_space=None, training={}, sample=sample, precision="int8")
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    bundle, report = export_model_bundle(model, tmp_path / "f", embedding_space=None, training={}, sample=sample)
    assert bundle.precision == "float32" and report.top_k_agreement == 1.0  # the float graph keeps the ranking
