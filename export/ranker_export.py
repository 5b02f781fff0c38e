"""Exporting a trained ranker to ONNX, validated against PyTorch, as a model bundle.

The export writes two ONNX graphs, traced with the TorchScript exporter (opset 17),
every first axis dynamic (users, pairs, items), with the names of
:mod:`models.ranker_features`:

* the item model (``item_features.onnx``): ``item_vectors`` -> ``item_features``
  (:meth:`models.ranker.Ranker.item_features` in the layout of
  :func:`spread_item_features`), run by serving once per catalog version;
* the pair scorer (``ranker.onnx``): :data:`~models.ranker_features.PAIR_INPUT_NAMES`
  -> ``score`` (:meth:`models.ranker.Ranker.score_pairs`), run once per micro-batch.

onnxruntime (CPU) then runs the two in turn on random inputs of several batch sizes
(1 to 2,048 pairs, users without vectors, items without image) and on the real
validation pairs kept in the checkpoint, next to the PyTorch model end to end (its
training ``forward``); only when the largest absolute difference of the logits (and
of the item features) is within :data:`RANKER_TOLERANCE` is the bundle written.
Otherwise :class:`ParityError` says by how much it failed, and nothing is written.

With ``precision="int8"`` the pair scorer's dense layers are then stored as int8
(:mod:`export.quantize`, for CPU serving), their inputs quantized over fixed ranges
calibrated on the real pairs and on random ones, and the quantized graph is checked the
same way against :data:`INT8_TOLERANCE`. Because an absolute bound says little about a model
whose logits lie close together, the quantized scores must also keep at least
:data:`INT8_MIN_TOP_K_AGREEMENT` of each user's top 10 on the real pairs. The bundle
records its precision, both checks, that agreement, and the calibrated input ranges.
Those pairs are also the ones calibrated on, so the export first tries the ranges on users
they have not seen (:func:`held_out_int8_check`): a copy calibrated on half the real users
must keep :data:`INT8_MIN_TOP_K_AGREEMENT` of the other half's top 10.

Every bundle also carries a reference (:func:`reference_scores`): the real pairs (else
seeded random ones) with the PyTorch model's logits for them, which a worker scores again
on its own machine before it serves the bundle (:mod:`models.ranker_check`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import torch
from numpy.typing import NDArray

from export.bundle import ITEM_MODEL_FILE, PRECISIONS, Bundle, version_name, write_bundle
from export.encoders import OPSET, ParityError, ParityReport
from export.quantize import Range, input_ranges, quantize_dense_layers
from export.training import load_checkpoint
from models.onnx_session import CPU_PROVIDER, create_session
from models.ranker import _EPS, Ranker
from models.ranker_check import REFERENCE_FILE, TOP_K, Reference, top_k_agreement
from models.ranker_features import (
    DENSE_FEATURES,
    INPUT_NAMES,
    ITEM_OUTPUT_NAME,
    OUTPUT_NAME,
    PAIR_INPUT_NAMES,
    RankerInputs,
)

__all__ = [
    "CALIBRATION_PAIRS",
    "CALIBRATION_SEED",
    "INT8_MIN_TOP_K_AGREEMENT",
    "INT8_TOLERANCE",
    "RANKER_TOLERANCE",
    "REFERENCE_RANDOM_PAIRS",
    "TOP_K",
    "ParityError",
    "export_bundle",
    "export_model_bundle",
    "export_one_graph_onnx",
    "export_onnx",
    "held_out_int8_check",
    "item_model_path",
    "quantize_pair_scorer",
    "random_inputs",
    "reference_scores",
    "split_by_user",
    "spread_item_features",
    "top_k_agreement",
    "validate_parity",
]

log = logging.getLogger(__name__)

#: Largest |onnxruntime - PyTorch| allowed on a logit. Measured on x86-64 CPU with
#: onnxruntime 1.32 / torch 2.13: about 1e-6 on logits of magnitude ~10; the bound
#: leaves room for other CPUs' kernels and GPUs while any export bug shows far above it.
RANKER_TOLERANCE = 1e-4

#: Largest |onnxruntime - PyTorch| allowed on a logit when the dense layers are int8.
#: Measured on a MovieLens-trained ranker (logits' std about 1.9): at most about 0.2 on
#: its validation pairs, about 0.04 on average; a wrong scale or layer shows as whole units.
INT8_TOLERANCE = 0.5

#: Least share of each user's top ``TOP_K`` (on the real validation pairs) an int8 export
#: must keep. Measured: 98.8% (MovieLens ranker), 96.7% (Diginetica), 95% to 97.5% for
#: small untrained models on random pairs.
INT8_MIN_TOP_K_AGREEMENT = 0.9

#: Random pairs (besides the checkpoint's real ones) on which an int8 export calibrates its
#: layers' input ranges, and their seed (the parity check draws other pairs).
CALIBRATION_PAIRS = 4096
CALIBRATION_SEED = 4096

#: Random pairs a bundle carries as its reference when the checkpoint kept no real ones.
REFERENCE_RANDOM_PAIRS = 512

_DYNAMIC_AXES = {
    "user_vectors": {0: "users"},
    "user_index": {0: "pairs"},
    "item_features": {0: "items"},
    "item_rows": {0: "pairs"},
    "dense": {0: "pairs"},
    OUTPUT_NAME: {0: "pairs"},
}
_ITEM_DYNAMIC_AXES = {"item_vectors": {0: "items"}, ITEM_OUTPUT_NAME: {0: "items"}}

Feeds = dict[str, NDArray[Any]]


def random_inputs(model: Ranker, pairs: int, users: int = 4, items: int = 64, seed: int = 0) -> Feeds:
    """Plausible random inputs: unit vectors, some users without vectors, some items without image,
    dense features spread like the training data's."""
    rng = np.random.default_rng(seed)
    cfg = model.config

    def unit(shape: tuple[int, ...]) -> NDArray[np.float32]:
        x = rng.standard_normal(shape).astype(np.float32)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    user_vectors = unit((users, 3, cfg.dim))
    user_vectors[0] = 0.0  # a new user
    if users > 1:
        user_vectors[1, 2] = 0.0  # no query
    item_vectors = unit((items, cfg.dim))
    if cfg.image_dim:
        item_vectors[::3, cfg.text_dim :] = 0.0  # items without image
    # Dense features spread as in training (the model's own scaling), so logits stay in their real range.
    mean, std = model.dense_mean.detach().numpy(), model.dense_std.detach().numpy()
    dense = (mean + std * rng.standard_normal((pairs, cfg.n_dense))).astype(np.float32)
    return {
        "user_vectors": user_vectors,
        "user_index": rng.integers(0, users, pairs).astype(np.int64),
        "item_vectors": item_vectors,
        "item_rows": rng.integers(0, items, pairs).astype(np.int64),
        "dense": dense,
    }


@contextmanager
def _quiet_export() -> Iterator[None]:
    """No gradients, and none of the TorchScript exporter's expected warnings."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*Constant folding.*")
        yield


def spread_item_features(features: torch.Tensor) -> torch.Tensor:
    """:meth:`Ranker.item_features` rows ``(M, r + 1)`` in the layout of the exported item
    model, ``(M, 3r + 1)``: the projection three times (once per user vector), then the image
    mask, so the pair scorer multiplies a gathered row by the user's row directly.

    >>> spread_item_features(torch.tensor([[3.0, 4.0, 1.0]])).tolist()  # rank 2, then the image mask
    [[3.0, 4.0, 3.0, 4.0, 3.0, 4.0, 1.0]]
    """
    r = features.shape[1] - 1
    projected = features[:, :r]
    return torch.cat([projected, projected, projected, features[:, r:]], dim=1)


class _ItemModel(torch.nn.Module):
    """The ranker's item side (:meth:`Ranker.item_features`, spread by
    :func:`spread_item_features`) as its own graph, written for onnxruntime: the text and image
    projections and the two squared norms are each one MatMul over the whole item row (block
    weights, a 0/1 part indicator) instead of column slices, which onnxruntime copies slowly.
    The parity check compares it with ``item_features`` and with the model end to end.

    The spread layout stores three copies of each projection (``3r + 1`` numbers an item
    instead of ``r + 1``: 196 bytes at rank 16) so that no call of the pair scorer has to
    build them; the table is computed once per catalog version."""

    weight: torch.Tensor
    parts: torch.Tensor

    def __init__(self, ranker: Ranker) -> None:
        super().__init__()
        cfg = ranker.config
        t, r = cfg.text_dim, cfg.rank
        weight = torch.zeros(cfg.dim, 2 * r)
        weight[:t, :r] = ranker.text_proj.weight.detach().T
        parts = torch.zeros(cfg.dim, 2)
        parts[:t, 0] = 1.0
        if ranker.image_proj is not None:
            weight[t:, r:] = ranker.image_proj.weight.detach().T
            parts[t:, 1] = 1.0
        self.register_buffer("weight", weight)
        self.register_buffer("parts", parts)
        self.rank = r

    def forward(self, item_vectors: torch.Tensor) -> torch.Tensor:
        r = self.rank
        proj = item_vectors @ self.weight  # (M, 2r): text, then image
        norm2 = (item_vectors * item_vectors) @ self.parts  # (M, 2)
        inv = norm2.clamp_min(_EPS).rsqrt()
        projected = proj[:, :r] * inv[:, :1] + proj[:, r:] * inv[:, 1:]  # a zero part projects to 0
        has_image = (norm2[:, 1:] > 1e-12).to(item_vectors.dtype)
        return torch.cat([projected, projected, projected, has_image], dim=1)


class _PairScorer(torch.nn.Module):
    """The ranker's pair side (:meth:`Ranker.score_pairs`) as a graph written for onnxruntime.

    The same function, with fewer and plainer nodes:

    * the user side takes each user's three vectors as rows of one matrix: one MatMul of
      block weights projects their text and image parts, a 0/1 indicator MatMul takes the
      parts' squared norms, and one more MatMul adds the two projections of each vector
      into the user's row (the query's image part has zero weight: queries are text), with
      a trailing 1 for the image mask;
    * the gathered item row (already spread by the item model) times the gathered user row
      gives the products and the mask as one ``(N, 3r + 1)`` block, with no broadcast,
      reshape or slice;
    * the dense scaling is one multiply-add with folded constants, and the first cross
      layer's ``+ x0`` is folded into its bias (``x0 * (W x0 + b) + x0 = x0 * (W x0 + b + 1)``).

    The parity check compares it with the PyTorch model end to end.
    """

    ranker: Ranker
    weight: torch.Tensor
    parts: torch.Tensor
    expand: torch.Tensor
    combine: torch.Tensor
    mask_column: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    first_bias: torch.Tensor

    def __init__(self, ranker: Ranker) -> None:
        super().__init__()
        self.ranker = ranker
        cfg = ranker.config
        r = cfg.rank
        item = _ItemModel(ranker)  # the same block weights and part indicator, for the user rows
        self.register_buffer("weight", item.weight)
        self.register_buffer("parts", item.parts)
        expand = torch.zeros(2, 2 * r)  # each part's inverse norm over its r projected columns
        expand[0, :r] = 1.0
        expand[1, r:] = 1.0
        self.register_buffer("expand", expand)
        combine = torch.zeros(6 * r, 3 * r + 1)  # (text, image) of long, short, query -> user row
        diagonal = torch.arange(r)
        for k in range(3):
            combine[2 * k * r + diagonal, k * r + diagonal] = 1.0
            if k < 2 and ranker.image_proj is not None:
                combine[(2 * k + 1) * r + diagonal, k * r + diagonal] = 1.0
        self.register_buffer("combine", combine)
        mask_column = torch.zeros(3 * r + 1)
        mask_column[3 * r] = 1.0
        self.register_buffer("mask_column", mask_column)
        self.register_buffer("scale", 1.0 / ranker.dense_std.detach())
        self.register_buffer("shift", -ranker.dense_mean.detach() / ranker.dense_std.detach())
        first = cast(torch.nn.Linear, ranker.cross[0]) if len(ranker.cross) else None
        self.register_buffer("first_bias", (first.bias.detach() + 1.0) if first is not None else torch.zeros(0))

    def forward(self, user_vectors: torch.Tensor, user_index: torch.Tensor, item_features: torch.Tensor,
                item_rows: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        m = self.ranker
        rows = user_vectors.reshape(-1, m.config.dim)  # (3U, D): long, short, query of each user
        inv = ((rows * rows) @ self.parts).clamp_min(_EPS).rsqrt()  # (3U, 2): a zero part projects to 0
        projected = (rows @ self.weight) * (inv @ self.expand)  # (3U, 2r): text, then image
        user_row = projected.reshape(-1, 6 * m.config.rank) @ self.combine + self.mask_column  # (U, 3r + 1)
        head = user_row.index_select(0, user_index) * item_features.index_select(0, item_rows)
        x0 = torch.cat([head, dense * self.scale + self.shift], dim=1)
        x = x0
        for i, layer in enumerate(m.cross):
            if i == 0:
                x = x0 * torch.nn.functional.linear(x0, cast(torch.Tensor, layer.weight), self.first_bias)
            else:
                x = x0 * layer(x) + x
        return m.mlp(x).squeeze(-1)


def item_model_path(onnx_path: Path) -> Path:
    """Where :func:`export_onnx` puts the item model next to the pair scorer ``onnx_path``."""
    return Path(onnx_path).with_name(ITEM_MODEL_FILE)


def export_onnx(model: Ranker, out_path: Path) -> None:
    """Write ``model``'s pair scorer to ``out_path`` and its item model to :func:`item_model_path`,
    as ONNX with dynamic first axes."""
    example = random_inputs(model, pairs=8)
    model.eval()
    items = torch.from_numpy(example["item_vectors"])
    with _quiet_export():
        features = spread_item_features(model.item_features(items))
        args = tuple(features if name == "item_features" else torch.from_numpy(example[name])
                     for name in PAIR_INPUT_NAMES)
        torch.onnx.export(_PairScorer(model).eval(), args, str(out_path), dynamo=False, opset_version=OPSET,
                          input_names=list(PAIR_INPUT_NAMES), output_names=[OUTPUT_NAME],
                          dynamic_axes=_DYNAMIC_AXES, do_constant_folding=True)
        torch.onnx.export(_ItemModel(model).eval(), (items,), str(item_model_path(out_path)), dynamo=False,
                          opset_version=OPSET, input_names=["item_vectors"], output_names=[ITEM_OUTPUT_NAME],
                          dynamic_axes=_ITEM_DYNAMIC_AXES, do_constant_folding=True)


def _pair_feeds(item_session: Any, feeds: Feeds) -> tuple[Feeds, NDArray[np.float32]]:
    """The pair scorer's inputs for the one-graph ``feeds`` (``item_vectors`` run through the item
    model), and those item features."""
    (features,) = item_session.run([ITEM_OUTPUT_NAME], {"item_vectors": feeds["item_vectors"]})
    return {**{k: v for k, v in feeds.items() if k != "item_vectors"}, "item_features": features}, features


def quantize_pair_scorer(model: Ranker, onnx_path: Path, sample: Feeds | None = None) -> dict[str, Range]:
    """Rewrite the pair scorer :func:`export_onnx` wrote to ``onnx_path`` with int8 dense layers
    (:func:`export.quantize.quantize_dense_layers`): exactly ``model``'s cross and hidden layers.

    Their fixed input ranges are calibrated on :data:`CALIBRATION_PAIRS` random pairs (seeded, not
    those the parity check draws) and the real pairs of ``sample`` when given; returns the ranges."""
    float_graph = onnx.load(str(onnx_path))
    item_session = create_session(item_model_path(onnx_path), [CPU_PROVIDER])
    calls = [random_inputs(model, pairs=CALIBRATION_PAIRS, users=64, items=1024, seed=CALIBRATION_SEED)]
    if sample is not None and sample["item_rows"].shape[0]:
        calls.append(sample)
    ranges = input_ranges(float_graph, (_pair_feeds(item_session, c)[0] for c in calls))
    quantized, layers = quantize_dense_layers(float_graph, ranges)
    expected = len(model.cross) + len(model.config.hidden)
    if layers != expected:
        raise ParityError(f"int8 export quantized {layers} dense layers, expected {expected} "
                          "(the cross and hidden layers); the bundle was not written")
    onnx.save(quantized, str(onnx_path))
    return ranges


def split_by_user(sample: Feeds) -> tuple[Feeds, Feeds]:
    """``sample``'s pairs of its even-numbered users and those of its odd-numbered users (the
    user and item arrays are shared).

    >>> even, odd = split_by_user({"user_index": np.array([0, 1, 2]), "item_rows": np.array([5, 6, 7]),
    ...                            "dense": np.zeros((3, 1))})
    >>> even["item_rows"].tolist(), odd["item_rows"].tolist()
    ([5, 7], [6])
    """
    odd = sample["user_index"] % 2 == 1

    def pick(mask: NDArray[np.bool_]) -> Feeds:
        return {**sample, **{k: sample[k][mask] for k in ("user_index", "item_rows", "dense")}}

    return pick(~odd), pick(odd)


def held_out_int8_check(model: Ranker, onnx_path: Path, sample: Feeds | None) -> dict[str, Any] | None:
    """Check that int8 input ranges generalise to users they were not calibrated on: quantize a
    copy of the float pair scorer at ``onnx_path`` calibrated on the even-numbered users of
    ``sample`` (and the random pairs), and require :data:`INT8_MIN_TOP_K_AGREEMENT` of each
    odd-numbered user's top 10 on their pairs. Only the ranking is checked: a held-out value
    beyond its range saturates, which moves that pair's score alone, by design. Raises
    :class:`ParityError` when it fails; returns the figures, or None when ``sample`` has no
    pairs in either half."""
    if sample is None:
        return None
    calibration, held_out = split_by_user(sample)
    if not calibration["item_rows"].shape[0] or not held_out["item_rows"].shape[0]:
        return None
    with tempfile.TemporaryDirectory(prefix="streamrec-held-out-") as tmp:
        trial = Path(tmp) / onnx_path.name
        shutil.copyfile(onnx_path, trial)
        shutil.copyfile(item_model_path(onnx_path), item_model_path(trial))
        quantize_pair_scorer(model, trial, calibration)
        try:
            report = validate_parity(model, trial, held_out, float("inf"), INT8_MIN_TOP_K_AGREEMENT)
        except ParityError as exc:
            raise ParityError(f"int8 input ranges calibrated without half the real users do not hold on those "
                              f"users' pairs: {exc}") from None
    return {"users": int(np.unique(held_out["user_index"]).shape[0]), "pairs": int(held_out["item_rows"].shape[0]),
            "max_abs_diff": report.max_abs_diff, f"top{TOP_K}_agreement": report.top_k_agreement}


def export_one_graph_onnx(model: Ranker, out_path: Path) -> None:
    """Write ``model`` as one ONNX graph reading the item matrix itself (``forward``; inputs
    :data:`~models.ranker_features.INPUT_NAMES`): bundles before the item/pair split, and the
    baseline ``streamrec bench scoring`` compares the split against."""
    example = random_inputs(model, pairs=8)
    args = tuple(torch.from_numpy(example[name]) for name in INPUT_NAMES)
    axes = {**{k: v for k, v in _DYNAMIC_AXES.items() if k != "item_features"}, "item_vectors": {0: "items"}}
    model.eval()
    with _quiet_export():
        torch.onnx.export(model, args, str(out_path), dynamo=False, opset_version=OPSET,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, do_constant_folding=True)


def _parity_cases(model: Ranker, sample: Feeds | None) -> list[tuple[str, Feeds]]:
    cases = [(f"random, {n} pairs", random_inputs(model, pairs=n, users=max(1, min(n, 64)), items=256, seed=n))
             for n in (1, 7, 300, 2048)]
    if sample is not None and sample["item_rows"].shape[0]:
        cases.append((f"real validation pairs ({sample['item_rows'].shape[0]})", sample))
    return cases


def validate_parity(model: Ranker, onnx_path: Path, sample: Feeds | None = None,
                    tolerance: float = RANKER_TOLERANCE, min_top_k_agreement: float = 0.0) -> ParityReport:
    """Run the exported item model and pair scorer in turn on onnxruntime (CPU) next to the
    PyTorch model end to end, on random and real inputs; raise :class:`ParityError` on mismatch:
    a difference above ``tolerance``, or less than ``min_top_k_agreement`` of each user's top
    :data:`TOP_K` kept on the real pairs of ``sample``."""
    if not tolerance >= 0.0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    started = time.perf_counter()
    item_path = item_model_path(onnx_path)
    onnx.checker.check_model(str(onnx_path))
    onnx.checker.check_model(str(item_path))
    session = create_session(onnx_path, [CPU_PROVIDER])
    item_session = create_session(item_path, [CPU_PROVIDER])
    worst, checked, worst_case, agreement = 0.0, 0, "", None
    model.eval()
    for name, feeds in _parity_cases(model, sample):
        pair_feeds, features = _pair_feeds(item_session, feeds)
        (got,) = session.run([OUTPUT_NAME], pair_feeds)
        with torch.no_grad():
            want = model(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES)).numpy()
            items = torch.from_numpy(feeds["item_vectors"])
            want_features = spread_item_features(model.item_features(items)).numpy()
        if got.shape != want.shape or features.shape != want_features.shape:
            raise ParityError(f"{onnx_path.name}: {name}: output shapes {got.shape}, {features.shape} != "
                              f"PyTorch {want.shape}, {want_features.shape}")
        for part, a, b in (("logits", got, want), ("item features", features, want_features)):
            diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if b.size else 0.0
            if not diff <= worst:  # NaN propagates as a failure below
                worst, worst_case = diff, f"{name} ({part})"
        checked += int(want.shape[0])
        if name.startswith("real"):
            agreement = top_k_agreement(feeds["user_index"], want, got, TOP_K)
    if not worst <= tolerance:
        raise ParityError(
            f"ranker ONNX export differs from PyTorch by max |diff| = {worst:.3e} on {worst_case} "
            f"> tolerance {tolerance:.1e} ({checked} pairs checked); the bundle was not written"
        )
    if agreement is not None and not agreement >= min_top_k_agreement:
        raise ParityError(
            f"ranker ONNX export keeps {agreement:.1%} of each user's top {TOP_K} on the real validation pairs, "
            f"below the {min_top_k_agreement:.0%} required (max |diff| = {worst:.3e}); the bundle was not "
            "written. Export in float32 (the default precision) instead"
        )
    return ParityReport(max_abs_diff=worst, tolerance=tolerance, n_checked=checked,
                        export_seconds=time.perf_counter() - started, top_k_agreement=agreement)


def reference_scores(model: Ranker, sample: Feeds | None = None) -> tuple[Reference, dict[str, Any]]:
    """The reference a bundle carries (:mod:`models.ranker_check`): the real validation pairs of
    ``sample`` (else :data:`REFERENCE_RANDOM_PAIRS` seeded random ones) with ``model``'s logits,
    and its description for ``bundle.json``."""
    real = sample is not None and sample["item_rows"].shape[0] > 0
    feeds = sample if sample is not None and real else \
        random_inputs(model, pairs=REFERENCE_RANDOM_PAIRS, users=8, items=256, seed=REFERENCE_RANDOM_PAIRS)
    model.eval()
    with torch.no_grad():
        logits = model(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES)).numpy().astype(np.float32)
    inputs = RankerInputs(feeds["user_vectors"], feeds["user_index"], feeds["item_rows"], feeds["dense"])
    about = {"source": "real validation pairs" if real else "random pairs", "pairs": int(logits.shape[0]),
             "users": int(feeds["user_vectors"].shape[0]), "items": int(feeds["item_vectors"].shape[0])}
    return Reference(inputs, feeds["item_vectors"], logits), about


def _io_spec(onnx_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    graph = onnx.load(str(onnx_path)).graph

    def spec(v: Any) -> dict[str, Any]:
        t = v.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": shape}

    return [spec(v) for v in graph.input], [spec(v) for v in graph.output]


def export_bundle(checkpoint: Path, bundles_root: Path, tolerance: float | None = None,
                  created_at: float | None = None, precision: str = "float32") -> tuple[Bundle, ParityReport]:
    """Export a checkpoint of ``streamrec train`` to a new, validated bundle under ``bundles_root``
    (``tolerance`` None: the precision's default)."""
    model, ckpt = load_checkpoint(checkpoint)
    if list(ckpt.get("dense_features", [])) != list(DENSE_FEATURES):
        raise ParityError(f"{checkpoint} was trained on other dense features than this streamrec assembles; retrain")
    sample = {k: v.numpy() for k, v in ckpt.get("sample", {}).items()} or None
    return export_model_bundle(
        model, bundles_root, embedding_space=ckpt.get("embedding_space"), training=dict(ckpt.get("training", {})),
        metrics=ckpt.get("metrics", {}), train_config=ckpt.get("train_config", {}), sample=sample,
        tolerance=tolerance, created_at=created_at, precision=precision,
    )


def export_model_bundle(
    model: Ranker,
    bundles_root: Path,
    *,
    embedding_space: str | None,
    training: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    sample: Feeds | None = None,
    tolerance: float | None = None,
    created_at: float | None = None,
    precision: str = "float32",
) -> tuple[Bundle, ParityReport]:
    """Export ``model`` to ONNX, check it against PyTorch, and write it as a new bundle.

    ``precision`` is ``"float32"`` or ``"int8"`` (int8 dense layers, checked against
    ``tolerance``, by default :data:`INT8_TOLERANCE`, and :data:`INT8_MIN_TOP_K_AGREEMENT`
    on ``sample``, after the float graph has passed :data:`RANKER_TOLERANCE`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    int8 = precision == "int8"
    if tolerance is None:
        tolerance = INT8_TOLERANCE if int8 else RANKER_TOLERANCE
    created_at = time.time() if created_at is None else created_at
    with tempfile.TemporaryDirectory(prefix="streamrec-ranker-") as tmp:
        onnx_path = Path(tmp) / "ranker.onnx"
        export_onnx(model, onnx_path)
        report = float_report = validate_parity(model, onnx_path, sample, RANKER_TOLERANCE if int8 else tolerance)
        if int8:
            held_out = held_out_int8_check(model, onnx_path, sample)
            ranges = quantize_pair_scorer(model, onnx_path, sample)
            report = validate_parity(model, onnx_path, sample, tolerance, INT8_MIN_TOP_K_AGREEMENT)
        inputs, outputs = _io_spec(onnx_path)
        item_inputs, item_outputs = _io_spec(item_model_path(onnx_path))
        reference, reference_about = reference_scores(model, sample)
        reference.save(Path(tmp) / REFERENCE_FILE)
        parity: dict[str, Any] = {
            "max_abs_diff": report.max_abs_diff, "tolerance": report.tolerance, "pairs_checked": report.n_checked,
            "opset": OPSET, "onnxruntime_provider": CPU_PROVIDER, f"top{TOP_K}_agreement": report.top_k_agreement}
        if int8:
            parity["float32_max_abs_diff"] = float_report.max_abs_diff
            parity[f"min_top{TOP_K}_agreement"] = INT8_MIN_TOP_K_AGREEMENT
            real = int(sample["item_rows"].shape[0]) if sample is not None else 0
            parity["int8_input_ranges"] = {k: list(v) for k, v in ranges.items()}
            parity["int8_calibration_pairs"] = {"random": CALIBRATION_PAIRS, "real": real}
            parity["int8_held_out"] = held_out
        meta = {
            "version": version_name(created_at, str(training.get("fingerprint", "00000000"))),
            "created_at": created_at,
            "kind": "streamrec-ranker",
            "embedding_space": embedding_space,
            "dimensions": {"dim": model.config.dim, "text_dim": model.config.text_dim,
                           "image_dim": model.config.image_dim, "n_dense": model.config.n_dense},
            "model": model.config.to_dict(),
            "dense_features": list(DENSE_FEATURES),
            "inputs": inputs,
            "outputs": outputs,
            "item_model": {"inputs": item_inputs, "outputs": item_outputs},
            "training": training,
            "train_config": train_config or {},
            "metrics": metrics or {},
            "precision": precision,
            "parity": parity,
            "reference": reference_about,
        }
        bundle = write_bundle(bundles_root, onnx_path, meta, item_model_path(onnx_path), Path(tmp) / REFERENCE_FILE)
    log.info("exported ranker %s (%s) to %s: max |onnx - torch| = %.2e (tolerance %.0e, %d pairs)",
             bundle.version, precision, bundle.path, report.max_abs_diff, tolerance, report.n_checked)
    return bundle, report
