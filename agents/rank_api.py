"""``POST /v1/rank``: re-rank the items a caller sends for one user, at request time.

* ``POST /v1/rank`` with ``{user_id, items, surface?, query?, filters?, shown?}``
  answers the items ordered for the user, with scores and a reason per item;
* ``POST /v1/rank/batch`` with ``{requests: [...]}`` answers ``{responses: [...]}``, in order;
* ``GET /v1/openapi.json``: the OpenAPI 3.1 document of both (shipped in :mod:`agents.static`).

A request is answered by the worker that owns the user's partition of the ``users``
table (Faust's router finds it; the body is forwarded with one HTTP POST, since
``app.table_route`` forwards no request body). When no owner is known (during a
rebalance) or the owner cannot be reached, the receiving worker answers from what it
holds (``personalised: false`` when it has no state for the user). With
``"shown": true`` the answer is logged as an impression on ``events.impressions``
under the returned ``request_id``; as that changes state, such a request must carry
``Authorization: Bearer <STREAMREC_WEB_TOKEN>`` (401 otherwise; 403 on a worker with no
token set). Bad input gets a 4xx with the reason, never a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from faust.web import View
from pydantic import SecretStr
from yarl import URL

from models.filters import FilterError, ItemFilter
from models.interest import UserState
from models.item_embedding import ItemEmbedder
from models.recommender import Recommender
from models.rerank import RankRequest, RankResult, TrendCache, rerank
from streams.metrics import Metrics
from streams.partitioning import partition_of_key
from streams.records import MAX_ID, MAX_IMPRESSION_ITEMS, MAX_QUERY
from streams.settings import Settings

if TYPE_CHECKING:
    from faust.web import Request, Response

    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)

#: Set on a request forwarded to the owning worker, which then answers it itself.
ROUTED_HEADER = "X-Streamrec-Routed"
REQUEST_FIELDS = ("user_id", "items", "surface", "query", "filters", "shown")
OPENAPI_FILE = "openapi.json"


class BadRequest(Exception):
    """A request that cannot be answered: HTTP status, error code and the reason."""

    def __init__(self, status: int, code: str, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.index = status, code, reason, index

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "reason": self.reason}
        if self.index is not None:
            out["index"] = self.index
        return out


class RankState(Protocol):
    """What answering a rank request reads: a worker (:class:`~streams.pipeline.Pipeline`)
    or a serving replica (:class:`~streams.replica.Replica`)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def recommender(self) -> Recommender: ...
    @property
    def embedder(self) -> ItemEmbedder: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def items_ready(self) -> asyncio.Event: ...

    def user_bytes(self, user_id: str) -> bytes | None:
        """The user's stored state, or None when none is held."""
        ...

    async def send_impression(self, key: bytes, value: bytes) -> None:
        """Log a shown list on the impressions topic."""
        ...


@dataclass(frozen=True)
class RankCall:
    """One validated request."""

    user_id: str
    items: list[str]
    surface: str
    query: str | None
    filter: ItemFilter
    shown: bool


def _id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID or not value.isprintable():
        raise BadRequest(400, "malformed_id", f"{where} must be a string of 1 to {MAX_ID} printable characters")
    return value


def parse_call(raw: Any, s: Settings, index: int | None = None) -> RankCall:
    """Validate one request object; raises :class:`BadRequest` with the reason."""
    try:
        if not isinstance(raw, dict):
            raise BadRequest(400, "bad_request", "the request must be a JSON object")
        unknown = sorted(set(raw) - set(REQUEST_FIELDS))
        if unknown:
            raise BadRequest(400, "unknown_field",
                             f"unknown field(s): {', '.join(unknown)} (known: {', '.join(REQUEST_FIELDS)})")
        if "user_id" not in raw:
            raise BadRequest(400, "missing_field", "user_id is required")
        user_id = _id(raw["user_id"], "user_id")
        items = raw.get("items")
        if not isinstance(items, list) or not items:
            raise BadRequest(400, "bad_items", "items must be a non-empty list of item ids")
        if len(items) > s.rank_max_items:
            raise BadRequest(413, "too_many_items",
                             f"{len(items)} items, at most {s.rank_max_items} per request (STREAMREC_RANK_MAX_ITEMS)")
        ids = [_id(v, f"items[{i}]") for i, v in enumerate(items)]
        if len(set(ids)) != len(ids):
            dup = next(i for n, i in enumerate(ids) if i in ids[:n])
            raise BadRequest(400, "duplicate_items", f"item {dup!r} appears more than once in items")
        surface = raw.get("surface", "home")
        if not isinstance(surface, str) or surface not in s.surfaces:
            raise BadRequest(400, "unknown_surface",
                             f"unknown surface {surface!r} (known: {', '.join(sorted(s.surfaces))})")
        query = raw.get("query")
        if query is not None and (not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY):
            raise BadRequest(400, "bad_query", f"query must be a non-blank string of at most {MAX_QUERY} characters")
        shown = raw.get("shown", False)
        if not isinstance(shown, bool):
            raise BadRequest(400, "bad_shown", "shown must be true or false")
        if shown and len(ids) > MAX_IMPRESSION_ITEMS:
            raise BadRequest(400, "too_many_shown",
                             f"a shown list is logged as an impression of at most {MAX_IMPRESSION_ITEMS} items "
                             f"(got {len(ids)}); send fewer items or shown: false")
        try:
            flt = ItemFilter.from_json(raw.get("filters"), max_ids=s.rank_max_items, max_len=MAX_ID)
        except FilterError as exc:
            raise BadRequest(400, "bad_filters", str(exc)) from exc
        surface_filter = ItemFilter.from_json(s.surfaces[surface].filter)
        return RankCall(user_id, ids, surface, query, surface_filter.merged(flt), shown)
    except BadRequest as exc:
        exc.index = index
        raise


def parse_batch(body: Any, s: Settings) -> list[Any]:
    """The request objects of a ``/v1/rank/batch`` body (each still to be validated)."""
    if not isinstance(body, dict) or set(body) != {"requests"} or not isinstance(body["requests"], list):
        raise BadRequest(400, "bad_request", 'the body must be {"requests": [request, ...]}')
    reqs = body["requests"]
    if not 1 <= len(reqs) <= s.rank_max_batch:
        raise BadRequest(413 if reqs else 400, "bad_batch_size",
                         f"{len(reqs)} requests; send 1 to {s.rank_max_batch} (STREAMREC_RANK_MAX_BATCH)")
    return reqs


def json_body(raw: bytes) -> Any:
    """The parsed JSON of a request body; :class:`BadRequest` when it is not JSON."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(400, "bad_json", f"the body is not valid JSON: {exc}") from exc


def _impression(call: RankCall, request_id: str, result: RankResult, ts: float) -> bytes:
    return json.dumps({
        "request_id": request_id, "user_id": call.user_id, "item_ids": [x.item_id for x in result.items],
        "ts": ts, "surface": call.surface,
    }, separators=(",", ":")).encode()


async def answer_locally(
    p: RankState, calls: Sequence[RankCall], trends: TrendCache | None = None
) -> list[dict[str, Any]]:
    """Rank ``calls`` from the state ``p`` holds: one scoring call for all of them."""
    if not p.items_ready.is_set():
        raise BadRequest(503, "not_ready", "the worker is still loading the catalog; retry shortly")
    queries = [c.query for c in calls if c.query is not None]
    vectors: list[np.ndarray] = []
    if queries:
        loop = asyncio.get_running_loop()
        vectors = list(await loop.run_in_executor(None, p.embedder.embed_queries, queries))
    now = time.time()
    requests: list[RankRequest] = []
    it = iter(vectors)
    for c in calls:
        raw = p.user_bytes(c.user_id)
        state = None if raw is None else UserState.from_bytes(raw)
        requests.append(RankRequest(c.user_id, c.items, state, next(it) if c.query is not None else None,
                                    c.filter, now))
    t0 = time.perf_counter()
    per_source = p.settings.candidates_per_source
    trend = trends.get(p.recommender, per_source, time.monotonic()) if trends is not None else None
    results = rerank(p.recommender, requests, per_source=per_source, trend=trend,
                     popularity=trends.popularity if trends is not None else None)
    p.metrics.scoring_seconds.observe(time.perf_counter() - t0)
    version = p.recommender.model_version
    out: list[dict[str, Any]] = []
    for c, res in zip(calls, results, strict=True):
        request_id = uuid.uuid4().hex
        if c.shown and res.items:
            await p.send_impression(c.user_id.encode(), _impression(c, request_id, res, now))
        out.append({
            "request_id": request_id, "user_id": c.user_id, "surface": c.surface, "model_version": version,
            "personalised": res.personalised, "shown": c.shown and bool(res.items),
            "items": [{"item_id": x.item_id, "score": x.score, "source": x.source, "reason": x.reason}
                      for x in res.items],
            "removed": [{"item_id": i, "reason": r} for i, r in res.removed],
        })
    return out


def _owner(p: Pipeline, user_id: str) -> str | None:
    """Base URL of the worker owning ``user_id``'s partition, or None for this one (or unknown).

    The partition is the one the user's events go to (Kafka's default murmur2
    partitioner on the user id, as producers must use); the worker holding that
    partition of the ``users`` table comes from Faust's router. (``app.table_route``
    would hash the table's serialised key, which is not the events' key.)
    """
    part = partition_of_key(user_id.encode(), p.settings.partitions)
    try:
        hosts = p.app.router.table_metadata(p.users.name)
    except KeyError:
        return None
    topic = p.users.changelog_topic.get_topic_name()
    here = p.app.conf.canonical_url
    for url, tps in hosts.items():
        if part in tps.get(topic, ()):
            dest = URL(url)
            return None if (dest.host, dest.port) == (here.host, here.port) else str(dest.with_path(""))
    return None


def check_token(token: SecretStr | None, authorization: str | None, calls: Sequence[RankCall]) -> None:
    """Refuse requests that change state (``shown``) unless they carry the worker's bearer token.

    >>> from pydantic import SecretStr
    >>> shown = [RankCall("u", ["a"], "home", None, ItemFilter(), True)]
    >>> check_token(SecretStr("s3cret"), "Bearer s3cret", shown)  # allowed
    >>> check_token(None, None, [RankCall("u", ["a"], "home", None, ItemFilter(), False)])  # nothing to change
    >>> check_token(SecretStr("s3cret"), "Bearer guess", shown)
    Traceback (most recent call last):
    ...
    agents.rank_api.BadRequest: "shown": true logs an impression and needs the worker's token: send Authorization: Bearer <STREAMREC_WEB_TOKEN>
    """
    if not any(c.shown for c in calls):
        return
    if token is None:
        raise BadRequest(403, "forbidden", '"shown": true logs an impression, which this worker does not accept: '
                         "set STREAMREC_WEB_TOKEN on the workers and send it as Authorization: Bearer <token>")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise BadRequest(401, "unauthorized", '"shown": true logs an impression and needs the worker\'s token: '
                         "send Authorization: Bearer <STREAMREC_WEB_TOKEN>")


async def _forward(
    p: Pipeline, base: str, bodies: list[dict[str, Any]], authorization: str | None = None
) -> list[dict[str, Any]] | None:
    """Ask the owning worker; None when it cannot be reached (then this worker answers)."""
    headers = {"Content-Type": "application/json", ROUTED_HEADER: "1"}
    if authorization:
        headers["Authorization"] = authorization
    try:
        async with p.app.http_client.post(
            f"{base}/v1/rank/batch", data=json.dumps({"requests": bodies}).encode(), headers=headers,
        ) as resp:
            if resp.status != 200:
                log.warning("worker %s answered %d to a routed rank request", base, resp.status)
                return None
            return list((await resp.json())["responses"])
    except (TimeoutError, OSError, ValueError, KeyError) as exc:
        log.warning("worker %s unreachable for a routed rank request (%s); answering here", base, exc)
        return None


async def answer(
    p: Pipeline, bodies: list[Any], routed: bool, batch: bool = False, trends: TrendCache | None = None,
    authorization: str | None = None,
) -> list[dict[str, Any]]:
    """Validate, authorise, route by owner, rank: one answer per request body, in order."""
    calls = [parse_call(b, p.settings, i if batch else None) for i, b in enumerate(bodies)]
    check_token(p.settings.web_token, authorization, calls)
    local: list[int] = []  # answered here
    groups: dict[str, list[int]] = {}  # by owning worker's base URL
    for i, c in enumerate(calls):
        owner = None if routed else _owner(p, c.user_id)
        (local if owner is None else groups.setdefault(owner, [])).append(i)
    out: list[dict[str, Any] | None] = [None] * len(calls)
    for base, idx in groups.items():
        remote = await _forward(p, base, [bodies[i] for i in idx], authorization)
        if remote is None or len(remote) != len(idx):
            local.extend(idx)
            continue
        for i, r in zip(idx, remote, strict=True):
            out[i] = r
    if local:
        for i, r in zip(local, await answer_locally(p, [calls[i] for i in local], trends), strict=True):
            out[i] = r
    return [r for r in out if r is not None]


def server_timing(t0: float) -> dict[str, str]:
    """``Server-Timing`` since ``t0``: the handler's own time (the rest of a client's wait is HTTP and queueing)."""
    return {"Server-Timing": f"rank;dur={(time.perf_counter() - t0) * 1000:.3f}"}


def openapi_document() -> bytes:
    """The OpenAPI document shipped with the package."""
    return resources.files("agents.static").joinpath(OPENAPI_FILE).read_bytes()


def register(p: Pipeline) -> None:
    """Attach ``/v1/rank``, ``/v1/rank/batch`` and ``/v1/openapi.json`` to the worker's web server."""

    trends = TrendCache()

    def error(web: Any, exc: BadRequest) -> Any:
        return web.json(exc.body(), status=exc.status)

    class Rank(View):
        async def post(self, request: Any) -> Any:
            t0 = time.perf_counter()
            try:
                body = json_body(await request.read())
                (res,) = await answer(p, [body], routed=request.headers.get(ROUTED_HEADER) == "1", trends=trends,
                                      authorization=request.headers.get("Authorization"))
                return self.web.json(res, headers=server_timing(t0))
            except BadRequest as exc:
                return error(self.web, exc)

    class RankBatch(View):
        async def post(self, request: Any) -> Any:
            t0 = time.perf_counter()
            try:
                reqs = parse_batch(json_body(await request.read()), p.settings)
                res = await answer(p, reqs, routed=request.headers.get(ROUTED_HEADER) == "1", batch=True,
                                   trends=trends, authorization=request.headers.get("Authorization"))
                return self.web.json({"responses": res}, headers=server_timing(t0))
            except BadRequest as exc:
                return error(self.web, exc)

    p.app.page("/v1/rank", name="streamrec-rank")(Rank)
    p.app.page("/v1/rank/batch", name="streamrec-rank-batch")(RankBatch)

    @p.app.page("/v1/openapi.json", name="streamrec-openapi")
    async def openapi(view: View, request: Request) -> Response:
        return view.bytes(openapi_document(), content_type="application/json")
