"""Training the ranker on :mod:`export.examples` groups, and its checkpoints.

The loss is a softmax cross-entropy over each group (the chosen item against the
sampled candidates it was served with), so the model learns to put the chosen item
first among what candidate generation offers. Validation ranks every candidate of
the validation groups: HR@10 (with the serving tie-break: trending, then item row;
events whose item was not among the candidates count as misses) and the mean
per-group AUC, for the model and, on the same groups, the blend.

Deterministic for a seed and thread count (seeded initialisation and shuffling,
deterministic kernels).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from export.examples import Examples, GroupSet
from models.ranker import Ranker, RankerConfig
from models.ranker_features import DENSE_FEATURES

#: progress(stage, done, total)
TrainProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (saved in the checkpoint)."""

    epochs: int = 8
    batch_groups: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-5
    rank: int = 16
    hidden: tuple[int, ...] = (64, 32)
    cross_layers: int = 1
    seed: int = 0
    threads: int = 1
    k: int = 10


@dataclass
class TrainResult:
    """The trained model (best validation epoch) and its figures."""

    model: Ranker
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pair_index(offsets: NDArray[np.int64], groups: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(flat pair positions, local group id per pair) of ``groups``, in that order."""
    starts, sizes = offsets[groups], offsets[groups + 1] - offsets[groups]
    local = np.repeat(np.arange(groups.shape[0]), sizes)
    first = np.repeat(np.cumsum(sizes) - sizes, sizes)
    pos = np.repeat(starts, sizes) + (np.arange(local.shape[0]) - first)
    return pos.astype(np.int64), local.astype(np.int64)


def score_groups(model: Ranker, groups: GroupSet, items: torch.Tensor, chunk: int = 256) -> NDArray[np.float32]:
    """The model's score of every pair of ``groups`` (no gradients)."""
    out = np.zeros(groups.rows.shape[0], np.float32)
    model.eval()
    with torch.no_grad():
        for a in range(0, groups.n_groups, chunk):
            g = np.arange(a, min(a + chunk, groups.n_groups))
            pos, local = _pair_index(groups.offsets, g)
            s = model(
                torch.from_numpy(groups.user_vectors[g]),
                torch.from_numpy(local),
                items,
                torch.from_numpy(groups.rows[pos]),
                torch.from_numpy(groups.dense[pos]),
            )
            out[pos] = s.numpy()
    return out


def ranking_metrics(scores: NDArray[np.float32], groups: GroupSet, k: int = 10) -> dict[str, float]:
    """HR@k over all labelled events (misses included) and mean AUC over groups with negatives.

    The positive is first in each group; ties are broken as when serving (trending,
    then item row), never in the positive's favour otherwise.

    >>> from export.examples import GroupSet
    >>> z = np.zeros(3, np.float32)
    >>> g = GroupSet(np.zeros((1, 3, 2), np.float32), np.array([0, 3]), np.array([0, 1, 2]),
    ...              np.zeros((3, 1), np.float32), np.array([1, 0, 0], np.float32), z, z, misses=1)
    >>> ranking_metrics(np.array([0.5, 0.9, 0.1], np.float32), g, k=1)
    {'hr': 0.0, 'auc': 0.5, 'groups': 1, 'events': 2}
    """
    n_groups = groups.n_groups
    if n_groups == 0:
        return {"hr": 0.0, "auc": float("nan"), "groups": 0, "events": groups.misses}
    gid = groups.group_of_pair
    first = groups.offsets[:-1]
    pos_score = scores[first][gid]
    pos_tb = groups.tiebreak[first][gid]
    pos_row = groups.rows[first][gid]
    is_neg = np.ones(scores.shape[0], bool)
    is_neg[first] = False
    ahead = is_neg & (
        (scores > pos_score)
        | ((scores == pos_score) & ((groups.tiebreak > pos_tb) | ((groups.tiebreak == pos_tb) & (groups.rows < pos_row))))
    )
    rank = np.bincount(gid, weights=ahead, minlength=n_groups)
    below = np.bincount(gid, weights=is_neg & (scores < pos_score), minlength=n_groups)
    tied = np.bincount(gid, weights=is_neg & (scores == pos_score), minlength=n_groups)
    n_neg = np.bincount(gid, weights=is_neg, minlength=n_groups)
    has_neg = n_neg > 0
    auc = float(np.mean((below[has_neg] + 0.5 * tied[has_neg]) / n_neg[has_neg])) if has_neg.any() else float("nan")
    events = n_groups + groups.misses
    return {"hr": round(float((rank < k).sum()) / events, 6), "auc": round(auc, 6), "groups": n_groups,
            "events": events}


def _dense_scaling(dense: NDArray[np.float32]) -> tuple[torch.Tensor, torch.Tensor]:
    mean = dense.mean(axis=0) if dense.shape[0] else np.zeros(dense.shape[1], np.float32)
    std = dense.std(axis=0) if dense.shape[0] else np.ones(dense.shape[1], np.float32)
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))


def train_ranker(examples: Examples, config: TrainConfig = TrainConfig(),
                 progress: TrainProgress | None = None) -> TrainResult:
    """Fit a :class:`Ranker` on ``examples.train``; keep the epoch with the best validation HR@k."""
    train, val = examples.train, examples.val
    if train.n_groups == 0:
        raise ValueError("no training groups: the log is too short, or no chosen item was ever among the candidates")
    if config.epochs < 1 or config.batch_groups < 1:
        raise ValueError("epochs and batch_groups must be at least 1")
    with _torch_threads(config.threads), _deterministic():
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        model = Ranker(examples.dim, examples.text_dim, len(DENSE_FEATURES), config.rank, config.hidden,
                       config.cross_layers)
        model.set_dense_scaling(*_dense_scaling(train.dense))
        items = torch.from_numpy(examples.item_vectors)
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        blend = ranking_metrics(val.blend, val, config.k)
        history: list[dict[str, float]] = []
        best: tuple[float, float] | None = None
        best_state: dict[str, Any] = copy.deepcopy(model.state_dict())
        steps = -(-train.n_groups // config.batch_groups)
        started = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = rng.permutation(train.n_groups)
            total = 0.0
            for step in range(steps):
                g = np.sort(order[step * config.batch_groups : (step + 1) * config.batch_groups])
                pos, local = _pair_index(train.offsets, g)
                scores = model(
                    torch.from_numpy(train.user_vectors[g]),
                    torch.from_numpy(local),
                    items,
                    torch.from_numpy(train.rows[pos]),
                    torch.from_numpy(train.dense[pos]),
                )
                loss = _group_softmax_loss(scores, local, train.offsets, g)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * g.shape[0]
                if progress is not None:
                    progress(f"epoch {epoch}/{config.epochs}", step + 1, steps)
            figures = ranking_metrics(score_groups(model, val, items), val, config.k) if val.n_groups else {}
            row = {"epoch": epoch, "loss": round(total / train.n_groups, 6),
                   "val_hr": figures.get("hr", float("nan")), "val_auc": figures.get("auc", float("nan"))}
            history.append(row)
            key = (row["val_hr"], row["val_auc"]) if val.n_groups else (-row["loss"], 0.0)
            if best is None or key > best:
                best, best_state = key, copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        model.eval()
        final = ranking_metrics(score_groups(model, val, items), val, config.k) if val.n_groups else {}
    best_epoch = max(history, key=lambda r: (r["val_hr"], r["val_auc"]) if val.n_groups else (-r["loss"], 0.0))
    metrics = {
        f"val_hr@{config.k}": final.get("hr"),
        "val_auc": final.get("auc"),
        f"blend_val_hr@{config.k}": blend["hr"],
        "blend_val_auc": blend["auc"],
        "val_groups": val.n_groups,
        "val_events": val.n_groups + val.misses,
        "train_groups": train.n_groups,
        "best_epoch": best_epoch["epoch"],
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return TrainResult(model, metrics, history)


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _group_softmax_loss(scores: torch.Tensor, local: NDArray[np.int64], offsets: NDArray[np.int64],
                        groups: NDArray[np.int64]) -> torch.Tensor:
    """Mean over groups of -log softmax(positive); the positive is each group's first pair."""
    sizes = offsets[groups + 1] - offsets[groups]
    width = int(sizes.max())
    col = np.arange(local.shape[0]) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    padded = torch.full((groups.shape[0], width), float("-inf"))
    padded = padded.index_put((torch.from_numpy(local), torch.from_numpy(col)), scores)
    return (torch.logsumexp(padded, dim=1) - padded[:, 0]).mean()


# --- checkpoints ---------------------------------------------------------------------

#: Validation pairs kept in a checkpoint, so the export checks parity on real inputs.
PARITY_SAMPLE_GROUPS = 16


def save_checkpoint(path: Path, result: TrainResult, examples: Examples, config: TrainConfig) -> None:
    """Write the model, its shape, figures, provenance and a real-input sample to ``path``."""
    val = examples.val if examples.val.n_groups else examples.train
    g = np.arange(min(PARITY_SAMPLE_GROUPS, val.n_groups))
    pos, local = _pair_index(val.offsets, g)
    rows = val.rows[pos]
    used, remapped = np.unique(rows, return_inverse=True)
    sample = {
        "user_vectors": val.user_vectors[g],
        "user_index": local,
        "item_vectors": examples.item_vectors[used],
        "item_rows": remapped.astype(np.int64),
        "dense": val.dense[pos],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": 1,
            "config": result.model.config.to_dict(),
            "state_dict": result.model.state_dict(),
            "train_config": {**asdict(config), "hidden": list(config.hidden)},
            "metrics": result.metrics,
            "history": result.history,
            "training": examples.info,
            "embedding_space": examples.embedding_space,
            "dense_features": list(DENSE_FEATURES),
            "sample": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sample.items()},
        },
        path,
    )


def load_checkpoint(path: Path) -> tuple[Ranker, dict[str, Any]]:
    """The model of a checkpoint (eval mode) and everything saved with it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ValueError(f"{path} is not a streamrec ranker checkpoint: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != 1 or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a streamrec ranker checkpoint (written by `streamrec train --out`)")
    model = Ranker.from_config(RankerConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt
