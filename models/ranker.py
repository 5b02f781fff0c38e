"""The learned multimodal ranker as a PyTorch module (training and export only).

Serving never imports this module: it runs the ONNX export through onnxruntime
(:mod:`models.onnx_ranker`). The inputs are those of :mod:`models.ranker_features`.

Per (user, candidate) pair the model computes element-wise products of a learned
low-rank projection of each user vector (long-term, short-term, latest query) with the
same projection of the item (its text embedding, plus its image embedding unless the
item has none: the mask), then adds the standardised dense features (which include
the cosine similarities candidate generation already computed) and the image mask,
and runs one DCN-v2 cross layer and a small MLP to one logit.

User vectors are normalised and projected once per user, before the gather, and the
item parts are projected before they are normalised (a projection of a unit vector is
the projection scaled by one over the norm), so a pair costs one gathered item row,
two small matrix products and the MLP: about 20k multiply-adds. Hundreds of
candidates per refresh cost well under a millisecond on one CPU core.

The item side depends on the item alone, so serving splits the model in two
(:meth:`Ranker.item_features` and :meth:`Ranker.score_pairs`): the item features
(the projected item and its image mask, ``rank + 1`` numbers) are computed once per
catalog version, and a pair then costs one gathered row of ``rank + 1`` numbers, the
cross layer and the MLP, about 10k multiply-adds. :meth:`Ranker.forward` (training)
is exactly ``score_pairs`` over ``item_features`` of the gathered rows.

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


def parse_hidden(text: str) -> tuple[int, ...]:
    """The MLP's hidden widths from ``"64,32"``; each between 1 and 4,096, at least one.

    >>> parse_hidden("64, 32")
    (64, 32)
    """
    try:
        widths = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"hidden widths must be comma-separated integers such as 64,32, got {text!r}") from None
    if not widths or any(not 1 <= w <= 4096 for w in widths):
        raise ValueError(f"hidden widths must each be between 1 and 4096 (at least one), got {text!r}")
    return widths


def _unit(x: Tensor) -> Tensor:
    """Rows scaled to unit length (zero rows stay zero)."""
    return x * (x * x).sum(-1, keepdim=True).clamp_min(_EPS).rsqrt()


class Ranker(nn.Module):
    """Scores (user, candidate) pairs; see the module docstring for the architecture."""

    dense_mean: Tensor
    dense_std: Tensor

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
        n_in = 3 * rank + 1 + n_dense
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
        features = self.item_features(item_vectors.index_select(0, item_rows))  # (N, r + 1)
        return self._score(user_vectors, user_index, features, dense)

    def item_features(self, item_vectors: Tensor) -> Tensor:
        """Per item row: its projection (text part plus image part, each as a unit vector) and
        its image mask, shape ``(M, rank + 1)``. Serving computes it once per catalog version."""
        t = self.text_dim
        raw_text = item_vectors[:, :t]
        proj_item = self.text_proj(raw_text) * (raw_text * raw_text).sum(-1, keepdim=True).clamp_min(_EPS).rsqrt()
        if self.image_proj is not None:
            raw_image = item_vectors[:, t:]
            image_norm2 = (raw_image * raw_image).sum(-1, keepdim=True)
            has_image = (image_norm2 > 1e-12).to(item_vectors.dtype)  # (M, 1); a zero image part projects to 0
            proj_item = proj_item + self.image_proj(raw_image) * image_norm2.clamp_min(_EPS).rsqrt()
        else:
            has_image = torch.zeros_like(item_vectors[:, :1])
        return torch.cat([proj_item, has_image], dim=1)

    def score_pairs(
        self, user_vectors: Tensor, user_index: Tensor, item_features: Tensor, item_rows: Tensor, dense: Tensor
    ) -> Tensor:
        """One logit per pair from precomputed :meth:`item_features` rows, shape ``(N,)``."""
        return self._score(user_vectors, user_index, item_features.index_select(0, item_rows), dense)

    def _score(self, user_vectors: Tensor, user_index: Tensor, features: Tensor, dense: Tensor) -> Tensor:
        """Logits of pairs whose item features are already gathered (one row per pair)."""
        t, r = self.text_dim, self.config.rank
        proj_user = self.text_proj(_unit(user_vectors[:, :, :t]))  # (U, 3, r): per user, before the gather
        if self.image_proj is not None:
            user_image = self.image_proj(_unit(user_vectors[:, :2, t:]))  # long and short: queries are text
            proj_user = proj_user + nn.functional.pad(user_image, (0, 0, 0, 1))
        products = (proj_user.index_select(0, user_index) * features[:, :r].unsqueeze(1)).flatten(1)  # (N, 3r)
        scaled = (dense - self.dense_mean) / self.dense_std
        x0 = torch.cat([products, features[:, r:], scaled], dim=1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.mlp(x).squeeze(-1)
