"""The ONNX text encoder: protocol contract, parity with PyTorch, semantics, sessions."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from export.encoders import TEXT_TOLERANCE, EncoderPaths
from models.onnx_session import active_provider, create_session, select_providers
from models.text_encoder import (
    MAX_SEQ_LENGTH,
    TEXT_DIM,
    OnnxTextEncoder,
    default_text_model_path,
    load_tokenizer,
    pad_batch,
)
from models.text_tower import TextTower
from models.types import TextEncoder

TEXTS = [
    "wireless earbuds",
    "bluetooth headphones with noise cancelling",
    "cast iron frying pan",
    "",
    "Ergonomic office chair with lumbar support, adjustable armrests and breathable mesh back",
    "vélo électrique pliable — batterie 36 V",
]


def test_empty_batch_has_shape_0_by_384(text_encoder: OnnxTextEncoder) -> None:
    out = text_encoder.encode([])
    assert out.shape == (0, TEXT_DIM)
    assert out.dtype == np.float32


def test_rows_are_unit_norm_float32(text_encoder: OnnxTextEncoder) -> None:
    encoder: TextEncoder = text_encoder
    out = encoder.encode(TEXTS)
    assert encoder.dim == TEXT_DIM
    assert out.shape == (len(TEXTS), TEXT_DIM)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_semantic_sanity(text_encoder: OnnxTextEncoder) -> None:
    earbuds, headphones, pan = text_encoder.encode(TEXTS[:3])
    assert float(earbuds @ headphones) > float(earbuds @ pan) + 0.3
    assert float(headphones @ pan) < 0.2


def test_onnx_matches_pytorch_tower(text_encoder: OnnxTextEncoder, text_tower: TextTower) -> None:
    ids, mask = pad_batch(text_encoder.tokenize(TEXTS), pad_id=0)
    with torch.no_grad():
        expected = text_tower(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    got = text_encoder.encode(TEXTS)
    assert float(np.max(np.abs(got - expected))) <= TEXT_TOLERANCE


def test_matches_sentence_transformers(text_encoder: OnnxTextEncoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(default_text_model_path()), device="cpu")
    expected = model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=False)
    got = text_encoder.encode(TEXTS)
    assert float(np.max(np.abs(got - expected))) <= 2 * TEXT_TOLERANCE


def test_chunking_and_order_do_not_change_embeddings(text_encoder: OnnxTextEncoder,
                                                     encoder_paths: EncoderPaths) -> None:
    small_chunks = OnnxTextEncoder(text_encoder.session, load_tokenizer(encoder_paths.tokenizer_dir),
                                   batch_size=2)
    whole = text_encoder.encode(TEXTS)
    np.testing.assert_allclose(small_chunks.encode(TEXTS), whole, atol=1e-5)
    np.testing.assert_allclose(text_encoder.encode(TEXTS[::-1]), whole[::-1], atol=1e-5)
    np.testing.assert_allclose(text_encoder.encode([TEXTS[4]])[0], whole[4], atol=1e-5)


def test_long_text_is_truncated_to_max_seq_length(text_encoder: OnnxTextEncoder) -> None:
    long_text = "stainless steel water bottle keeps drinks cold " * 200
    (ids,) = text_encoder.tokenize([long_text])
    assert len(ids) == MAX_SEQ_LENGTH
    out = text_encoder.encode([long_text, "water bottle"])
    assert out.shape == (2, TEXT_DIM)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_tokenizer_does_not_pad_to_fixed_length(encoder_paths: EncoderPaths) -> None:
    # the packaged tokenizer.json pads to 128; load_tokenizer must undo that
    tokenizer = load_tokenizer(encoder_paths.tokenizer_dir)
    assert len(tokenizer.encode("earbuds").ids) < 10


def test_single_string_is_rejected(text_encoder: OnnxTextEncoder) -> None:
    with pytest.raises(TypeError):
        text_encoder.encode("wireless earbuds")  # type: ignore[arg-type]


def test_create_session_drops_unavailable_providers(encoder_paths: EncoderPaths,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    assert select_providers(["NoSuchExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with caplog.at_level(logging.INFO, logger="models.onnx_session"):
        session = create_session(encoder_paths.text_onnx, ["NoSuchExecutionProvider"])
    assert active_provider(session) == "CPUExecutionProvider"
    assert "NoSuchExecutionProvider" in caplog.text
    assert "using CPUExecutionProvider" in caplog.text


def test_create_session_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        create_session(tmp_path / "missing.onnx", ["CPUExecutionProvider"])
