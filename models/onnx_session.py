"""onnxruntime sessions with an explicit, logged choice of execution provider.

The requested providers are filtered down to those this onnxruntime build offers, and the
CPU provider always closes the list, so a CUDA request degrades to CPU instead of failing:

>>> select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"],
...                  available=["CPUExecutionProvider"])
['CPUExecutionProvider']
>>> select_providers(["CUDAExecutionProvider"],
...                  available=["CUDAExecutionProvider", "CPUExecutionProvider"])
['CUDAExecutionProvider', 'CPUExecutionProvider']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

__all__ = ["CPU_PROVIDER", "active_provider", "create_session", "device_type", "select_providers"]

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"


def select_providers(requested: Sequence[str], available: Sequence[str] | None = None) -> list[str]:
    """Keep the requested providers that are available, in order, always ending with CPU.

    ``available`` defaults to ``onnxruntime.get_available_providers()``.
    """
    if isinstance(requested, str):
        raise TypeError("providers must be a sequence of provider names, not a single string")
    offered = set(ort.get_available_providers() if available is None else available)
    chosen: list[str] = []
    for name in requested:
        if name == CPU_PROVIDER or name in chosen:
            continue
        if name in offered:
            chosen.append(name)
        else:
            # INFO, not WARNING: the default install is CPU-only, where CUDA is never offered.
            logger.info("onnxruntime provider %s requested but not available (have: %s)",
                        name, ", ".join(sorted(offered)))
    chosen.append(CPU_PROVIDER)
    return chosen


def create_session(
    path: Path | bytes,
    providers: Sequence[str] = (CPU_PROVIDER,),
    *,
    intra_op_threads: int | None = None,
    profile_prefix: str | None = None,
) -> ort.InferenceSession:
    """Open an ONNX model (a file, or a serialised model) with the available subset of ``providers``
    (CPU last) and log the one in use.

    With ``profile_prefix``, onnxruntime's profiler records every call (its file is written
    by ``session.end_profiling()``, under that prefix); serving never sets it.
    """
    if isinstance(path, bytes):  # a serialised model built in memory
        model: str | bytes = path
        name = "(in memory)"
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        model, name = str(path), path.name
    chosen = select_providers(providers)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        if intra_op_threads < 0:
            raise ValueError("intra_op_threads must be >= 0 (0 lets onnxruntime decide)")
        options.intra_op_num_threads = intra_op_threads
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    session = ort.InferenceSession(model, sess_options=options, providers=chosen)
    in_use = active_provider(session)
    if in_use != chosen[0]:
        logger.warning("onnx session %s: wanted %s but onnxruntime fell back to %s",
                       name, chosen[0], in_use)
    logger.info("onnx session %s: using %s (requested %s)", name, in_use, list(providers))
    return session


def active_provider(session: ort.InferenceSession) -> str:
    """The provider that runs the session's nodes first (onnxruntime's preferred one)."""
    used = session.get_providers()
    return used[0] if used else CPU_PROVIDER


def device_type(provider: str) -> str:
    """The OrtValue device of a provider, for I/O binding: ``"cuda"`` for CUDA, else ``"cpu"``.

    >>> device_type("CUDAExecutionProvider"), device_type(CPU_PROVIDER)
    ('cuda', 'cpu')
    """
    return "cuda" if provider == "CUDAExecutionProvider" else "cpu"
