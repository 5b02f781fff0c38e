"""A real Prometheus scrapes two real workers; one stops consuming and the lag alerts fire.

The rules are the ones in deploy/, with every time window and ``for`` duration divided by
30 (5m -> 10s) so the test takes a minute instead of half an hour; the expressions are
unchanged. The promtool unit tests check the rules at their real durations.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest
import yaml

from streams.producer import create_producer
from streams.runtime import die_with_parent_preexec, find_free_port, pid_alive
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCALE = 30
_DURATION = re.compile(r"(\d+)([smh])")


def scaled(duration: str) -> str:
    """A Prometheus duration divided by SCALE, in seconds (at least 1s).

    >>> scaled("5m"), scaled("1h"), scaled("2m")
    ('10s', '120s', '4s')
    """
    m = _DURATION.fullmatch(duration)
    assert m, duration
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    return f"{max(1, seconds // SCALE)}s"


def scaled_rules(text: str) -> str:
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[(\d+[smh])\]", lambda m: f"[{scaled(m.group(1))}]", rule["expr"])
            if "for" in rule:
                rule["for"] = scaled(rule["for"])
    return yaml.safe_dump(doc, sort_keys=False)


class Prometheus:
    """A Prometheus server on a loopback port with its own storage, stopped by PID."""

    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
        self.port = find_free_port()
        self.workdir = workdir
        rules = workdir / "rules.yml"
        rules.write_text(scaled_rules((DEPLOY / "prometheus" / "rules" / "streamrec.rules.yml").read_text()))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "streamrec", "static_configs": [{"targets": targets}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent_preexec(),  # type: ignore[arg-type]  # noqa: PLW1509
            )

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready:\n{self.log.read_text()[-3000:]}")

    def alerts(self, name: str, state: str = "firing") -> list[dict[str, str]]:
        return [a["labels"] for a in self.api("alerts")["alerts"]
                if a["labels"]["alertname"] == name and a["state"] == state]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class ClickStream:
    """Sends clicks (for items not in the catalog: quick to process, they end in the DLQ)
    for users on every partition, ``rate`` a second, until stopped."""

    def __init__(self, settings: Settings, rate: float = 40.0) -> None:
        self.settings, self.rate = settings, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        producer = create_producer(self.settings)
        try:
            while not self._stop.is_set():
                uid = f"u{self.sent % 64}"
                ev = {"event_id": f"p-{self.sent}", "user_id": uid, "item_id": "no-such-item", "kind": "view",
                      "ts": time.time()}
                producer.send(self.settings.topic_clicks, key=uid.encode(), value=json.dumps(ev).encode())
                self.sent += 1
                if self.sent % 8 == 0:
                    producer.flush()
                self._stop.wait(1 / self.rate)
        finally:
            producer.close(timeout=10)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Two workers in one group; a long session timeout keeps a frozen worker's partitions
    assigned to it (a hung worker, not a dead one)."""
    base = settings.model_copy(update={"lag_interval_s": 1.0, "kafka_session_timeout_s": 120.0})
    ensure_topics(base)
    procs = [
        WorkerProcess(base.model_copy(update={"web_port": find_free_port()}), tmp_path / f"worker-{i}.log")
        for i in range(2)
    ]
    try:
        for w in procs:
            w.start()
        yield procs
    finally:
        for w in procs:
            if pid_alive(w.pid):
                os.kill(w.pid, signal.SIGCONT)  # type: ignore[arg-type]  # a frozen worker must be able to stop
        for w in procs:
            w.stop()


def test_lag_alerts_fire_when_a_worker_stops_consuming(
    workers: list[WorkerProcess], settings: Settings, tmp_path: Path, prometheus_bin: str
) -> None:
    frozen, survivor = workers
    # Both workers in the group, each owning part of the clicks topic.
    deadline = time.monotonic() + 300
    while True:
        states = [w.status() for w in workers]
        owned = [set((st or {}).get("assignment", {}).get(settings.topic_clicks, [])) for st in states]
        if all(st and st["ready"] for st in states) and all(owned) and len(owned[0] | owned[1]) == settings.partitions:
            break
        for w in workers:
            w.check_alive()
        assert time.monotonic() < deadline, f"workers did not share the partitions: {states}"
        time.sleep(0.5)
    frozen_parts = owned[0]

    (tmp_path / "prom").mkdir()
    prom = Prometheus(prometheus_bin, tmp_path / "prom", [f"127.0.0.1:{w.settings.web_port}" for w in workers])
    try:
        prom.wait_up()
        with ClickStream(settings) as stream:
            # Healthy: both scraped, the lag series present, no lag alert for a while.
            deadline = time.monotonic() + 60
            while len(prom.query('up{job="streamrec"} == 1')) < 2 or not prom.query("kafka_consumergroup_lag"):
                assert time.monotonic() < deadline, "prometheus does not scrape both workers"
                time.sleep(0.5)
            time.sleep(15)
            # (The lag saw-tooths between offset commits, so at these scaled windows the growth
            # condition can turn pending for a moment; it must not hold long enough to fire.)
            assert prom.alerts("StreamrecConsumerLagGrowing") == []
            assert prom.alerts("StreamrecConsumerStalled", "firing") == []
            assert prom.alerts("StreamrecConsumerStalled", "pending") == []
            assert stream.sent > 300

            os.kill(frozen.pid, signal.SIGSTOP)  # type: ignore[arg-type]  # hung: holds its partitions, consumes nothing
            stalled_at = time.monotonic()
            deadline = stalled_at + 150
            while True:
                stalled = prom.alerts("StreamrecConsumerStalled")
                growing = prom.alerts("StreamrecConsumerLagGrowing")
                stalled_parts = {int(a["partition"]) for a in stalled if a["topic"] == settings.topic_clicks}
                if stalled_parts == frozen_parts and growing:
                    break
                assert time.monotonic() < deadline, (
                    f"alerts not firing: stalled={stalled} growing={growing}\n{prom.api('alerts')}"
                )
                time.sleep(1)
            took = time.monotonic() - stalled_at
        # The survivor's reading of the whole group is what Prometheus alerted on.
        selector = "|".join(str(p) for p in sorted(frozen_parts))
        lag = prom.query(f'kafka_consumergroup_lag{{topic="{settings.topic_clicks}",partition=~"{selector}"}}')
        assert {int(s["metric"]["partition"]) for s in lag} == frozen_parts
        assert all(float(s["value"][1]) > 0 for s in lag), lag
        assert {s["metric"]["instance"] for s in lag} == {f"127.0.0.1:{survivor.settings.web_port}"}
        assert growing[0]["group"] == settings.app_id and growing[0]["severity"] == "warning"
        assert all(a["severity"] == "critical" and a["group"] == settings.app_id for a in stalled)
        # Scaled windows: 10s without a commit, pending 10s, so firing after 20s at the earliest.
        assert took >= 15, took
    finally:
        prom.stop()
