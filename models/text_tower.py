"""PyTorch source of the text encoder: all-MiniLM-L6-v2 as sentence-transformers runs it.

BertModel -> mean pooling over the attention mask -> L2 normalisation, i.e. the
Transformer / Pooling(mean) / Normalize stack of the packaged model (max_seq_length 256).
This is the module that export/encoders.py traces to ONNX; serving uses the export.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import BertModel

from models.text_encoder import MAX_SEQ_LENGTH, TEXT_DIM, default_text_model_path

__all__ = ["MAX_SEQ_LENGTH", "TEXT_DIM", "TextTower", "default_text_model_path", "load_text_tower",
           "masked_mean"]


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (b, s, d) over the positions where ``attention_mask`` (b, s) is 1."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    total = (hidden * weights).sum(dim=1)
    count = weights.sum(dim=1).clamp(min=1e-9)
    return total / count


class TextTower(nn.Module):
    """Sentence embedding model: forward(input_ids, attention_mask) -> (b, 384) unit rows."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        if bert.config.hidden_size != TEXT_DIM:
            raise ValueError(f"expected a {TEXT_DIM}-wide BERT, got hidden_size={bert.config.hidden_size}")
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embed token ids (b, s) int64 with their mask (b, s): float32 (b, 384), L2-normalised."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return nn.functional.normalize(masked_mean(hidden, attention_mask), p=2.0, dim=1)


def load_text_tower(path: Path | None = None) -> TextTower:
    """Load the text tower (eval mode) from a sentence-transformers model directory.

    ``path`` defaults to the packaged all-MiniLM-L6-v2. Eager attention keeps the graph
    plain for the TorchScript ONNX exporter; it matches SDPA to float precision.
    """
    source = Path(path) if path is not None else default_text_model_path()
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in text model directory {source}")
    bert = BertModel.from_pretrained(str(source), attn_implementation="eager", local_files_only=True)
    tower = TextTower(bert)
    tower.eval()
    return tower
