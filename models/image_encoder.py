"""Serving-side image encoder: the exported EfficientNet-Lite0 ONNX graph behind ImageEncoder.

Torch-free: images are preprocessed with numpy/PIL (:mod:`models.image_preprocess`) and
embedded by one onnxruntime call per chunk of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from models.image_preprocess import IMAGE_SIZE, preprocess
from models.onnx_session import CPU_PROVIDER, create_session
from models.types import Matrix

__all__ = ["DEFAULT_IMAGE_BATCH", "IMAGE_DIM", "OnnxImageEncoder", "load_image_encoder"]

#: Width of the pooled EfficientNet-Lite0 features (the head conv's channels).
IMAGE_DIM = 1280
#: Images per onnxruntime call; bigger batches are split into chunks of this size.
DEFAULT_IMAGE_BATCH = 16


class OnnxImageEncoder:
    """ImageEncoder over an exported image tower (input pixel_values, output embedding)."""

    dim: int = IMAGE_DIM

    def __init__(self, session: ort.InferenceSession, batch_size: int = DEFAULT_IMAGE_BATCH) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        names = [i.name for i in session.get_inputs()]
        if names != ["pixel_values"]:
            raise ValueError(f"not an image tower export: inputs are {names}")
        self._session = session
        self._batch_size = batch_size

    @property
    def session(self) -> ort.InferenceSession:
        """The underlying onnxruntime session."""
        return self._session

    def encode(self, images: Sequence[NDArray[np.uint8]]) -> Matrix:
        """Embed uint8 ``(H, W, 3)`` RGB images: float32 ``(len(images), 1280)``, unit rows."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), self._batch_size):
            chunk = images[start : start + self._batch_size]
            out[start : start + len(chunk)] = self.encode_pixels(preprocess(chunk))
        return out

    def encode_pixels(self, pixel_values: NDArray[np.float32]) -> Matrix:
        """Embed already preprocessed float32 ``(n, 3, 224, 224)`` input in one call."""
        pixels = np.ascontiguousarray(pixel_values, dtype=np.float32)
        if pixels.ndim != 4 or pixels.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"expected (n, 3, {IMAGE_SIZE}, {IMAGE_SIZE}) pixels, got {pixels.shape}")
        if len(pixels) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        (emb,) = self._session.run(["embedding"], {"pixel_values": pixels})
        return np.asarray(emb, dtype=np.float32)


def load_image_encoder(
    onnx_path: Path,
    providers: Sequence[str] = (CPU_PROVIDER,),
    batch_size: int = DEFAULT_IMAGE_BATCH,
) -> OnnxImageEncoder:
    """Open an exported image tower as an :class:`OnnxImageEncoder`."""
    return OnnxImageEncoder(create_session(onnx_path, providers), batch_size=batch_size)
