"""ONNX export of the text and image towers, validated against PyTorch before use.

Each export traces the PyTorch tower (TorchScript exporter, opset 17), writes to a temp
file, runs the graph in onnxruntime (CPU) next to PyTorch on real and random inputs, and
only renames it into place when the largest absolute difference is within tolerance;
otherwise :class:`ParityError` is raised and nothing is left behind.

:func:`ensure_encoders` caches exports in a model directory, with a JSON manifest next to
each ``.onnx`` recording what it was made from; a matching manifest means no re-export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from models.image_preprocess import IMAGE_SIZE, preprocess
from models.image_tower import default_image_weights_path, load_image_tower
from models.onnx_session import CPU_PROVIDER, create_session
from models.text_encoder import MAX_SEQ_LENGTH, default_text_model_path, load_tokenizer, pad_batch
from models.text_tower import TextTower, load_text_tower

__all__ = [
    "EXPORT_VERSION",
    "IMAGE_ONNX_NAME",
    "IMAGE_TOLERANCE",
    "OPSET",
    "TEXT_ONNX_NAME",
    "TEXT_TOLERANCE",
    "EncoderPaths",
    "ParityError",
    "ParityReport",
    "ensure_encoders",
    "export_image_encoder",
    "export_text_encoder",
    "manifest_path",
]

logger = logging.getLogger(__name__)

#: Largest |onnxruntime - PyTorch| allowed per embedding component (unit vectors). Measured
#: on x86-64 CPU with onnxruntime 1.32 / torch 2.13: text ~2.5e-7, image ~4e-7; the bound
#: leaves ~40x headroom for other CPUs' kernels while any real export bug is >1e-3.
TEXT_TOLERANCE = 1e-5
IMAGE_TOLERANCE = 1e-5
OPSET = 17
#: Bump when the export recipe changes, so cached exports are redone.
EXPORT_VERSION = 1
TEXT_ONNX_NAME = "text_encoder.onnx"
IMAGE_ONNX_NAME = "image_encoder.onnx"

#: One parity check: onnxruntime feeds, and a thunk computing the PyTorch reference.
_Case = tuple[dict[str, NDArray[Any]], Callable[[], NDArray[np.float32]]]

# Real sentences of very different lengths, incl. empty, non-ASCII and one past 256 tokens.
_PARITY_SENTENCES: tuple[str, ...] = (
    "wireless earbuds",
    "Bluetooth headphones with active noise cancelling and 30 hours of battery life",
    "cast iron frying pan, pre-seasoned, 26 cm",
    "",
    "Ça coûte 12,99 € — livraison gratuite 🚚",
    "kids' running shoes size 32 " * 60,
)


class ParityError(RuntimeError):
    """The ONNX export disagrees with the PyTorch model by more than the tolerance."""


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Outcome of a validated export: worst absolute difference seen and what was checked."""

    max_abs_diff: float
    tolerance: float
    n_checked: int
    export_seconds: float = 0.0
    top_k_agreement: float | None = None  # ranker only: share of each user's top 10 kept, on real pairs


@dataclasses.dataclass(frozen=True)
class EncoderPaths:
    """Where the serving side finds the exported encoders and the tokenizer."""

    text_onnx: Path
    image_onnx: Path
    tokenizer_dir: Path


# --- export ------------------------------------------------------------------------


def _quiet_export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                  input_names: list[str], dynamic_axes: dict[str, dict[int, str]]) -> None:
    """torch.onnx.export with the legacy (TorchScript) exporter, minus its expected warnings."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
        warnings.filterwarnings("ignore", message=".*Constant folding - Only steps=1.*")
        warnings.filterwarnings("ignore", message=".*The feature will be removed.*",
                                category=DeprecationWarning)
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=input_names,
            output_names=["embedding"],
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )


def _check_tolerance(tolerance: float) -> None:
    if not tolerance >= 0.0:  # also rejects NaN
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")


def _compare(cases: list[_Case],
             onnx_path: Path) -> tuple[float, int]:
    """Run each case in onnxruntime (CPU) and PyTorch: (max abs diff, rows compared)."""
    onnx.checker.check_model(str(onnx_path))
    session = create_session(onnx_path, [CPU_PROVIDER])
    worst, rows = 0.0, 0
    for feeds, reference in cases:
        (got,) = session.run(["embedding"], feeds)
        want = reference()
        if got.shape != want.shape:
            raise ParityError(f"{onnx_path.name}: output shape {got.shape} != PyTorch {want.shape}")
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))))
        rows += len(want)
    return worst, rows


def _finish(tmp: Path, out_path: Path, worst: float, rows: int, tolerance: float,
            started: float, what: str) -> ParityReport:
    if not worst <= tolerance:  # NaN counts as a failure
        raise ParityError(
            f"{what} ONNX export differs from PyTorch by max |diff| = {worst:.3e} "
            f"> tolerance {tolerance:.1e} over {rows} embeddings"
        )
    os.replace(tmp, out_path)
    report = ParityReport(max_abs_diff=worst, tolerance=tolerance, n_checked=rows,
                          export_seconds=time.perf_counter() - started)
    logger.info("exported %s encoder to %s in %.1fs: max |onnx - torch| = %.2e (tolerance %.0e, %d rows)",
                what, out_path, report.export_seconds, worst, tolerance, rows)
    return report


@contextlib.contextmanager
def _temp_next_to(out_path: Path) -> Iterator[Path]:
    """A temp file path in ``out_path``'s directory (same filesystem, so rename is atomic)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _text_cases(tower: TextTower, source: Path) -> list[_Case]:
    tokenizer = load_tokenizer(source)
    pad = tokenizer.token_to_id("[PAD]") or 0
    real = pad_batch([e.ids for e in tokenizer.encode_batch(list(_PARITY_SENTENCES))], pad)
    single = pad_batch([tokenizer.encode(_PARITY_SENTENCES[1]).ids], pad)
    rng = np.random.default_rng(0)
    vocab = tokenizer.get_vocab_size()
    rand_ids = rng.integers(1000, vocab, size=(4, 48), dtype=np.int64)
    rand_mask = np.ones_like(rand_ids)
    for row, length in enumerate((48, 30, 7, 1)):
        rand_mask[row, length:] = 0
    long_ids = rng.integers(1000, vocab, size=(2, MAX_SEQ_LENGTH), dtype=np.int64)
    long_mask = np.ones_like(long_ids)

    def case(ids: NDArray[np.int64], mask: NDArray[np.int64]) -> _Case:
        def reference() -> NDArray[np.float32]:
            with torch.no_grad():
                return tower(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        return {"input_ids": ids, "attention_mask": mask}, reference

    return [case(*real), case(*single), case(rand_ids, rand_mask), case(long_ids, long_mask)]


def export_text_encoder(out_path: Path, source: Path | None = None,
                        tolerance: float = TEXT_TOLERANCE) -> ParityReport:
    """Export the text tower to ``out_path`` (atomically) after checking parity with PyTorch.

    Inputs ``input_ids``/``attention_mask`` (int64, dynamic batch and sequence), output
    ``embedding`` (float32, (batch, 384)). Raises ParityError when the largest absolute
    difference on real sentences and random token ids exceeds ``tolerance``.
    """
    _check_tolerance(tolerance)
    started = time.perf_counter()
    source = Path(source) if source is not None else default_text_model_path()
    out_path = Path(out_path)
    tower = load_text_tower(source)
    cases = _text_cases(tower, source)
    sample_ids = cases[0][0]["input_ids"]
    sample_mask = cases[0][0]["attention_mask"]
    with _temp_next_to(out_path) as tmp:
        _quiet_export(
            tower,
            (torch.from_numpy(sample_ids), torch.from_numpy(sample_mask)),
            tmp,
            input_names=["input_ids", "attention_mask"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embedding": {0: "batch"},
            },
        )
        worst, rows = _compare(cases, tmp)
        return _finish(tmp, out_path, worst, rows, tolerance, started, "text")


def _synthetic_images() -> list[NDArray[np.uint8]]:
    """A few PIL-drawn images of different sizes and aspect ratios."""
    images = []
    specs = [((320, 240), (200, 30, 30)), ((200, 400), (20, 120, 220)), ((224, 224), (240, 240, 240))]
    for index, (size, colour) in enumerate(specs):
        img = Image.new("RGB", size, colour)
        draw = ImageDraw.Draw(img)
        w, h = size
        draw.ellipse((w // 5, h // 5, 4 * w // 5, 4 * h // 5), fill=(250 - 80 * index, 200, 40 * index))
        draw.rectangle((0, 0, w // 3, h // 6), fill=(0, 0, 0))
        draw.line((0, h - 1, w - 1, 0), fill=(255, 255, 0), width=5)
        images.append(np.asarray(img, dtype=np.uint8))
    gradient = np.linspace(0, 255, 256, dtype=np.float32)
    red, green = np.meshgrid(gradient, gradient[::-1])
    images.append(np.stack([red, green, np.full_like(red, 128.0)], axis=-1).astype(np.uint8))
    return images


def export_image_encoder(out_path: Path, weights: Path | None = None,
                         tolerance: float = IMAGE_TOLERANCE) -> ParityReport:
    """Export the image tower to ``out_path`` (atomically) after checking parity with PyTorch.

    Input ``pixel_values`` (float32, (batch, 3, 224, 224), dynamic batch), output
    ``embedding`` (float32, (batch, 1280)). Raises ParityError when the largest absolute
    difference on random inputs and synthetic images exceeds ``tolerance``.
    """
    _check_tolerance(tolerance)
    started = time.perf_counter()
    out_path = Path(out_path)
    tower = load_image_tower(weights)
    rng = np.random.default_rng(0)
    random_pixels = rng.uniform(-1.0, 1.0, size=(3, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    synthetic = preprocess(_synthetic_images())

    def case(pixels: NDArray[np.float32]) -> _Case:
        def reference() -> NDArray[np.float32]:
            with torch.no_grad():
                return tower(torch.from_numpy(pixels)).numpy()
        return {"pixel_values": pixels}, reference

    with _temp_next_to(out_path) as tmp:
        _quiet_export(
            tower,
            (torch.from_numpy(random_pixels[:2].copy()),),
            tmp,
            input_names=["pixel_values"],
            dynamic_axes={"pixel_values": {0: "batch"}, "embedding": {0: "batch"}},
        )
        worst, rows = _compare([case(random_pixels), case(synthetic), case(synthetic[:1].copy())], tmp)
        return _finish(tmp, out_path, worst, rows, tolerance, started, "image")


# --- cache -------------------------------------------------------------------------


def manifest_path(onnx_path: Path) -> Path:
    """The JSON manifest kept next to an export: ``<name>.onnx.json``."""
    return onnx_path.with_name(onnx_path.name + ".json")


def _fingerprint(files: list[Path]) -> list[dict[str, Any]]:
    """Path, size and mtime of each source file: cheap change detection, no hashing."""
    out = []
    for path in files:
        st = path.stat()
        out.append({"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def _text_source_files(source: Path) -> list[Path]:
    weights = [p for p in (source / "model.safetensors", source / "pytorch_model.bin") if p.is_file()]
    if not weights:
        raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {source}")
    return [source / "config.json", *weights]


def _identity(kind: str, files: list[Path], tolerance: float) -> dict[str, Any]:
    """The manifest fields that must match for a cached export to be reused."""
    return {"kind": kind, "export_version": EXPORT_VERSION, "opset": OPSET,
            "source": _fingerprint(files), "tolerance": tolerance}


def _manifest_matches(onnx_path: Path, identity: dict[str, Any]) -> bool:
    try:
        manifest = json.loads(manifest_path(onnx_path).read_text(encoding="utf-8"))
        onnx_size = onnx_path.stat().st_size
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("onnx_size") != onnx_size:
        return False
    return all(manifest.get(key) == value for key, value in identity.items())


def _write_manifest(onnx_path: Path, identity: dict[str, Any], report: ParityReport) -> None:
    manifest = {
        **identity,
        "onnx_size": onnx_path.stat().st_size,
        "max_abs_diff": report.max_abs_diff,
        "n_checked": report.n_checked,
        "export_seconds": round(report.export_seconds, 3),
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
    }
    target = manifest_path(onnx_path)
    with _temp_next_to(target) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, target)


@contextlib.contextmanager
def _export_lock(model_dir: Path) -> Iterator[None]:
    """Serialise exports into one directory across processes (POSIX advisory lock)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames still keep files whole
        yield
        return
    with open(model_dir / ".export.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_encoders(model_dir: Path, text_source: Path | None = None,
                    image_weights: Path | None = None) -> EncoderPaths:
    """Export the encoders into ``model_dir`` unless up-to-date exports are already there.

    An export is redone when its ``.onnx`` is missing or its manifest (source files'
    path/size/mtime, tolerance, exporter version, onnx size) does not match.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    text_dir = Path(text_source) if text_source is not None else default_text_model_path()
    weights = Path(image_weights) if image_weights is not None else default_image_weights_path()
    paths = EncoderPaths(text_onnx=model_dir / TEXT_ONNX_NAME, image_onnx=model_dir / IMAGE_ONNX_NAME,
                         tokenizer_dir=text_dir)
    jobs: list[tuple[Path, dict[str, Any], Callable[[], ParityReport]]] = [
        (paths.text_onnx, _identity("text", _text_source_files(text_dir), TEXT_TOLERANCE),
         lambda: export_text_encoder(paths.text_onnx, text_dir, TEXT_TOLERANCE)),
        (paths.image_onnx, _identity("image", [weights], IMAGE_TOLERANCE),
         lambda: export_image_encoder(paths.image_onnx, weights, IMAGE_TOLERANCE)),
    ]
    with _export_lock(model_dir):
        for onnx_path, identity, export in jobs:
            if _manifest_matches(onnx_path, identity):
                logger.debug("%s is up to date", onnx_path)
                continue
            logger.info("exporting %s (missing or stale)", onnx_path)
            _write_manifest(onnx_path, identity, export())
    return paths
