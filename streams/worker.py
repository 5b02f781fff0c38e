"""Running one worker process: addresses, topics, models, then the Faust worker loop."""

from __future__ import annotations

import logging
import os

import faust

from streams.metrics import Metrics
from streams.model_loading import load_embedder
from streams.pipeline import Pipeline, build_pipeline
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def prepare_worker(settings: Settings) -> Pipeline:
    """Everything up to (not including) the event loop, for resolved addresses."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if settings.create_topics_on_start:
        report = ensure_topics(settings)
        if report.created:
            log.info("created topics: %s", ", ".join(report.created))
    metrics = Metrics()
    embedder = load_embedder(settings, metrics)
    return build_pipeline(settings, embedder, metrics)


def run_worker(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM (addresses must be resolved)."""
    pipeline = prepare_worker(settings)
    worker = faust.Worker(pipeline.app, loglevel=settings.log_level.upper(), quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
