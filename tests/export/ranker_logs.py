"""A tiny generated shop log for the ranker's tests: users walk through items in order."""

from __future__ import annotations

import numpy as np

from export.datasets import Dataset, Interaction


def walk_log(users: int = 60, items: int = 40, steps: int = 12, seed: int = 0) -> Dataset:
    """Each user starts at a random item and mostly clicks the next item id (sometimes a random one).

    Co-visitation and popularity carry real signal here, so a ranker can learn it.
    """
    rng = np.random.default_rng(seed)
    events: list[Interaction] = []
    for u in range(users):
        start = float(rng.uniform(0, 3600))
        pos = int(rng.integers(0, items))
        for s in range(steps):
            pos = (pos + 1) % items if rng.random() < 0.8 else int(rng.integers(0, items))
            kind = "purchase" if rng.random() < 0.05 else ("click" if rng.random() < 0.5 else "view")
            events.append(Interaction(f"u{u}", f"i{pos}", 1_700_000_000.0 + start + 30.0 * s, kind))
    return Dataset("walk", events)


def tiny_bundle(root, dim: int = 8, text_dim: int = 6, space: str | None = None, seed: int = 0,  # type: ignore[no-untyped-def]
                created_at: float = 1_767_000_000.0, fingerprint: str = "feedface00"):
    """An untrained (seeded) ranker exported as a bundle under ``root``: (bundle, torch model)."""
    import torch

    from export.ranker_export import export_model_bundle
    from models.ranker import Ranker

    torch.manual_seed(seed)
    model = Ranker(dim=dim, text_dim=text_dim, rank=4, hidden=(8,)).eval()
    bundle, _ = export_model_bundle(model, root, embedding_space=space, training={"fingerprint": fingerprint},
                                    created_at=created_at)
    return bundle, model
