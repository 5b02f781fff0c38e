"""Shared type aliases and the Protocols at the boundaries between parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeAlias

import numpy as np
from numpy.typing import NDArray

UserId: TypeAlias = str
ItemId: TypeAlias = str
Timestamp: TypeAlias = float  # Unix epoch seconds
Vector: TypeAlias = NDArray[np.float32]  # shape (d,)
Matrix: TypeAlias = NDArray[np.float32]  # shape (n, d)


class TextEncoder(Protocol):
    """Turns texts into L2-normalised sentence embeddings."""

    dim: int

    def encode(self, texts: Sequence[str]) -> Matrix:
        """Embed a batch of texts: shape (len(texts), dim), unit rows."""
        ...


class ImageEncoder(Protocol):
    """Turns decoded RGB images into L2-normalised feature vectors."""

    dim: int

    def encode(self, images: Sequence[NDArray[np.uint8]]) -> Matrix:
        """Embed a batch of HxWx3 uint8 images: shape (len(images), dim), unit rows."""
        ...
