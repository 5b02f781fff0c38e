"""A worker loads a ranker bundle only when its graphs reproduce the bundle's reference scores here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from export.bundle import BUNDLE_FILE, REFERENCE_FILE, newest_bundle
from models.onnx_ranker import OnnxRanker
from models.onnx_session import CPU_PROVIDER
from models.ranker_check import Reference
from streams import model_loading
from streams.metrics import Metrics
from streams.model_loading import RankerUnavailable, load_ranker
from streams.settings import Settings
from tests.export.ranker_logs import tiny_bundle


def _settings(root: Path) -> Settings:
    return Settings(ranker_dir=root, providers=[CPU_PROVIDER])


def test_a_bundle_that_reproduces_its_reference_is_loaded_and_says_so(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    bundle, _ = tiny_bundle(tmp_path, space="s")
    assert json.loads((bundle.path / BUNDLE_FILE).read_text())["reference"] == {
        "source": "random pairs", "pairs": 512, "users": 8, "items": 256}
    caplog.set_level("INFO")
    metrics = Metrics()
    ranker = load_ranker(_settings(tmp_path), 8, "s", metrics)
    assert ranker is not None and ranker.version == bundle.version
    assert "reference scores reproduced: max |served - PyTorch| = " in caplog.text
    assert "over 512 reference pairs (tolerance 1.0e-04)" in caplog.text
    assert 'streamrec_ranker_loads_total{outcome="ok"} 1.0' in metrics.render().decode()


def test_a_bundle_whose_graphs_score_otherwise_here_is_refused_and_counted(tmp_path: Path) -> None:
    bundle, _ = tiny_bundle(tmp_path / "a", space="s", seed=0)
    other, _ = tiny_bundle(tmp_path / "b", space="s", seed=1)
    # The graphs of another model under this bundle's reference: what a machine that computes
    # the products differently would score, only by more.
    for name in ("ranker.onnx", "item_features.onnx"):
        shutil.copyfile(other.path / name, bundle.path / name)
    metrics = Metrics()
    with pytest.raises(RankerUnavailable, match="does not reproduce its reference scores on this machine "
                       r"\(CPUExecutionProvider\): max \|served - PyTorch\| = ") as caught:
        load_ranker(_settings(tmp_path / "a"), 8, "s", metrics)
    assert caught.value.version == bundle.version
    assert "check this machine's onnxruntime version and provider" in str(caught.value)
    assert 'streamrec_ranker_loads_total{outcome="error"} 1.0' in metrics.render().decode()


def test_an_int8_bundle_that_does_not_reproduce_its_reference_points_to_float32(tmp_path: Path) -> None:
    from export.ranker_export import export_model_bundle

    _, model = tiny_bundle(tmp_path / "f", space="s")
    bundle, _ = export_model_bundle(model, tmp_path / "q", embedding_space="s", training={}, precision="int8")
    assert bundle.precision == "int8" and bundle.parity_tolerance == 0.5
    reference = Reference.load(bundle.reference_path)  # type: ignore[arg-type]
    flipped = Reference(reference.inputs, reference.item_vectors, -reference.logits)
    flipped.save(bundle.path / REFERENCE_FILE)
    with pytest.raises(RankerUnavailable, match="export the model in float32 for this machine"):
        load_ranker(_settings(tmp_path / "q"), 8, "s")


def test_on_a_gpu_provider_only_the_ranking_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    bundle, _ = tiny_bundle(tmp_path, space="s")
    reference = Reference.load(bundle.reference_path)  # type: ignore[arg-type]
    logits = reference.logits.copy()
    logits[int(np.argmin(logits))] -= 1e-2  # beyond float32's tolerance, as TF32 products may be; same ranking
    Reference(reference.inputs, reference.item_vectors, logits).save(bundle.path / REFERENCE_FILE)
    with pytest.raises(RankerUnavailable, match="tolerance 1.0e-04"):
        load_ranker(_settings(tmp_path), 8, "s")  # on the CPU the bound holds

    class OnTheGpu(OnnxRanker):
        """What a session that took the CUDA provider reports (this machine has none to open)."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            self.provider, self.device_type = "CUDAExecutionProvider", "cuda"

    monkeypatch.setattr(model_loading, "OnnxRanker", OnTheGpu)
    caplog.set_level("INFO")
    ranker = load_ranker(Settings(ranker_dir=tmp_path, providers=["CUDAExecutionProvider", CPU_PROVIDER]), 8, "s")
    assert ranker is not None
    assert "(not applied on this provider), each user's top 10 kept 100.0%" in caplog.text


def test_a_bundle_without_reference_scores_still_loads_and_says_it_was_not_checked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bundle, _ = tiny_bundle(tmp_path, space="s")
    meta = json.loads((bundle.path / BUNDLE_FILE).read_text())
    del meta["reference_file"], meta["reference"]  # as exported before bundles carried one
    (bundle.path / BUNDLE_FILE).write_text(json.dumps(meta))
    (bundle.path / REFERENCE_FILE).unlink()
    caplog.set_level("INFO")
    assert load_ranker(_settings(tmp_path), 8, "s") is not None
    assert "no reference scores in the bundle (exported by an older streamrec): not checked" in caplog.text


def test_a_bundle_missing_the_reference_it_declares_is_skipped(tmp_path: Path) -> None:
    bundle, _ = tiny_bundle(tmp_path, space="s")
    (bundle.path / REFERENCE_FILE).unlink()
    assert newest_bundle(tmp_path) is None
    assert load_ranker(_settings(tmp_path), 8, "s") is None


def test_an_unreadable_reference_refuses_the_bundle_naming_the_file(tmp_path: Path) -> None:
    bundle, _ = tiny_bundle(tmp_path, space="s")
    (bundle.path / REFERENCE_FILE).write_bytes(b"truncated")
    with pytest.raises(RankerUnavailable, match=r"reference\.npz: unreadable reference scores"):
        load_ranker(_settings(tmp_path), 8, "s")


def test_a_reference_the_graphs_cannot_score_refuses_the_bundle(tmp_path: Path) -> None:
    bundle, _ = tiny_bundle(tmp_path, space="s")
    reference = Reference.load(bundle.reference_path)  # type: ignore[arg-type]
    narrow = reference.item_vectors[:, :5].copy()  # 5-d item vectors for a graph of 8
    Reference(reference.inputs, narrow, reference.logits).save(bundle.path / REFERENCE_FILE)
    with pytest.raises(RankerUnavailable, match=r"reference\.npz: its reference pairs could not be scored"):
        load_ranker(_settings(tmp_path), 8, "s")


def test_a_bundle_whose_graph_onnxruntime_cannot_open_is_refused_not_raised(tmp_path: Path) -> None:
    bundle, _ = tiny_bundle(tmp_path, space="s")
    (bundle.path / "ranker.onnx").write_bytes(b"not a model")  # onnxruntime raises its own InvalidProtobuf
    metrics = Metrics()
    with pytest.raises(RankerUnavailable, match=r"ranker\.onnx failed:Protobuf parsing failed") as caught:
        load_ranker(_settings(tmp_path), 8, "s", metrics)
    assert caught.value.version == bundle.version
    assert 'streamrec_ranker_loads_total{outcome="error"} 1.0' in metrics.render().decode()
