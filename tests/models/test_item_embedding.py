"""Fused item vectors: text and image parts, and items missing one or both."""

from __future__ import annotations

import numpy as np

from models.image_encoder import OnnxImageEncoder
from models.item_embedding import ItemEmbedder, item_text
from models.text_encoder import OnnxTextEncoder
from tests.models.test_image_encoder import scene


def test_an_item_without_text_is_its_image_alone_and_without_either_is_zero(
    text_encoder: OnnxTextEncoder, image_encoder: OnnxImageEncoder
) -> None:
    emb = ItemEmbedder(text_encoder, image_encoder)
    picture = scene("red_circle")
    both, image_only, text_only, neither = emb.embed_items(
        [item_text("Red ball"), item_text(""), item_text("Red ball"), ""], [picture, picture, None, None]
    )
    t = text_encoder.dim
    assert not image_only[:t].any()  # no text: no embedding of the empty string
    np.testing.assert_allclose(np.linalg.norm(image_only), 1.0, atol=1e-5)
    np.testing.assert_allclose(image_only[t:], both[t:] / np.linalg.norm(both[t:]), atol=1e-5)  # the same picture
    assert not text_only[t:].any() and np.isclose(np.linalg.norm(text_only), 1.0, atol=1e-5)
    np.testing.assert_allclose(both[:t] / np.linalg.norm(both[:t]), text_only[:t], atol=1e-5)
    assert not neither.any()
