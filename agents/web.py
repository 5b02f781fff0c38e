"""The worker's web pages: ``/metrics`` (Prometheus) and ``/status`` (JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def status(p: Pipeline) -> dict[str, Any]:
    """A small JSON summary of this worker's state."""
    rec = p.recommender
    return {
        "app_id": p.settings.app_id,
        "items_ready": p.items_ready.is_set(),
        "items": len(rec.index),
        "covisited_items": len(rec.covisitation),
        "trending_items": len(rec.trending),
        "users_in_memory": len(p.users),
        "redis_pending": p.redis.pending,
        "model_version": rec.model_version,
        "embedding_space": p.embedder.version,
    }


def register(p: Pipeline) -> None:
    """Attach the web pages."""

    @p.app.page("/metrics")
    async def metrics(web, request):  # type: ignore[no-untyped-def]
        return web.bytes(p.metrics.render(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @p.app.page("/status")
    async def status_page(web, request):  # type: ignore[no-untyped-def]
        return web.json(status(p))
