"""Model bundles: a versioned directory holding the ranker's ONNX file and its metadata.

A bundles folder holds one sub-folder per version::

    rankers/
      ranker-20260105T101500Z-3fa2c9d1/
        ranker.onnx          # scores pairs from precomputed item features
        item_features.onnx   # item vectors -> item features, run once per catalog version
        reference.npz        # reference inputs and PyTorch's logits for them, which a
                             # worker reproduces before it serves the bundle
        bundle.json     # version, inputs/outputs, dimensions, features, training data
                        # fingerprint, validation metrics, parity check

A bundle is written under a hidden temporary name and renamed into place when
complete, so a worker polling the folder never sees half a bundle. The newest bundle
is the one created last (``created_at``, then version name). Reading a bundle needs
neither torch nor onnxruntime.

>>> version_name(1767607500.0, "3fa2c9d1e0")
'ranker-20260105T100500Z-3fa2c9d1'
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BUNDLE_FILE = "bundle.json"
MODEL_FILE = "ranker.onnx"
ITEM_MODEL_FILE = "item_features.onnx"  # = models.ranker_features.ITEM_MODEL_FILE (no import: no numpy here)
REFERENCE_FILE = "reference.npz"  # = models.ranker_check.REFERENCE_FILE
FORMAT_VERSION = 1

#: A bundle's precisions: the float graph, or the pair scorer's dense layers as int8
#: (:mod:`export.quantize`).
PRECISIONS: tuple[str, ...] = ("float32", "int8")


class BundleError(ValueError):
    """A bundle is missing, incomplete or does not fit; the message says which and why."""


@dataclass(frozen=True)
class Bundle:
    """A ranker bundle on disk (read-only view of ``bundle.json``)."""

    path: Path
    meta: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def created_at(self) -> float:
        return float(self.meta["created_at"])

    @property
    def model_path(self) -> Path:
        return self.path / str(self.meta.get("model_file", MODEL_FILE))

    @property
    def item_model_path(self) -> Path | None:
        """The item-features model (None for a bundle whose ranker reads item vectors itself)."""
        name = self.meta.get("item_model_file")
        return None if name is None else self.path / str(name)

    @property
    def reference_path(self) -> Path | None:
        """The reference inputs and logits a worker checks (None for bundles exported without them)."""
        name = self.meta.get("reference_file")
        return None if name is None else self.path / str(name)

    @property
    def parity_tolerance(self) -> float | None:
        """The largest |ONNX - PyTorch| logit the export allowed (None when not recorded)."""
        tolerance = self.meta.get("parity", {}).get("tolerance")
        return None if tolerance is None else float(tolerance)

    @property
    def dim(self) -> int:
        return int(self.meta["dimensions"]["dim"])

    @property
    def text_dim(self) -> int:
        return int(self.meta["dimensions"]["text_dim"])

    @property
    def embedding_space(self) -> str | None:
        space = self.meta.get("embedding_space")
        return None if space is None else str(space)

    @property
    def precision(self) -> str:
        """``"float32"``, or ``"int8"`` when the pair scorer's dense layers are quantized (CPU serving)."""
        return str(self.meta.get("precision", "float32"))

    @property
    def dense_features(self) -> list[str]:
        return list(self.meta["dense_features"])

    def check_fits(self, dim: int, embedding_space: str | None, dense_features: tuple[str, ...]) -> None:
        """Raise :class:`BundleError` unless this bundle can rank items of ``embedding_space``."""
        if self.embedding_space is not None and embedding_space is not None and self.embedding_space != embedding_space:
            raise BundleError(
                f"bundle {self.version} was trained on item vectors of space {self.embedding_space!r}, "
                f"this worker embeds items in {embedding_space!r}: retrain with the same encoders and settings"
            )
        if self.dim != dim:
            raise BundleError(f"bundle {self.version} expects {self.dim}-d item vectors, the item index has {dim}")
        if tuple(self.dense_features) != tuple(dense_features):
            raise BundleError(
                f"bundle {self.version} was trained on dense features {self.dense_features}, this streamrec "
                f"assembles {list(dense_features)}: retrain and export with this version"
            )


def version_name(created_at: float, fingerprint: str) -> str:
    """A bundle version: creation time (UTC) and the training data fingerprint's first 8 characters."""
    stamp = datetime.fromtimestamp(created_at, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"ranker-{stamp}-{fingerprint[:8]}"


def read_bundle(path: Path) -> Bundle:
    """The bundle in folder ``path`` (raises :class:`BundleError` with the reason)."""
    path = Path(path)
    meta_path = path / BUNDLE_FILE
    if not meta_path.is_file():
        raise BundleError(f"{path} is not a ranker bundle: {BUNDLE_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{meta_path}: unreadable bundle metadata: {exc}") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path}: expected a JSON object")
    missing = [k for k in ("version", "created_at", "dimensions", "dense_features", "inputs", "outputs") if k not in meta]
    if missing:
        raise BundleError(f"{meta_path}: missing {', '.join(missing)}")
    if int(meta.get("format", 0)) != FORMAT_VERSION:
        raise BundleError(f"{meta_path}: bundle format {meta.get('format')} is not {FORMAT_VERSION}; re-export it")
    bundle = Bundle(path, meta)
    if not bundle.model_path.is_file():
        raise BundleError(f"{path}: the model file {bundle.model_path.name} is missing")
    if bundle.item_model_path is not None and not bundle.item_model_path.is_file():
        raise BundleError(f"{path}: the item model file {bundle.item_model_path.name} is missing")
    if bundle.reference_path is not None and not bundle.reference_path.is_file():
        raise BundleError(f"{path}: the reference file {bundle.reference_path.name} is missing")
    return bundle


def newest_bundle(root: Path) -> Bundle | None:
    """The newest complete bundle under ``root`` (None when there is none).

    Hidden folders (bundles being written) are skipped; a broken bundle is logged and
    skipped, never chosen.
    """
    root = Path(root)
    if not root.is_dir():
        return None
    found: list[Bundle] = []
    for child in root.iterdir():
        if child.name.startswith(".") or not child.is_dir():
            continue
        try:
            found.append(read_bundle(child))
        except BundleError as exc:
            log.warning("skipping %s: %s", child, exc)
    if not found:
        return None
    return max(found, key=lambda b: (b.created_at, b.version))


def resolve_bundle(path: Path) -> Bundle:
    """``path`` as a bundle folder, or else the newest bundle in a bundles folder."""
    path = Path(path)
    if (path / BUNDLE_FILE).is_file():
        return read_bundle(path)
    bundle = newest_bundle(path)
    if bundle is None:
        raise BundleError(f"{path} holds no ranker bundle (run `streamrec train ... --export-to {path}`)")
    return bundle


def write_bundle(root: Path, model_file: Path, meta: dict[str, Any], item_model_file: Path | None = None,
                 reference_file: Path | None = None) -> Bundle:
    """Copy ``model_file`` (and ``item_model_file``, ``reference_file``) and ``meta`` into a new
    bundle ``root/<meta['version']>``, atomically."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    version = str(meta["version"])
    final = root / version
    if final.exists():
        raise BundleError(f"{final} already exists: bundles are immutable, export a new version")
    meta = {**meta, "format": FORMAT_VERSION, "model_file": MODEL_FILE}
    if item_model_file is not None:
        meta["item_model_file"] = ITEM_MODEL_FILE
    if reference_file is not None:
        meta["reference_file"] = REFERENCE_FILE
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        shutil.copyfile(model_file, tmp / MODEL_FILE)
        if item_model_file is not None:
            shutil.copyfile(item_model_file, tmp / ITEM_MODEL_FILE)
        if reference_file is not None:
            shutil.copyfile(reference_file, tmp / REFERENCE_FILE)
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_bundle(final)
