"""The learned multimodal ranker as a PyTorch module (training and export only).

Serving never imports this module: it runs the ONNX export through onnxruntime
(:mod:`models.onnx_ranker`). The inputs are those of :mod:`models.ranker_features`.

Per (user, candidate) pair the model computes

* cosine similarities of the item's text embedding with the user's long-term,
  short-term and query vectors (text parts), and of the item's image embedding with
  the long- and short-term vectors (image parts), the latter masked to 0 for an item
  without an image;
* element-wise products of a learned low-rank projection (text and image towers share
  it between users and items) of each user vector with the item's;
* the standardised dense features,

concatenated, then one DCN-v2 cross layer and a small MLP give one logit. About 12k
multiply-adds per pair: hundreds of candidates per refresh cost well under a
millisecond on one CPU core.

>>> import torch
>>> m = Ranker(dim=6, text_dim=4, n_dense=3, rank=2, hidden=(4,))
>>> s = m(torch.zeros(2, 3, 6), torch.tensor([0, 1, 1]), torch.eye(6)[:5], torch.tensor([0, 4, 2]), torch.zeros(3, 3))
>>> tuple(s.shape)
(3,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from models.ranker_features import N_DENSE

_EPS = 1e-12


@dataclass(frozen=True)
class RankerConfig:
    """Shape of a :class:`Ranker` (saved with every checkpoint and bundle)."""

    dim: int
    text_dim: int
    n_dense: int = N_DENSE
    rank: int = 16
    hidden: tuple[int, ...] = (64, 32)
    cross_layers: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def image_dim(self) -> int:
        return self.dim - self.text_dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RankerConfig:
        d = dict(d)
        d["hidden"] = tuple(d.get("hidden", (64, 32)))
        return cls(**d)


def _unit(x: Tensor) -> Tensor:
    """Rows scaled to unit length (zero rows stay zero)."""
    return x * (x * x).sum(-1, keepdim=True).clamp_min(_EPS).rsqrt()


class Ranker(nn.Module):
    """Scores (user, candidate) pairs; see the module docstring for the architecture."""

    def __init__(
        self,
        dim: int,
        text_dim: int,
        n_dense: int = N_DENSE,
        rank: int = 16,
        hidden: Sequence[int] = (64, 32),
        cross_layers: int = 1,
    ) -> None:
        super().__init__()
        if not 0 < text_dim <= dim:
            raise ValueError(f"text_dim must be in (0, dim], got text_dim={text_dim}, dim={dim}")
        self.config = RankerConfig(dim, text_dim, n_dense, rank, tuple(hidden), cross_layers)
        self.text_dim = text_dim
        self.image_dim = dim - text_dim
        self.text_proj = nn.Linear(text_dim, rank, bias=False)
        self.image_proj = nn.Linear(self.image_dim, rank, bias=False) if self.image_dim else None
        n_sims = 3 + (2 if self.image_dim else 0)
        n_in = 3 * rank + n_sims + 1 + n_dense
        self.register_buffer("dense_mean", torch.zeros(n_dense))
        self.register_buffer("dense_std", torch.ones(n_dense))
        self.cross = nn.ModuleList(nn.Linear(n_in, n_in) for _ in range(cross_layers))
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: RankerConfig) -> Ranker:
        return cls(config.dim, config.text_dim, config.n_dense, config.rank, config.hidden, config.cross_layers)

    def set_dense_scaling(self, mean: Tensor, std: Tensor) -> None:
        """Standardise the dense features with the training set's mean and std (kept in the export)."""
        self.dense_mean.copy_(mean)
        # A feature constant in training carries no information: leave it unscaled rather
        # than divide a serving-time deviation by ~0.
        self.dense_std.copy_(torch.where(std < 1e-3, torch.ones_like(std), std))

    def forward(
        self, user_vectors: Tensor, user_index: Tensor, item_vectors: Tensor, item_rows: Tensor, dense: Tensor
    ) -> Tensor:
        """One logit per pair, shape ``(N,)``."""
        t = self.text_dim
        item = item_vectors.index_select(0, item_rows)  # (N, D)
        item_text = _unit(item[:, :t])
        user_text = _unit(user_vectors[:, :, :t])  # (U, 3, T), per user before the gather
        proj_user = self.text_proj(user_text)  # (U, 3, r)
        proj_item = self.text_proj(item_text)  # (N, r)
        sims_text = torch.bmm(user_text.index_select(0, user_index), item_text.unsqueeze(-1)).squeeze(-1)  # (N, 3)
        parts = [sims_text]
        if self.image_proj is not None:
            raw_image = item[:, t:]
            has_image = ((raw_image * raw_image).sum(-1, keepdim=True) > 1e-12).to(item.dtype)  # (N, 1)
            item_image = _unit(raw_image)
            user_image = _unit(user_vectors[:, :2, t:])  # long and short only: queries are text
            sims_image = torch.bmm(user_image.index_select(0, user_index), item_image.unsqueeze(-1)).squeeze(-1)
            parts.append(sims_image * has_image)
            proj_user = proj_user + nn.functional.pad(self.image_proj(user_image), (0, 0, 0, 1))
            proj_item = proj_item + self.image_proj(item_image) * has_image
        else:
            has_image = torch.zeros_like(item[:, :1])
        products = (proj_user.index_select(0, user_index) * proj_item.unsqueeze(1)).flatten(1)  # (N, 3r)
        scaled = (dense - self.dense_mean) / self.dense_std
        x0 = torch.cat([products, *parts, has_image, scaled], dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.mlp(x).squeeze(-1)
