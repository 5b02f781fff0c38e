"""A serving replica's HTTP server (aiohttp).

* ``POST /v1/rank`` and ``POST /v1/rank/batch``: the same requests, answers, errors and
  token rule as a worker's (:mod:`agents.rank_api`), answered here, never forwarded;
* ``GET /v1/openapi.json``: the same OpenAPI document;
* ``/health`` (liveness), ``/ready`` (503 until the item state and the user states are
  loaded), ``/status`` (JSON) and ``/metrics`` (Prometheus text).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from agents.rank_api import (
    BadRequest,
    answer_locally,
    check_token,
    json_body,
    openapi_document,
    parse_batch,
    parse_call,
    server_timing,
)
from models.rerank import TrendCache
from streams.replica import Replica

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


def web_app(r: Replica) -> web.Application:
    """The replica's routes."""
    s = r.settings
    trends = TrendCache()

    async def rank(bodies: list[Any], batch: bool, authorization: str | None) -> list[dict[str, Any]]:
        calls = [parse_call(b, s, i if batch else None) for i, b in enumerate(bodies)]
        check_token(s.web_token, authorization, calls)
        return await answer_locally(r, calls, trends)

    def counted(handler: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        """JSON out, a 4xx with the reason for bad input, the handler's time and the status counted."""
        async def wrapped(request: web.Request) -> web.StreamResponse:
            t0 = time.perf_counter()
            try:
                response = _json(await handler(request), headers=server_timing(t0))
            except BadRequest as exc:
                response = _json(exc.body(), status=exc.status)
            r.metrics.rank_requests.labels(str(response.status)).inc()
            return response
        return wrapped

    async def one(request: web.Request) -> Any:
        (res,) = await rank([json_body(await request.read())], False, request.headers.get("Authorization"))
        return res

    async def many(request: web.Request) -> Any:
        reqs = parse_batch(json_body(await request.read()), s)
        return {"responses": await rank(reqs, True, request.headers.get("Authorization"))}

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=openapi_document(), content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        checks = r.readiness()
        return _json({"ready": all(checks.values()), "checks": checks}, status=200 if all(checks.values()) else 503)

    async def status(_: web.Request) -> web.Response:
        return _json(r.status())

    async def metrics(_: web.Request) -> web.Response:
        r.metrics.items.set(len(r.recommender.index))
        return web.Response(body=r.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=max(1 << 20, s.rank_max_batch * s.rank_max_items * 256))
    app.router.add_post("/v1/rank", counted(one))
    app.router.add_post("/v1/rank/batch", counted(many))
    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    return app
