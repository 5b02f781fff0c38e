"""A ranker bundle's scores checked on the machine that serves it.

The export checks its graphs against PyTorch, but only on the machine that exports. A
worker may run them elsewhere: on a CPU whose kernels differ (onnxruntime documents that
int8 products of uint8 inputs and int8 weights can saturate on x86-64 CPUs with AVX2 but
without VNNI), or on a GPU provider (whose float32 matrix products may run in TF32). So a
bundle carries reference inputs and PyTorch's logits for them (:data:`REFERENCE_FILE`),
and the worker scores them with the sessions it is about to serve with before it uses
the bundle (:func:`check_scores`). A bundle that does not reproduce them is refused,
and the model in use keeps serving.

Two criteria:

* the largest |served - PyTorch| logit is within the bundle's own parity tolerance. This
  is applied on the CPU provider only: on a GPU provider the products may run in TF32,
  so there only the ranking is checked;
* at least :data:`SERVING_MIN_TOP_K_AGREEMENT` of each reference user's top
  :data:`TOP_K` is kept.

Only numpy is needed here, never torch.

>>> users = np.array([0, 0, 0, 1, 1, 1])
>>> top_k_agreement(users, np.array([3., 2., 1., 1., 2., 3.]), np.array([3., 1., 2., 1., 2., 3.]), 1)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from models.ranker_features import RankerInputs

__all__ = [
    "REFERENCE_FILE",
    "SERVING_MIN_TOP_K_AGREEMENT",
    "TOP_K",
    "CheckReport",
    "Reference",
    "check_scores",
    "top_k_agreement",
]

FloatArray = NDArray[np.float32]

#: The reference inputs and PyTorch logits in a bundle folder.
REFERENCE_FILE = "reference.npz"

#: The ranking checked: how much of each user's top ``TOP_K`` is kept.
TOP_K = 10

#: Least share of each reference user's top :data:`TOP_K` that the served scores must keep
#: (the least an int8 export must keep at export, too).
SERVING_MIN_TOP_K_AGREEMENT = 0.9

_ARRAYS = ("user_vectors", "user_index", "item_vectors", "item_rows", "dense", "logits")


class PairScorer(Protocol):
    """What the check runs: :meth:`models.onnx_ranker.OnnxRanker.run`."""

    def run(self, inputs: RankerInputs, item_vectors: FloatArray, key: tuple[int, int, int] | None = None) -> FloatArray:
        ...


def top_k_agreement(user_index: NDArray[np.int64], want: NDArray[Any], got: NDArray[Any], k: int) -> float | None:
    """Mean share of each user's top ``k`` pairs by ``want`` that are also in their top ``k``
    by ``got``, over users with more than ``k`` pairs (None when there is none).

    >>> users = np.array([0, 0, 0, 1, 1, 1])
    >>> top_k_agreement(users, np.array([3., 2., 1., 1., 2., 3.]), np.array([1., 2., 3., 1., 2., 3.]), 1)
    0.5
    """
    order = np.lexsort((-want, user_index))  # by user, best first
    _, starts, counts = np.unique(user_index[order], return_index=True, return_counts=True)
    shares = []
    for start, count in zip(starts, counts, strict=True):
        if count <= k:
            continue
        rows = order[start:start + count]
        mine = rows[np.argsort(-got[rows], kind="stable")[:k]]
        shares.append(np.isin(mine, rows[:k]).mean())
    return float(np.mean(shares)) if shares else None


@dataclass(frozen=True)
class Reference:
    """Reference inputs of a ranker (its one-graph form: item vectors, not item features)
    and the logits PyTorch gave them at export."""

    inputs: RankerInputs
    item_vectors: FloatArray
    logits: FloatArray

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if self.logits.shape != (n,) or self.inputs.user_index.shape != (n,) or self.inputs.dense.shape[0] != n:
            raise ValueError(f"reference arrays disagree on the number of pairs: {n} item rows, "
                             f"{self.inputs.user_index.shape[0]} user indices, {self.inputs.dense.shape[0]} dense "
                             f"rows, logits of shape {self.logits.shape}")

    def save(self, path: Path) -> None:
        """Write the arrays to ``path`` (an ``.npz``)."""
        x = self.inputs
        np.savez_compressed(Path(path), user_vectors=x.user_vectors, user_index=x.user_index,
                            item_vectors=self.item_vectors, item_rows=x.item_rows, dense=x.dense, logits=self.logits)

    @classmethod
    def load(cls, path: Path) -> Reference:
        """Read what :meth:`save` wrote (ValueError naming the file when it cannot)."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                missing = [k for k in _ARRAYS if k not in data.files]
                if missing:
                    raise ValueError(f"missing arrays {', '.join(missing)}")
                a = {k: data[k] for k in _ARRAYS}
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{path}: unreadable reference scores: {exc}") from None
        inputs = RankerInputs(a["user_vectors"].astype(np.float32), a["user_index"].astype(np.int64),
                              a["item_rows"].astype(np.int64), a["dense"].astype(np.float32))
        return cls(inputs, a["item_vectors"].astype(np.float32), a["logits"].astype(np.float32))


@dataclass(frozen=True)
class CheckReport:
    """How the served scores of the reference compare with PyTorch's."""

    pairs: int
    max_abs_diff: float
    top_k_agreement: float | None
    tolerance: float | None  # None: not applied (a GPU provider)
    min_top_k_agreement: float

    @property
    def passed(self) -> bool:
        within = self.tolerance is None or self.max_abs_diff <= self.tolerance  # NaN fails
        kept = self.top_k_agreement is None or self.top_k_agreement >= self.min_top_k_agreement
        return bool(within and kept and not np.isnan(self.max_abs_diff))

    def describe(self) -> str:
        """One line for the log: what was compared and how it came out."""
        bound = "not applied on this provider" if self.tolerance is None else f"tolerance {self.tolerance:.1e}"
        kept = "" if self.top_k_agreement is None else \
            f", each user's top {TOP_K} kept {self.top_k_agreement:.1%} (at least {self.min_top_k_agreement:.0%})"
        return f"max |served - PyTorch| = {self.max_abs_diff:.3e} over {self.pairs} reference pairs ({bound}){kept}"


def check_scores(scorer: PairScorer, reference: Reference, tolerance: float | None,
                 min_top_k_agreement: float = SERVING_MIN_TOP_K_AGREEMENT) -> CheckReport:
    """Score ``reference`` with ``scorer`` and compare with its PyTorch logits; ``tolerance``
    None checks the ranking only."""
    got = np.asarray(scorer.run(reference.inputs, reference.item_vectors), np.float64)
    want = reference.logits.astype(np.float64)
    if got.shape != want.shape:
        raise ValueError(f"the ranker gave {got.shape[0]} scores for {want.shape[0]} reference pairs")
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    agreement = top_k_agreement(reference.inputs.user_index, want, got, TOP_K)
    return CheckReport(int(want.shape[0]), diff, agreement, tolerance, min_top_k_agreement)
