"""The worker's web pages.

* ``/metrics``: Prometheus text format;
* ``/status``: a JSON summary of this worker;
* ``/health``: liveness (200 while the app runs, 503 once it crashed);
* ``/ready``: readiness (503 until the models are loaded, the item state is loaded and
  the tables are recovered from their changelogs, and again while a rebalance recovers them);
* ``/ui``: the built-in status page (live lag per partition, throughput and latency
  charts), plain HTML, JS and CSS shipped in :mod:`agents.static`, no CDN.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CONTENT_TYPE_LATEST

from streams.lag import input_topics
from streams.metrics import LiveState

if TYPE_CHECKING:
    from faust.tables.manager import TableManager
    from faust.web import Request, Response, View

    from streams.pipeline import Pipeline

#: Files of the status page: URL path -> (package file, content type).
ASSETS = {
    "/ui": ("status.html", "text/html"),
    "/ui/status.js": ("status.js", "application/javascript"),
    "/ui/status.css": ("status.css", "text/css"),
}


def readiness(p: Pipeline) -> dict[str, bool]:
    """Each readiness check by name; the worker is ready when all pass."""
    app = p.app
    recovery = cast("TableManager", app.tables).recovery
    return {
        "models_loaded": p.embedder is not None and p.recommender is not None,
        "item_state_loaded": p.items_ready.is_set(),
        "tables_recovered": recovery.completed.is_set() and not app.in_recovery,
    }


def assigned_partitions(p: Pipeline) -> dict[str, int]:
    """How many input partitions this worker owns right now, per topic."""
    return {topic: len(parts) for topic, parts in assignment(p).items()}


def assignment(p: Pipeline) -> dict[str, list[int]]:
    """The input partitions this worker owns right now, per topic."""
    topics = set(input_topics(p.settings))
    out: dict[str, list[int]] = {t: [] for t in sorted(topics)}
    try:
        tps = p.app.consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer yet
        return out
    for tp in tps:
        if tp.topic in topics:
            out[tp.topic].append(tp.partition)
    return {t: sorted(parts) for t, parts in out.items()}


def live_state(p: Pipeline) -> LiveState:
    """What ``/metrics`` reports about the running worker."""
    return LiveState(
        model_version=str(p.recommender.model_version),
        embedding_space=str(p.embedder.version),
        assigned=assigned_partitions(p),
        checks=readiness(p),
        users_in_memory=len(p.users),
    )


def status(p: Pipeline) -> dict[str, Any]:
    """A small JSON summary of this worker's state."""
    rec = p.recommender
    checks = readiness(p)
    lag = p.metrics.lag.latest
    return {
        "app_id": p.settings.app_id,
        "ready": all(checks.values()),
        "checks": checks,
        "items_ready": p.items_ready.is_set(),
        "items": len(rec.index),
        "covisited_items": len(rec.covisitation),
        "trending_items": len(rec.trending),
        "users_in_memory": len(p.users),
        "redis_pending": p.redis.pending,
        "model_version": rec.model_version,
        "embedding_space": p.embedder.version,
        "assigned_partitions": assigned_partitions(p),
        "assignment": assignment(p),
        # Seconds since the group last answered a heartbeat or gave an assignment; past the session
        # timeout the worker leaves its events to the partitions' owner (streams/membership.py).
        "membership_confirmed_s_ago": _rounded(p.app.membership.age()),
        "lag": None if lag is None else {"total": lag.total, "max_seconds": lag.max_seconds,
                                          "measured_at": lag.measured_at},
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _asset(name: str) -> bytes:
    return resources.files("agents.static").joinpath(name).read_bytes()


def register(p: Pipeline) -> None:
    """Attach the web pages and the live-state metrics."""
    p.metrics.live.source = lambda: live_state(p)

    @p.app.page("/metrics")
    async def metrics(view: View, request: Request) -> Response:
        return view.bytes(p.metrics.render(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @p.app.page("/status")
    async def status_page(view: View, request: Request) -> Response:
        return view.json(status(p))

    @p.app.page("/health")
    async def health(view: View, request: Request) -> Response:
        if p.app.crashed:
            return view.json({"status": "crashed", "reason": repr(p.app._crash_reason)}, status=503)
        return view.json({"status": "ok"})

    @p.app.page("/ready")
    async def ready(view: View, request: Request) -> Response:
        checks = readiness(p)
        ok = all(checks.values())
        return view.json({"ready": ok, "checks": checks}, status=200 if ok else 503)

    cache: dict[str, bytes] = {}

    def asset_page(name: str, ctype: str) -> Callable[[View, Request], Awaitable[Response]]:
        async def handler(view: View, request: Request) -> Response:
            if name not in cache:
                cache[name] = _asset(name)
            return view.bytes(cache[name], content_type=ctype, headers={"Cache-Control": "no-cache"})

        return handler

    for path, (name, ctype) in ASSETS.items():
        p.app.page(path, name=f"streamrec-ui-{name}")(asset_page(name, ctype))

    from agents import rank_api

    rank_api.register(p)  # /v1/rank, /v1/rank/batch, /v1/openapi.json
