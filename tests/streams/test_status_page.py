"""The worker's built-in status page in headless Chromium: the numbers it shows are /metrics's.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them); a missing
browser fails the test with the install command, it is never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.demo.catalog import demo_catalog, items_by_category
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package {package}): "
                    f"`sudo apt-get install -y --no-install-recommends chromium chromium-driver`, or run `make test`",
                    pytrace=False)
    return path


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _tool("chromium", "chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1250", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    service = Service(executable_path=_tool("chromedriver", "chromium-driver"), log_output=str(tmp_path / "driver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


SNAPSHOT = """
const text = {};
for (const id of ["total-lag", "max-lag-seconds", "events-ok", "events-dlq", "refreshes", "model-version",
                  "provider", "assigned", "ready", "error"]) text[id] = document.getElementById(id).textContent;
const rows = [...document.querySelectorAll("#lag-table tbody tr")].map(tr => {
  const row = {topic: tr.dataset.topic, partition: tr.dataset.partition};
  for (const td of tr.children) row[td.className] = td.textContent;
  return row;
});
const lines = {};
for (const id of ["chart-throughput", "chart-latency", "chart-lag"])
  lines[id] = document.querySelectorAll("#" + id + " path.line").length;
return {text, rows, lines, polls: Number(document.body.dataset.polls || 0)};
"""


def metric_values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def total(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in m.items() if n == name and set(labels.items()) <= ls)


def wait_until(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_page_shows_the_numbers_of_metrics(settings: Settings, tmp_path: Path, browser: Any) -> None:
    s = settings.model_copy(update={"lag_interval_s": 0.5})
    ensure_topics(s)
    catalog = demo_catalog(seed=9, images=False)
    items = items_by_category(catalog)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    producer = create_producer(s)
    try:
        worker.wait_ready(timeout=300)
        for it in catalog:
            producer.send(s.topic_catalog, key=it["item_id"].encode(), value=json.dumps(it).encode())
        producer.flush()
        worker.wait_ready(min_items=len(catalog), timeout=300)

        browser.get(worker.base_url + "/ui?interval=400")
        def polls() -> int:
            return int(browser.execute_script("return Number(document.body.dataset.polls || 0)"))

        wait_until(lambda: polls() >= 2, 60, "the page to poll /metrics")

        # Traffic while the page watches: valid clicks (recommendations) and a few invalid ones (DLQ).
        cats = sorted(items)
        for n in range(120):
            user = f"viewer-{n % 12}"
            ev = {"event_id": f"v-{n}", "user_id": user, "item_id": items[cats[n % len(cats)]][n % 20],
                  "kind": "click", "ts": time.time()}
            producer.send(s.topic_clicks, key=user.encode(), value=json.dumps(ev).encode())
            if n % 30 == 0:
                producer.send(s.topic_clicks, key=user.encode(), value=b"{not json")
            time.sleep(0.02)
        producer.flush()

        # Wait for a steady state: all consumed and committed, counters still.
        def steady() -> dict[Any, float] | None:
            a = metric_values(worker.metrics())
            if total(a, "streamrec_events_total") < 124 or total(a, "kafka_consumergroup_lag") != 0:
                return None
            if total(a, "kafka_consumergroup_current_offset", topic=s.topic_clicks) != 124:
                return None
            time.sleep(1.2)
            b = metric_values(worker.metrics())
            keep = ("streamrec_events_total", "streamrec_refreshes_total", "kafka_consumergroup_current_offset",
                    "kafka_topic_partition_current_offset", "kafka_consumergroup_lag")
            same = all(a.get(k) == b.get(k) for k in set(a) | set(b) if k[0] in keep)
            return b if same else None

        m = wait_until(steady, 90, "the worker to process everything and commit")
        seen = polls()
        wait_until(lambda: polls() >= seen + 2, 30, "two more polls of the page")

        # One snapshot of what the page shows (taken in one JS call: the page redraws as it polls).
        shown = browser.execute_script(SNAPSHOT)
        rows = shown["rows"]
        assert len(rows) == s.partitions * 2 + s.catalog_partitions  # clicks, searches, catalog
        for row in rows:
            topic, partition = row["topic"], row["partition"]
            committed = [v for (n, ls), v in m.items() if n == "kafka_consumergroup_current_offset"
                         and ("topic", topic) in ls and ("partition", partition) in ls]
            assert row["committed"] == (str(int(committed[0])) if committed else "-"), row
            end_offset = total(m, "kafka_topic_partition_current_offset", topic=topic, partition=partition)
            assert row["end"] == str(int(end_offset)), row
            assert row["lag"] == str(int(total(m, "kafka_consumergroup_lag", topic=topic, partition=partition))), row
            assert row["group"] == s.app_id
        assert sum(int(r["committed"]) for r in rows if r["topic"] == s.topic_clicks and r["committed"] != "-") == 124
        text = shown["text"]
        assert text["total-lag"] == "0"
        assert text["events-ok"] == str(int(total(m, "streamrec_events_total", outcome="ok")))
        assert text["events-dlq"] == str(int(total(m, "streamrec_events_total", outcome="dlq"))) == "4"
        assert int(text["events-ok"]) >= 120
        assert text["refreshes"] == str(int(total(m, "streamrec_refreshes_total")))
        model = next(dict(ls)["model_version"] for (n, ls), v in m.items() if n == "streamrec_model_info" and v == 1)
        assert text["model-version"] == model
        assert text["provider"] == "CPUExecutionProvider"
        assert text["assigned"] == str(int(total(m, "streamrec_assigned_partitions")))
        assert text["ready"] == "ready"
        assert text["error"] == ""
        # The charts drew lines from the traffic (throughput and latency between polls, lag).
        assert all(shown["lines"][c] > 0 for c in ("chart-throughput", "chart-latency", "chart-lag")), shown["lines"]

        shot = tmp_path / "status-page.png"
        assert browser.save_screenshot(str(shot))
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        out_dir = os.environ.get("TEST_ARTIFACTS_DIR")  # e.g. for CI to keep the screenshot
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(out_dir) / shot.name)
    finally:
        producer.close(timeout=10)
        worker.stop()
