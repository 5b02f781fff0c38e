"""The int8 baseline of ``streamrec bench scoring`` (PyTorch's own int8 of the same layers)."""

from __future__ import annotations

import torch

from models.ranker import Ranker
from streams.bench.scoring import eager_int8


def test_eager_int8_quantizes_the_layers_the_int8_export_quantizes() -> None:
    torch.manual_seed(0)
    model = Ranker(dim=12, text_dim=8, n_dense=3, rank=4, hidden=(16, 8), cross_layers=2).eval()
    quantized = eager_int8(model)
    dynamic = sorted(name for name, m in quantized.named_modules()
                     if isinstance(m, torch.ao.nn.quantized.dynamic.Linear))
    assert dynamic == ["cross.0", "cross.1", "mlp.0", "mlp.2"]
    for name in ("mlp.4", "text_proj", "image_proj"):  # the one-logit layer and the projections stay float
        assert type(quantized.get_submodule(name)) is torch.nn.Linear
    assert all(type(m) is torch.nn.Linear for m in model.modules() if isinstance(m, torch.nn.Linear))  # a copy

    users, items = torch.randn(2, 3, 12), torch.randn(20, 12)
    args = (users, torch.tensor([0, 1, 1, 0]), items, torch.tensor([3, 7, 7, 19]), torch.randn(4, 3))
    with torch.inference_mode():
        want, got = model(*args), quantized(*args)
    assert not torch.equal(want, got) and torch.allclose(want, got, atol=0.1)
