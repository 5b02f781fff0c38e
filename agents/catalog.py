"""catalog.items -> item embeddings on the compacted item-vector topic, and ``similar:{item_id}``.

Each upsert is embedded once (text, plus image when it has one) by whichever
worker owns its partition; every worker loads the result into its index. The same
worker then refreshes, in Redis, the nearest-item lists the batch can change: those
of the changed items and of their nearest items (one matrix product over the catalog
with the batch applied), and deletes the lists of deleted items.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from agents.dead_letter import decode_batch
from models.image_preprocess import decode_image
from models.item_embedding import item_text
from models.similar_items import affected_items, catalog_view, nearest_items
from models.types import ItemId, Vector
from streams.images import ImageUnavailable, load_image_bytes
from streams.internal import ItemVector
from streams.records import ItemEvent

if TYPE_CHECKING:
    import faust

    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


def _load_image(p: Pipeline, item: ItemEvent) -> np.ndarray | None:
    if not item.image:
        return None
    try:
        return decode_image(load_image_bytes(item.image, p.settings))
    except (ImageUnavailable, ValueError) as exc:
        p.metrics.image_errors.inc()
        log.warning("item %s: image not used, embedding text only: %s", item.item_id, exc)
        return None


def embed_items(p: Pipeline, items: list[ItemEvent]) -> list[ItemVector]:
    """Fused vectors for a batch of upserts (runs in a thread: onnxruntime releases the GIL)."""
    texts = [item_text(i.title, i.description, i.category, i.tags) for i in items]
    images = [_load_image(p, i) for i in items]
    vectors = p.embedder.embed_items(texts, images)
    return [
        ItemVector(i.item_id, v, p.embedder.version, i.category, i.price, i.title, in_stock=i.in_stock)
        for i, v in zip(items, vectors, strict=True)
    ]


def similar_payload(item_id: ItemId, items: list[tuple[ItemId, float]], space: str) -> bytes:
    """The JSON of ``similar:{item_id}``.

    >>> similar_payload("a", [("b", 0.9)], "s1")[:58]
    b'{"item_id":"a","items":[{"item_id":"b","score":0.9}],"embe'
    """
    return json.dumps({
        "item_id": item_id, "items": [{"item_id": i, "score": s} for i, s in items],
        "embedding_space": space, "generated_at": time.time(),
    }, separators=(",", ":")).encode()


def publish_similar(p: Pipeline, upserts: dict[ItemId, Vector], deleted: list[ItemId]) -> int:
    """Queue the ``similar:{item_id}`` lists a catalog batch changes; returns how many were queued."""
    k = p.settings.similar_k
    if k <= 0 or not (upserts or deleted):
        return 0
    index = p.recommender.index
    before, after = catalog_view(index), catalog_view(index, upserts, deleted)
    targets = affected_items(before, after, [*upserts, *deleted], k)
    for item_id, items in zip(targets, nearest_items(after, targets, k), strict=True):
        p.redis.put(p.settings.similar_key(item_id), similar_payload(item_id, items, p.embedder.version), None,
                    expire=False)
    for item_id in deleted:
        p.redis.delete(p.settings.similar_key(item_id))
    return len(targets)


def register(p: Pipeline) -> None:
    """Attach the catalog agent."""

    @p.app.agent(p.topics.catalog, name="catalog")
    async def catalog(stream: faust.StreamT[Any]) -> None:
        loop = asyncio.get_running_loop()
        async for events in cast("faust.Stream[Any]", stream).take_events(64, within=0.2):
            good = await decode_batch(p, events, ItemEvent, p.limits(catalog=True), key_field="item_id")
            latest = {rec.item_id: rec for _, rec in good}  # last write per item in the batch wins
            upserts = [r for r in latest.values() if not r.deleted]
            for rec in latest.values():
                if rec.deleted:
                    await p.topics.item_vectors.send(key=rec.item_id.encode(), value=None)
            vectors = await loop.run_in_executor(None, embed_items, p, upserts) if upserts else []
            for iv in vectors:
                await p.topics.item_vectors.send(key=iv.item_id.encode(), value=iv.to_bytes())
            publish_similar(p, {iv.item_id: iv.vector for iv in vectors},
                            [r.item_id for r in latest.values() if r.deleted])
            log.debug("catalog batch: %d events, %d upserts", len(events), len(upserts))

