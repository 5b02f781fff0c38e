"""/v1/rank on a real worker process (real broker, Valkey, encoders): order, filters, errors, impressions, schema."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from agents.rank_api import openapi_document
from tests.conftest import LIVE_WEB_TOKEN

pytestmark = pytest.mark.integration

DOC = json.loads(openapi_document())


def schema(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": DOC["components"]})


def post(url: str, body: Any, raw: bytes | None = None, token: str | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def by_category(live: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in live.catalog:
        out.setdefault(item["category"], []).append(item["item_id"])
    return out


def test_openapi_document_is_valid_and_served(live_pipeline: Any) -> None:
    validate(DOC)
    with urllib.request.urlopen(live_pipeline.worker.base_url + "/v1/openapi.json", timeout=10) as resp:
        assert json.loads(resp.read()) == DOC
    req = urllib.request.Request(live_pipeline.worker.base_url + "/v1/rank", method="POST",
                                 data=json.dumps({"user_id": "u", "items": ["audio-001"]}).encode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        timing = resp.headers["Server-Timing"]
    assert timing.startswith("rank;dur=") and float(timing.split("dur=")[1]) > 0


def test_rank_orders_a_users_items_by_their_interest_and_logs_shown_lists(live_pipeline: Any, read_topic: Any) -> None:
    live = live_pipeline
    cats = by_category(live)
    now = time.time()
    for n, item in enumerate(cats["running"][:6]):
        live.send("clicks", {"event_id": f"rk-{n}", "user_id": "ranker-fan", "item_id": item, "kind": "click",
                             "ts": now + n * 0.01})
    live.flush()
    live.wait_for_rec("ranker-fan", now + 0.05)
    mixed = [x for c in ("toys", "running", "books") for x in cats[c][8:14]]
    status, res = post(live.worker.base_url + "/v1/rank",
                       {"user_id": "ranker-fan", "items": mixed, "surface": "home", "shown": True},
                       token=LIVE_WEB_TOKEN)
    assert status == 200, res
    schema("RankResponse").validate(res)
    assert res["personalised"] and res["shown"]
    assert sorted(x["item_id"] for x in res["items"]) == sorted(mixed) and res["removed"] == []
    assert {x["item_id"] for x in res["items"][:6]} == set(cats["running"][8:14])
    assert res["items"][0]["source"] in ("interest", "covisit") and res["items"][0]["reason"]
    scores = [x["score"] for x in res["items"]]
    assert scores == sorted(scores, reverse=True)

    # The query of the request, embedded by the worker, pulls matching items up.
    status, searched = post(live.worker.base_url + "/v1/rank",
                            {"user_id": "ranker-fan", "items": mixed, "surface": "search", "query": "board game for kids"})
    assert status == 200, searched
    assert searched["items"][0]["item_id"] in cats["toys"] and searched["items"][0]["source"] == "search"
    assert not searched["shown"]

    # The shown list is an impression under the returned request_id (only that one).
    deadline = time.monotonic() + 60
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not found:
        records = read_topic(live.settings, live.settings.topic_impressions, live.settings.partitions)
        found = [json.loads(r.value) for r in records if r.key == b"ranker-fan"]
        time.sleep(0.2)
    assert len(found) == 1, found
    assert found[0]["request_id"] == res["request_id"] and found[0]["surface"] == "home"
    assert found[0]["item_ids"] == [x["item_id"] for x in res["items"]]


def test_unknown_user_gets_popularity_and_batches_answer_in_order(live_pipeline: Any) -> None:
    live = live_pipeline
    cats = by_category(live)
    items = cats["kitchen"][:5] + ["no-such-item"]
    status, res = post(live.worker.base_url + "/v1/rank/batch", {"requests": [
        {"user_id": "never-seen", "items": items},
        {"user_id": "ranker-fan", "items": cats["books"][:3], "surface": "search"},
    ]})
    assert status == 200, res
    schema("RankBatchResponse").validate(res)
    first, second = res["responses"]
    assert first["user_id"] == "never-seen" and not first["personalised"]
    assert {x["source"] for x in first["items"]} == {"popularity"}
    assert first["removed"] == [{"item_id": "no-such-item", "reason": "not_in_catalog"}]
    assert second["user_id"] == "ranker-fan" and second["surface"] == "search" and len(second["items"]) == 3


def test_filters_and_a_catalog_stock_change(live_pipeline: Any) -> None:
    live = live_pipeline
    cats = by_category(live)
    audio = sorted((i for i in live.catalog if i["item_id"] in cats["audio"][1:6]), key=lambda i: i["price"])
    gone = audio[0]  # the cheapest: removed for its stock alone
    live.send("catalog", {**gone, "in_stock": False})
    live.flush()
    items = cats["audio"][:6] + cats["beauty"][:2]
    cheap = audio[2]["price"]
    body = {"user_id": "filter-user", "items": items, "filters": {
        "category": "audio", "in_stock": True, "max_price": cheap, "exclude": [cats["audio"][0]]}}
    deadline = time.monotonic() + 120
    while True:
        status, res = post(live.worker.base_url + "/v1/rank", body)
        assert status == 200, res
        removed = {x["item_id"]: x["reason"] for x in res["removed"]}
        if removed.get(gone["item_id"]) == "out_of_stock" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    schema("RankResponse").validate(res)
    assert removed[gone["item_id"]] == "out_of_stock"
    assert removed[cats["audio"][0]] == "excluded"
    assert {removed[i] for i in cats["beauty"][:2]} == {"category"}
    price = {i["item_id"]: i["price"] for i in live.catalog}
    for x in res["items"]:
        assert x["item_id"] in cats["audio"] and price[x["item_id"]] <= cheap
    assert all(r == "price" for i, r in removed.items() if i in cats["audio"] and i not in (gone["item_id"], cats["audio"][0]))


@pytest.mark.parametrize("body, raw, status, code", [
    (None, b"{not json", 400, "bad_json"),
    ({"user_id": "u", "items": ["a"], "surface": "checkout"}, None, 400, "unknown_surface"),
    ({"user_id": "u", "items": [f"i{n}" for n in range(1001)]}, None, 413, "too_many_items"),
    ({"user_id": "", "items": ["a"]}, None, 400, "malformed_id"),
    ({"user_id": "u", "items": ["a", 5]}, None, 400, "malformed_id"),
    ({"user_id": "u", "items": ["a", "a"]}, None, 400, "duplicate_items"),
    ({"user_id": "u", "items": []}, None, 400, "bad_items"),
    ({"user_id": "u", "items": ["a"], "filters": {"max_price": -3}}, None, 400, "bad_filters"),
    ({"user_id": "u", "items": ["a"], "filters": {"colour": "red"}}, None, 400, "bad_filters"),
    ({"user_id": "u", "items": ["a"], "colour": "red"}, None, 400, "unknown_field"),
    ({"items": ["a"]}, None, 400, "missing_field"),
    ([1, 2], None, 400, "bad_request"),
    ({"user_id": "u", "items": ["a"], "shown": "yes"}, None, 400, "bad_shown"),
])
def test_bad_requests_get_a_4xx_with_the_reason(live_pipeline: Any, body: Any, raw: bytes | None, status: int,
                                                 code: str) -> None:
    got, res = post(live_pipeline.worker.base_url + "/v1/rank", body, raw)
    assert (got, res["error"]) == (status, code), res
    schema("Error").validate(res)
    assert res["reason"]


def test_bad_batch_names_the_request_at_fault(live_pipeline: Any) -> None:
    url = live_pipeline.worker.base_url + "/v1/rank/batch"
    got, res = post(url, {"requests": [{"user_id": "u", "items": ["a"]}, {"user_id": "u", "items": ["a"], "surface": "x"}]})
    assert (got, res["error"], res["index"]) == (400, "unknown_surface", 1)
    got, res = post(url, {"requests": []})
    assert got == 400 and res["error"] == "bad_batch_size"
    got, res = post(url, {"user_id": "u"})
    assert got == 400 and res["error"] == "bad_request"


def test_a_shown_list_needs_the_workers_token_and_logs_nothing_without_it(live_pipeline: Any,
                                                                          read_topic: Any) -> None:
    url = live_pipeline.worker.base_url + "/v1/rank"
    body = {"user_id": "token-probe", "items": ["audio-001", "audio-002"], "shown": True}
    for token in (None, "wrong-token", LIVE_WEB_TOKEN[:-1]):
        got, res = post(url, body, token=token)
        assert (got, res["error"]) == (401, "unauthorized"), res
        schema("Error").validate(res)
        assert "Authorization: Bearer" in res["reason"]
    got, res = post(live_pipeline.worker.base_url + "/v1/rank/batch",
                    {"requests": [{"user_id": "token-probe", "items": ["audio-001"]}, body]})
    assert (got, res["error"]) == (401, "unauthorized"), res
    # Nothing that changes no state needs the token.
    got, res = post(url, {**body, "shown": False})
    assert got == 200 and not res["shown"]
    got, res = post(url, body, token=LIVE_WEB_TOKEN)
    assert got == 200 and res["shown"], res
    # Only the authorised request was logged as an impression.
    deadline = time.monotonic() + 60
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not found:
        records = read_topic(live_pipeline.settings, live_pipeline.settings.topic_impressions,
                             live_pipeline.settings.partitions)
        found = [json.loads(r.value) for r in records if r.key == b"token-probe"]
        time.sleep(0.2)
    assert [f["request_id"] for f in found] == [res["request_id"]]
