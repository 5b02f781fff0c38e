"""Hot swap of the learned ranker: a newer bundle replaces the scorer without a restart.

A background task looks for a newer bundle every ``ranker_poll_s`` seconds. The
new onnxruntime session is opened in a thread, then the recommender's scorer is
replaced on the event loop, between two micro-batches: the events agent is never
paused, and no event is skipped or scored twice. Lists ranked by the new model
carry its version in ``model_version``. A bundle that does not fit this worker
(another item vector space, other dimensions) or does not reproduce its reference scores
on this machine (:mod:`models.ranker_check`) is refused once, logged and counted
in ``streamrec_ranker_loads_total{outcome="error"}``; the current model keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from agents.item_state import ItemStateHolder
from streams.model_loading import RankerUnavailable, load_ranker

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


async def swap_if_newer(p: ItemStateHolder, refused: set[str]) -> bool:
    """Load the newest bundle if it is neither in use nor in ``refused``, and swap it in."""
    rec = p.recommender
    loop = asyncio.get_running_loop()
    skip = {rec.scorer.version, *refused}
    try:
        ranker = await loop.run_in_executor(
            None, lambda: load_ranker(p.settings, rec.index.dim, p.embedder.version, p.metrics, skip)
        )
    except RankerUnavailable as exc:
        refused.add(exc.version)
        log.error("%s; still ranking with %s", exc, rec.scorer.version)
        return False
    if ranker is None:
        return False
    previous = rec.scorer.version
    rec.scorer = ranker  # on the event loop: the next micro-batch is ranked by the new model
    log.info("ranker swapped without a restart: %s -> %s (%s)", previous, ranker.version, ranker.provider)
    return True


async def watch_bundles(p: ItemStateHolder, interval: float) -> None:
    """Look for a newer bundle every ``interval`` seconds, forever."""
    refused: set[str] = set()
    while True:
        await asyncio.sleep(interval)
        try:
            await swap_if_newer(p, refused)
        except Exception:  # never let one bad poll end the watcher
            log.exception("looking for a newer ranker bundle failed; trying again in %.0fs", interval)


def register(p: Pipeline) -> None:
    """Attach the bundle watcher (nothing when ``ranker_poll_s`` is 0)."""
    interval = p.settings.ranker_poll_s
    if interval <= 0:
        return

    @p.app.task
    async def ranker_watch() -> None:
        await watch_bundles(p, interval)
