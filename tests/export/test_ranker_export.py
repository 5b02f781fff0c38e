"""ONNX export of the ranker: round-trip parity, bundles, provider fallback, the scorer in the recommender."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export.bundle import BundleError, newest_bundle, read_bundle, resolve_bundle
from export.ranker_export import (
    RANKER_TOLERANCE,
    ParityError,
    export_one_graph_onnx,
    export_onnx,
    random_inputs,
    spread_item_features,
    validate_parity,
)
from models.onnx_ranker import OnnxRanker
from models.onnx_session import CPU_PROVIDER
from models.ranker import Ranker
from models.ranker_features import (
    DENSE_FEATURES,
    INPUT_NAMES,
    PAIR_INPUT_NAMES,
    RankerInputs,
)
from tests.export.ranker_logs import tiny_bundle


def _torch_scores(model: Ranker, feeds: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES)).numpy()


def _inputs(feeds: dict[str, np.ndarray]) -> RankerInputs:
    return RankerInputs(feeds["user_vectors"], feeds["user_index"], feeds["item_rows"], feeds["dense"])


def test_export_round_trip_matches_pytorch_at_any_batch_size(tmp_path: Path) -> None:
    bundle, model = tiny_bundle(tmp_path, dim=24, text_dim=16, space="space-a")
    meta = json.loads((bundle.path / "bundle.json").read_text())
    assert [i["name"] for i in meta["inputs"]] == list(PAIR_INPUT_NAMES)
    assert meta["inputs"][1]["shape"] == ["pairs"] and meta["outputs"][0]["shape"] == ["pairs"]  # dynamic axes
    assert meta["inputs"][2]["shape"] == ["items", 13]  # precomputed item features: 3 x rank 4 + the image mask
    assert meta["item_model"]["inputs"][0] == {"name": "item_vectors", "dtype": "float32", "shape": ["items", 24]}
    assert bundle.item_model_path is not None and bundle.item_model_path.is_file()
    assert meta["dimensions"] == {"dim": 24, "text_dim": 16, "image_dim": 8, "n_dense": len(DENSE_FEATURES)}
    assert meta["parity"]["max_abs_diff"] <= RANKER_TOLERANCE and meta["embedding_space"] == "space-a"
    ranker = OnnxRanker(bundle.model_path, bundle.version)
    bound = OnnxRanker(bundle.model_path, bundle.version, io_binding=True)  # the GPU code path, on the CPU
    for pairs in (1, 3, 257, 5000):
        feeds = random_inputs(model, pairs=pairs, users=7, items=50, seed=pairs)
        want = _torch_scores(model, feeds)
        got = ranker.run(_inputs(feeds), feeds["item_vectors"])
        np.testing.assert_allclose(got, want, atol=RANKER_TOLERANCE, rtol=0)
        again = bound.run(_inputs(feeds), feeds["item_vectors"], key=(1, pairs, 0))
        np.testing.assert_allclose(again, want, atol=RANKER_TOLERANCE, rtol=0)


def test_item_features_are_reused_until_the_catalog_version_changes(tmp_path: Path) -> None:
    bundle, model = tiny_bundle(tmp_path, dim=24, text_dim=16)
    ranker = OnnxRanker(bundle.model_path, bundle.version)
    feeds = random_inputs(model, pairs=300, users=5, items=40, seed=3)
    first = ranker.item_features(feeds["item_vectors"], key=(1, 7, 40))
    with torch.no_grad():
        want = spread_item_features(model.item_features(torch.from_numpy(feeds["item_vectors"]))).numpy()
    np.testing.assert_allclose(first, want, atol=RANKER_TOLERANCE, rtol=0)
    changed = feeds["item_vectors"].copy()
    changed[:] = changed[::-1]  # another catalog
    assert ranker.item_features(changed, key=(1, 7, 40)) is first  # same version: not recomputed
    scores_same_key = ranker.run(_inputs(feeds), changed, key=(1, 7, 40))
    np.testing.assert_allclose(scores_same_key, _torch_scores(model, feeds), atol=RANKER_TOLERANCE, rtol=0)
    fresh = ranker.item_features(changed, key=(1, 8, 40))  # the index's version moved: recomputed
    np.testing.assert_allclose(fresh, want[::-1], atol=RANKER_TOLERANCE, rtol=0)
    scores = ranker.run(_inputs(feeds), changed, key=(1, 8, 40))
    np.testing.assert_allclose(scores, _torch_scores(model, {**feeds, "item_vectors": changed}),
                               atol=RANKER_TOLERANCE, rtol=0)


@pytest.mark.parametrize(("dim", "text_dim", "cross_layers", "hidden"), [
    (8, 8, 1, (8,)),  # text-only items: no image projection
    (24, 16, 2, (8, 4)),  # a second cross layer keeps its own residual
    (24, 16, 0, ()),  # no cross layer, one linear layer to the logit
])
def test_export_matches_pytorch_for_other_shapes(tmp_path: Path, dim: int, text_dim: int, cross_layers: int,
                                                 hidden: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    model = Ranker(dim=dim, text_dim=text_dim, rank=4, hidden=hidden, cross_layers=cross_layers).eval()
    path = tmp_path / "ranker.onnx"
    export_onnx(model, path)
    report = validate_parity(model, path)  # raises beyond RANKER_TOLERANCE
    assert report.max_abs_diff <= RANKER_TOLERANCE and report.n_checked > 2000
    feeds = random_inputs(model, pairs=200, users=6, items=30, seed=5)
    np.testing.assert_allclose(OnnxRanker(path, "v").run(_inputs(feeds), feeds["item_vectors"]),
                               _torch_scores(model, feeds), atol=RANKER_TOLERANCE, rtol=0)


def test_a_one_graph_ranker_reading_item_vectors_is_still_served(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Ranker(dim=24, text_dim=16, rank=4, hidden=(8,)).eval()
    path = tmp_path / "old.onnx"
    export_one_graph_onnx(model, path)
    ranker = OnnxRanker(path, "old")
    assert ranker.item_session is None
    feeds = random_inputs(model, pairs=100, users=5, items=40, seed=4)
    np.testing.assert_allclose(ranker.run(_inputs(feeds), feeds["item_vectors"]), _torch_scores(model, feeds),
                               atol=RANKER_TOLERANCE, rtol=0)


def test_a_pair_scorer_without_its_item_model_is_refused(tmp_path: Path) -> None:
    bundle, _ = tiny_bundle(tmp_path)
    assert bundle.item_model_path is not None
    bundle.item_model_path.unlink()
    with pytest.raises(ValueError, match="item model .*item_features.onnx is missing"):
        OnnxRanker(bundle.model_path, bundle.version)
    with pytest.raises(BundleError, match="item model file item_features.onnx is missing"):
        read_bundle(bundle.path)


def test_a_mismatching_export_fails_with_the_size_of_the_difference(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Ranker(dim=8, text_dim=6, rank=4, hidden=(8,)).eval()
    path = tmp_path / "r.onnx"
    export_onnx(model, path)
    with torch.no_grad():
        model.mlp[-1].bias += 0.5  # the PyTorch model no longer is what was exported
    with pytest.raises(ParityError, match=r"differs from PyTorch by max \|diff\| = 5\.0+e-01"):
        validate_parity(model, path)


def test_a_failed_parity_check_writes_no_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import export.ranker_export as rx

    real_export = rx.export_onnx

    def drifted(model: Ranker, out: Path) -> None:
        other = Ranker(dim=8, text_dim=6, rank=4, hidden=(8,)).eval()  # other weights
        real_export(other, out)

    monkeypatch.setattr(rx, "export_onnx", drifted)
    with pytest.raises(ParityError):
        tiny_bundle(tmp_path / "bundles")
    bundles = tmp_path / "bundles"
    assert not bundles.exists() or not any(bundles.iterdir())  # no bundle, no leftover temp folder


def test_newest_bundle_skips_broken_and_half_written_ones(tmp_path: Path) -> None:
    assert newest_bundle(tmp_path) is None
    old, _ = tiny_bundle(tmp_path, created_at=1_767_000_000.0, fingerprint="aaaaaaaa")
    new, _ = tiny_bundle(tmp_path, created_at=1_767_000_100.0, fingerprint="bbbbbbbb")
    (tmp_path / ".ranker-being-written").mkdir()
    broken = tmp_path / "ranker-99999999T000000Z-broken"
    broken.mkdir()
    (broken / "bundle.json").write_text("{")
    assert newest_bundle(tmp_path).version == new.version  # type: ignore[union-attr]
    assert resolve_bundle(tmp_path).version == new.version
    assert resolve_bundle(old.path).version == old.version
    with pytest.raises(BundleError, match="holds no ranker bundle"):
        resolve_bundle(tmp_path / ".ranker-being-written")
    (new.path / "ranker.onnx").unlink()
    with pytest.raises(BundleError, match="model file ranker.onnx is missing"):
        read_bundle(new.path)
    assert newest_bundle(tmp_path).version == old.version  # type: ignore[union-attr]


def test_a_bundle_of_another_item_space_is_refused(tmp_path: Path) -> None:
    bundle, _ = tiny_bundle(tmp_path, dim=8, text_dim=6, space="minilm:128")
    bundle.check_fits(8, "minilm:128", DENSE_FEATURES)
    with pytest.raises(BundleError, match="space 'minilm:128'.*'other'"):
        bundle.check_fits(8, "other", DENSE_FEATURES)
    with pytest.raises(BundleError, match="expects 8-d item vectors, the item index has 16"):
        bundle.check_fits(16, None, DENSE_FEATURES)


def test_cuda_requested_without_a_gpu_falls_back_to_the_cpu_and_says_so(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    from streams.metrics import Metrics
    from streams.model_loading import load_ranker
    from streams.settings import Settings

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.fail("this test checks the CPU fallback; it needs an onnxruntime without CUDA")
    bundle, _ = tiny_bundle(tmp_path, dim=8, text_dim=6, space="s")
    caplog.set_level("INFO")
    metrics = Metrics()
    settings = Settings(ranker_dir=tmp_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    ranker = load_ranker(settings, 8, "s", metrics)
    assert ranker is not None and ranker.provider == CPU_PROVIDER and not ranker.io_binding
    assert "CUDAExecutionProvider requested but not available" in caplog.text
    assert f"ranker {bundle.version} loaded" in caplog.text and "runs on CPUExecutionProvider" in caplog.text
    text = metrics.render().decode()
    assert 'streamrec_execution_provider{model="ranker",provider="CPUExecutionProvider"} 1.0' in text
    assert 'streamrec_ranker_loads_total{outcome="ok"} 1.0' in text
    assert load_ranker(settings, 8, "s", metrics, skip={bundle.version}) is None  # already in use


def test_serving_modules_do_not_need_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; import models.onnx_ranker, models.ranker_features, models.ranker_check, export.bundle, "
            "streams.model_loading, agents.model_swap; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
