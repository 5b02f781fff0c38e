"""streamrec agents: thin Faust agents that decode events, call ``models`` and send.

Each module defines one concern and a ``register(pipeline)`` function that attaches
its agent (or task, or web page) to the pipeline's app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def register_all(pipeline: Pipeline) -> None:
    """Attach every agent, background task and web page to ``pipeline.app``."""
    from agents import catalog, events, item_state, refresh, web

    for module in (item_state, catalog, events, refresh, web):
        module.register(pipeline)
