"""A serving replica (``streamrec serve``) beside a real worker: it answers /v1/rank from the
changelog copy of the users' states, as the owning worker would, and forgets as it does."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.rank_api import openapi_document
from streams.forget_command import send_forget
from streams.worker_process import WorkerProcess
from tests.agents.test_rank_api import by_category, post
from tests.conftest import LIVE_WEB_TOKEN, _free_port
from tests.streams.test_faults_crash import metric

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def replica(live_pipeline: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A replica of the module's worker, on its own port, with the catalog loaded."""
    s = live_pipeline.settings.model_copy(update={"web_port": _free_port()})
    proc = WorkerProcess(s, tmp_path_factory.mktemp("replica") / "replica.log", command="serve").start()
    try:
        proc.wait_ready(min_items=len(live_pipeline.catalog), timeout=300)
        yield proc
    finally:
        proc.stop()


def until(check: Callable[[], Any], what: str, timeout: float = 60.0,
          on_timeout: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{on_timeout()}")


def test_replica_answers_like_the_owning_worker(live_pipeline: Any, replica: WorkerProcess, read_topic: Any) -> None:
    live = live_pipeline
    cats = by_category(live)
    now = time.time()
    for n, item in enumerate(cats["books"][:6]):
        live.send("clicks", {"event_id": f"rp-{n}", "user_id": "replica-fan", "item_id": item, "kind": "click",
                             "ts": now + n * 0.01})
    live.flush()
    live.wait_for_rec("replica-fan", now + 0.05)
    mixed = [x for c in ("toys", "books", "running") for x in cats[c][8:14]]
    body = {"user_id": "replica-fan", "items": mixed, "surface": "home"}

    def personalised() -> dict[str, Any] | None:
        replica.check_alive()
        status, res = post(replica.base_url + "/v1/rank", body)
        assert status == 200, res
        return res if res["personalised"] else None

    res = until(personalised, f"the user's state to reach the replica\n{replica.log_tail()}",
                on_timeout=lambda: f"{replica.status()}\n{replica.metrics()}")

    def item_state_settled() -> bool:
        # Popularity, trending and co-visitation come from the item-stats topic, which the worker and
        # the replica each apply at their own pace: compare their lists once both applied all of it.
        records = len([r for r in read_topic(live.settings, live.settings.topic_item_stats, 1) if r.value])
        return 0 < records <= min(metric(w, "streamrec_item_stats_applied_total") for w in (live.worker, replica))

    until(item_state_settled, "the worker and the replica to apply every item-stats record")
    res = personalised() or res
    status, owner = post(live.worker.base_url + "/v1/rank", body)
    assert status == 200, owner
    assert [x["item_id"] for x in res["items"]] == [x["item_id"] for x in owner["items"]]
    assert [x["score"] for x in res["items"]] == pytest.approx([x["score"] for x in owner["items"]], rel=1e-3, abs=1e-4)
    assert {x["item_id"] for x in res["items"][:6]} == set(cats["books"][8:14])
    assert res["model_version"] == owner["model_version"]

    # A shown list needs the token, and is then logged as an impression by the replica.
    status, refused = post(replica.base_url + "/v1/rank", {**body, "shown": True})
    assert status == 401 and refused["error"] == "unauthorized"
    status, shown = post(replica.base_url + "/v1/rank", {**body, "shown": True}, token=LIVE_WEB_TOKEN)
    assert status == 200 and shown["shown"], shown

    def impressions() -> list[dict[str, Any]]:
        records = read_topic(live.settings, live.settings.topic_impressions, live.settings.partitions)
        return [json.loads(r.value) for r in records if r.key == b"replica-fan"]

    logged = until(impressions, "the replica's impression")
    assert [x["request_id"] for x in logged] == [shown["request_id"]]

    # Forgetting the user reaches the replica through the changelog tombstone.
    send_forget(live.settings, "replica-fan")
    until(lambda: not post(replica.base_url + "/v1/rank", body)[1]["personalised"], "the replica to forget the user")


def test_replica_errors_documents_and_metrics(replica: WorkerProcess) -> None:
    status, res = post(replica.base_url + "/v1/rank", {"user_id": "u", "items": ["x"], "surface": "nowhere"})
    assert status == 400 and res["error"] == "unknown_surface" and "known:" in res["reason"]
    status, res = post(replica.base_url + "/v1/rank", None, raw=b"{not json")
    assert status == 400 and res["error"] == "bad_json"
    status, res = post(replica.base_url + "/v1/rank/batch", {"requests": [{"user_id": "u", "items": []}]})
    assert status == 400 and res["error"] == "bad_items" and res["index"] == 0
    status, res = post(replica.base_url + "/v1/rank/batch",
                       {"requests": [{"user_id": "a", "items": ["audio-001"]}, {"user_id": "b", "items": ["audio-002"]}]})
    assert status == 200 and [r["user_id"] for r in res["responses"]] == ["a", "b"]
    with urllib.request.urlopen(replica.base_url + "/v1/openapi.json", timeout=10) as resp:
        assert resp.read() == openapi_document()
    with urllib.request.urlopen(replica.base_url + "/ready", timeout=10) as resp:
        assert json.loads(resp.read())["ready"] is True
    metrics = replica.metrics()
    assert "streamrec_replica_users " in metrics and 'streamrec_rank_requests_total{status="400"}' in metrics


def test_serve_without_addresses_says_how_to_fix(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from streams.cli import main

    result = CliRunner().invoke(main, ["serve"], env={"STREAMREC_KAFKA_BOOTSTRAP_SERVERS": "",
                                                     "STREAMREC_REDIS_URL": ""})
    assert result.exit_code == 2 and "streamrec up" in result.output
