"""Start-up factories: the encoders (exported to ONNX when needed), the learned ranker and
the nearest-item retrieval.

The ranker comes from the newest bundle in ``settings.resolved_ranker_dir`` and runs on
onnxruntime only (no torch). With no bundle there, the transparent blend ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

from models.image_encoder import load_image_encoder
from models.item_embedding import ItemEmbedder
from models.onnx_ranker import OnnxRanker
from models.onnx_retrieval import OnnxRetrieval
from models.onnx_session import active_provider
from models.ranker_check import Reference, check_scores
from models.text_encoder import load_text_encoder
from streams.metrics import Metrics
from streams.settings import Settings

if TYPE_CHECKING:
    from export.bundle import Bundle

log = logging.getLogger(__name__)


def load_embedder(settings: Settings, metrics: Metrics | None = None) -> ItemEmbedder:
    """The item/query embedder for ``settings`` (exports the encoders on first use)."""
    from export.encoders import ensure_encoders  # needs torch; only at start-up

    paths = ensure_encoders(settings.model_dir, settings.text_model_path, settings.image_weights_path)
    text = load_text_encoder(paths.text_onnx, paths.tokenizer_dir, settings.providers)
    image = load_image_encoder(paths.image_onnx, settings.providers)
    for name, enc in (("text", text), ("image", image)):
        provider = active_provider(enc.session)
        log.info("%s encoder runs on %s", name, provider)
        if metrics is not None:
            metrics.provider.labels(name, provider).set(1)
    return ItemEmbedder(text, image, image_dim=settings.image_embedding_dim, image_weight=settings.image_weight)


class RankerUnavailable(RuntimeError):
    """The newest bundle cannot serve this worker; the message says why."""

    def __init__(self, message: str, version: str) -> None:
        super().__init__(message)
        self.version = version


def load_ranker(
    settings: Settings,
    dim: int,
    embedding_space: str | None,
    metrics: Metrics | None = None,
    skip: Collection[str] = (),
) -> OnnxRanker | None:
    """The newest ranker bundle as a scorer, or None when there is none or its version is in ``skip``
    (the one in use, ones already refused).

    Raises :class:`RankerUnavailable` when the newest bundle does not fit (item vector
    space, dimensions, features), cannot be opened, or does not reproduce its reference
    scores here (:mod:`models.ranker_check`); the caller keeps its current scorer.
    """
    from export.bundle import newest_bundle
    from models.ranker_features import DENSE_FEATURES

    root = settings.resolved_ranker_dir
    bundle = newest_bundle(root)
    if bundle is None or bundle.version in skip:
        return None
    try:
        bundle.check_fits(dim, embedding_space, DENSE_FEATURES)
        ranker = OnnxRanker(bundle.model_path, bundle.version, settings.providers,
                            intra_op_threads=settings.ranker_threads or None)
        checked = check_reference(bundle, ranker)
    except Exception as exc:  # BundleError, OSError, ValueError, and onnxruntime's own errors (not RuntimeErrors)
        if metrics is not None:
            metrics.ranker_loads.labels("error").inc()
        raise RankerUnavailable(f"ranker bundle {bundle.path} not used: {exc}", bundle.version) from exc
    log.info("ranker %s loaded from %s, runs on %s; %s", bundle.version, bundle.path, ranker.provider, checked)
    if bundle.precision == "int8" and ranker.device_type != "cpu":
        log.warning("ranker %s has int8 dense layers, which are made for onnxruntime's CPU provider: on %s export a "
                    "float32 bundle (streamrec export without --precision int8)", bundle.version, ranker.provider)
    if metrics is not None:
        metrics.ranker_loads.labels("ok").inc()
        metrics.provider.labels("ranker", ranker.provider).set(1)
    return ranker


def check_reference(bundle: Bundle, ranker: OnnxRanker) -> str:
    """Score ``bundle``'s reference pairs with ``ranker`` (its sessions, on this machine); raise
    ValueError when they differ from PyTorch's beyond the bundle's tolerance (on the CPU provider)
    or lose too much of each user's top 10; else return one line saying how they compare."""
    if bundle.reference_path is None:
        return "no reference scores in the bundle (exported by an older streamrec): not checked on this machine"
    tolerance = bundle.parity_tolerance if ranker.device_type == "cpu" else None
    reference = Reference.load(bundle.reference_path)
    try:
        report = check_scores(ranker, reference, tolerance)
    except Exception as exc:  # onnxruntime's errors are not all RuntimeErrors: any failure refuses the bundle
        raise ValueError(f"{bundle.reference_path}: its reference pairs could not be scored: {exc}") from exc
    if not report.passed:
        hint = ("its int8 products can come out differently on CPUs without VNNI: export the model in float32 "
                "for this machine (streamrec export without --precision int8)" if bundle.precision == "int8" else
                "its graphs compute differently here than where they were exported: check this machine's "
                "onnxruntime version and provider, or export the bundle again on a machine like this one")
        raise ValueError(f"it does not reproduce its reference scores on this machine ({ranker.provider}): "
                         f"{report.describe()}; {hint}")
    return f"reference scores reproduced: {report.describe()}"


def load_retrieval(settings: Settings, metrics: Metrics | None = None) -> OnnxRetrieval | None:
    """Candidate generation's nearest-item search as ``settings.retrieval`` asks: onnxruntime
    (``onnx``; ``auto`` on a GPU provider, and on the CPU for catalogs of at least
    ``retrieval_min_items`` items), else None, which means numpy."""
    if settings.retrieval == "numpy":
        log.info("nearest-item retrieval runs in numpy (STREAMREC_RETRIEVAL=numpy)")
        return None
    retrieval = OnnxRetrieval(settings.providers, intra_op_threads=settings.ranker_threads or None)
    if settings.retrieval == "auto" and retrieval.device_type == "cpu":
        if settings.retrieval_min_items <= 0:
            log.info("nearest-item retrieval runs in numpy: no GPU provider in use (STREAMREC_RETRIEVAL_MIN_ITEMS=0)")
            return None
        retrieval.min_items = settings.retrieval_min_items
        log.info("nearest-item retrieval runs in onnxruntime on the CPU for catalogs of %d items or more, "
                 "in numpy below (STREAMREC_RETRIEVAL_MIN_ITEMS)", retrieval.min_items)
    if metrics is not None:
        metrics.provider.labels("retrieval", retrieval.provider).set(1)
    return retrieval
