"""ONNX export: parity validation, the graphs' interface, and the manifest cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from export.encoders import (
    IMAGE_TOLERANCE,
    TEXT_TOLERANCE,
    EncoderPaths,
    ParityError,
    ensure_encoders,
    export_image_encoder,
    manifest_path,
)


def test_manifests_record_parity_within_tolerance(encoder_paths: EncoderPaths) -> None:
    for onnx_path, tolerance in ((encoder_paths.text_onnx, TEXT_TOLERANCE),
                                 (encoder_paths.image_onnx, IMAGE_TOLERANCE)):
        manifest = json.loads(manifest_path(onnx_path).read_text(encoding="utf-8"))
        assert manifest["tolerance"] == tolerance
        assert 0.0 <= manifest["max_abs_diff"] <= tolerance
        assert manifest["n_checked"] >= 5
        assert manifest["onnx_size"] == onnx_path.stat().st_size
        assert manifest["source"] and all(Path(s["path"]).is_file() for s in manifest["source"])


def test_exported_graphs_have_named_dynamic_inputs(encoder_paths: EncoderPaths) -> None:
    text = ort.InferenceSession(str(encoder_paths.text_onnx), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in text.get_inputs()] == [
        ("input_ids", "tensor(int64)"), ("attention_mask", "tensor(int64)")]
    assert all(isinstance(d, str) for i in text.get_inputs() for d in i.shape)  # batch and sequence
    (out,) = text.get_outputs()
    assert out.name == "embedding" and isinstance(out.shape[0], str) and out.shape[1] == 384

    image = ort.InferenceSession(str(encoder_paths.image_onnx), providers=["CPUExecutionProvider"])
    (inp,) = image.get_inputs()
    assert inp.name == "pixel_values" and inp.type == "tensor(float)"
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [3, 224, 224]
    (out,) = image.get_outputs()
    assert out.name == "embedding" and out.shape[1] == 1280


def _copy_exports(src: EncoderPaths, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for onnx_path in (src.text_onnx, src.image_onnx):
        shutil.copy2(onnx_path, dst / onnx_path.name)
        shutil.copy2(manifest_path(onnx_path), dst / manifest_path(onnx_path).name)


def test_ensure_encoders_reuses_matching_exports_and_redoes_missing_ones(
    encoder_paths: EncoderPaths, tmp_path: Path
) -> None:
    _copy_exports(encoder_paths, tmp_path)
    text_mtime = (tmp_path / encoder_paths.text_onnx.name).stat().st_mtime_ns
    image_mtime = (tmp_path / encoder_paths.image_onnx.name).stat().st_mtime_ns

    paths = ensure_encoders(tmp_path)
    assert paths.text_onnx.stat().st_mtime_ns == text_mtime
    assert paths.image_onnx.stat().st_mtime_ns == image_mtime
    assert paths.tokenizer_dir == encoder_paths.tokenizer_dir

    paths.image_onnx.unlink()
    paths = ensure_encoders(tmp_path)
    assert paths.image_onnx.is_file()
    assert paths.text_onnx.stat().st_mtime_ns == text_mtime  # only the missing one was redone
    manifest = json.loads(manifest_path(paths.image_onnx).read_text(encoding="utf-8"))
    assert manifest["onnx_size"] == paths.image_onnx.stat().st_size
    assert not list(tmp_path.glob(".*.tmp"))


def test_ensure_encoders_reexports_when_source_changes(encoder_paths: EncoderPaths, tmp_path: Path) -> None:
    _copy_exports(encoder_paths, tmp_path / "models")
    manifest = json.loads(manifest_path(encoder_paths.image_onnx).read_text(encoding="utf-8"))
    weights = tmp_path / "lite0.pth"
    shutil.copy2(manifest["source"][0]["path"], weights)
    image_onnx = tmp_path / "models" / encoder_paths.image_onnx.name
    before = image_onnx.stat().st_mtime_ns

    ensure_encoders(tmp_path / "models", image_weights=weights)
    after = json.loads(manifest_path(image_onnx).read_text(encoding="utf-8"))
    assert after["source"][0]["path"] == str(weights.resolve())
    assert image_onnx.stat().st_mtime_ns != before


def test_parity_error_when_tolerance_is_impossibly_low(tmp_path: Path) -> None:
    out = tmp_path / "image.onnx"
    with pytest.raises(ParityError, match=r"max \|diff\| = \d"):
        export_image_encoder(out, tolerance=1e-12)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the rejected temp export is cleaned up


def test_negative_tolerance_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        export_image_encoder(tmp_path / "image.onnx", tolerance=-1.0)
