"""Start-up factory for the encoders: export to ONNX when needed, then open sessions."""

from __future__ import annotations

import logging

from models.image_encoder import load_image_encoder
from models.item_embedding import ItemEmbedder
from models.onnx_session import active_provider
from models.text_encoder import load_text_encoder
from streams.metrics import Metrics
from streams.settings import Settings

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
