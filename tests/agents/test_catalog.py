"""The catalog agent under Faust's test_context, with a real producer to the embedded broker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from streams.demo.catalog import demo_catalog
from streams.internal import ItemVector
from streams.model_loading import load_embedder
from streams.pipeline import build_pipeline
from streams.settings import Settings
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_catalog_agent_embeds_upserts_tombstones_deletes_and_dead_letters_garbage(settings: Settings, read_topic: Any) -> None:
    ensure_topics(settings)
    p = build_pipeline(settings, load_embedder(settings))
    items = demo_catalog(seed=3)[:3]
    items[1] = {**items[1], "image": None}  # one text-only item
    deleted = {"item_id": items[2]["item_id"], "deleted": True}

    async def run() -> None:
        p.app.finalize()
        p.app.flow_control.resume()
        await p.app.producer.start()
        try:
            async with p.app.agents["catalog"].test_context() as agent:
                for item in items:
                    await agent.put(key=item["item_id"].encode(), value=json.dumps(item).encode())
                await agent.put(key=b"x", value=b'{"item_id": "x"')  # malformed
                await agent.put(key=deleted["item_id"].encode(), value=json.dumps(deleted).encode())
                await asyncio.sleep(0.5)  # let the take() window close
            await p.app.producer.flush()
        finally:
            await asyncio.wait_for(p.app.producer.stop(), 10)

    # Not asyncio.run(): cancelling Faust's background services at loop shutdown never completes
    # outside a worker, so the loop is simply closed after the test coroutine is done.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(run(), 120))
    finally:
        loop.close()
    vectors = read_topic(settings, settings.topic_item_vectors, settings.catalog_partitions)
    by_key: dict[str, list[Any]] = {}
    for r in vectors:
        by_key.setdefault(r.key.decode(), []).append(r.value)
    assert set(by_key) == {it["item_id"] for it in items}
    first, second = (ItemVector.from_bytes(by_key[it["item_id"]][-1]) for it in items[:2])
    assert first.vector.shape == (p.embedder.dim,) and abs(float(np.linalg.norm(first.vector)) - 1) < 1e-4
    assert first.category == items[0]["category"] and first.space == p.embedder.version
    text_dim = p.embedder.text.dim
    assert np.linalg.norm(first.vector[text_dim:]) > 0.1  # the image contributes
    assert np.linalg.norm(second.vector[text_dim:]) == 0  # no image: text only
    assert by_key[items[2]["item_id"]][-1] is None  # the delete is a tombstone
    dlq = read_topic(settings, settings.topic_dlq, settings.dlq_partitions)
    assert [r.value for r in dlq] == [b'{"item_id": "x"']
    assert dict(dlq[0].headers)["streamrec.reason"] == b"malformed_json"
