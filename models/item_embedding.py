"""Fusing text and image embeddings into one item vector.

An item vector is ``[sqrt(1 - a) * text, sqrt(a) * P(image)]`` where ``text`` is the
unit MiniLM sentence embedding, ``P`` a fixed seeded random projection of the
unit EfficientNet-Lite0 features to ``image_dim`` dimensions (re-normalised), and
``a`` the image weight (0 when the item has no image). Every part is unit length,
so the fused vector is too, and a search query (text only) lives in the same
space: ``[text(query), 0]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from models.types import ImageEncoder, Matrix, TextEncoder
from models.vectors import l2_normalize


def item_text(title: str, description: str = "", category: str = "", tags: Sequence[str] = ()) -> str:
    """The text of an item that the sentence encoder sees.

    >>> item_text("Pulse Buds", "True wireless earbuds.", "audio", ["bluetooth"])
    'Pulse Buds. True wireless earbuds. Category: audio. Tags: bluetooth.'
    >>> item_text("")
    ''
    """
    parts = [title.strip().rstrip("."), description.strip().rstrip(".")]
    if category:
        parts.append(f"Category: {category}")
    if tags:
        parts.append("Tags: " + ", ".join(tags))
    text = ". ".join(p for p in parts if p)
    return f"{text}." if text else ""  # no text: a behaviour-only item (zero text part)


class ItemEmbedder:
    """Turns item texts (and images when present) into fused unit vectors."""

    def __init__(
        self,
        text: TextEncoder,
        image: ImageEncoder | None,
        image_dim: int = 128,
        image_weight: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.text = text
        self.image = image
        self.image_dim = image_dim
        self.image_weight = image_weight
        self.seed = seed
        self.dim = text.dim + image_dim
        rng = np.random.default_rng(seed)
        in_dim = image.dim if image is not None else 1
        self._projection = (rng.standard_normal((in_dim, image_dim)) / np.sqrt(image_dim)).astype(np.float32)

    @property
    def version(self) -> str:
        """Identifies the vector space (vectors of different versions do not mix)."""
        return f"minilm-l6+effnet-lite0:{self.image_dim}:{self.image_weight}:{self.seed}"

    def embed_items(self, texts: Sequence[str], images: Sequence[NDArray[np.uint8] | None]) -> Matrix:
        """Fused vectors for a batch of items; ``images[i]`` is None for a text-only item.

        An item without text has a zero text part: with an image it is its image alone,
        with neither it gets a zero vector (behaviour-only).
        """
        if len(texts) != len(images):
            raise ValueError("texts and images must have the same length")
        out = np.zeros((len(texts), self.dim), np.float32)
        with_text = [i for i, t in enumerate(texts) if t.strip()]
        if with_text:
            out[with_text, : self.text.dim] = self.text.encode([texts[i] for i in with_text])
        with_image = [i for i, img in enumerate(images) if img is not None]
        a = self.image_weight if (self.image is not None and with_image) else 0.0
        if a > 0 and self.image is not None:
            feats = self.image.encode([images[i] for i in with_image])  # type: ignore[misc]
            projected = l2_normalize(feats @ self._projection)
            out[with_image, : self.text.dim] *= np.sqrt(1.0 - a)
            out[with_image, self.text.dim :] = np.sqrt(a) * projected
        return l2_normalize(out)

    def embed_queries(self, queries: Sequence[str]) -> Matrix:
        """Search queries in the item space (text part only)."""
        out = np.zeros((len(queries), self.dim), np.float32)
        if queries:
            out[:, : self.text.dim] = self.text.encode(list(queries))
        return out
