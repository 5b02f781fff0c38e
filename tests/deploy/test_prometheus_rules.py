"""The Prometheus rules, config and Grafana dashboard: promtool checks, and every series they use exists."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from streams.lag import GroupLag, PartitionLag
from streams.metrics import LiveState, Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

RULES = DEPLOY / "prometheus" / "rules" / "streamrec.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "streamrec.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamrec.json"
NAME = re.compile(r"\b((?:streamrec|kafka)[a-zA-Z0-9_:]*)")


def run(*cmd: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def worker_series() -> set[str]:
    """Every series name a worker exposes, with a lag reading and live state in place."""
    m = Metrics()
    m.set_lag(GroupLag("g", (PartitionLag("t", 0, committed=1, start=0, end=2, reported_end=2, oldest_ts=1.0),), 2.0))
    m.live.source = lambda: LiveState("v1", "space", {"t": 1}, {"ok": True}, 3)
    m.events.labels("t", "ok").inc()
    m.dlq.labels("t", "bad").inc()
    m.reread.labels("t", "0").inc()
    m.expired.labels("t", "0").inc()
    m.log_resets.labels("t", "0").inc()
    m.provider.labels("text", "CPUExecutionProvider").set(1)
    m.ranker_loads.labels("error").inc()
    names = set()
    for line in m.render().decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def rule_names() -> tuple[set[str], set[str]]:
    doc = yaml.safe_load(RULES.read_text())
    records = {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}
    return records, alerts


def test_promtool_checks_the_rules(promtool: str) -> None:
    out = run(promtool, "check", "rules", str(RULES))
    assert "SUCCESS" in out


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    out = run(promtool, "test", "rules", str(RULE_TESTS.name), cwd=RULE_TESTS.parent)
    assert "SUCCESS" in out


def test_every_alert_has_a_unit_test_and_a_runbook_section() -> None:
    _, alerts = rule_names()
    tested = RULE_TESTS.read_text()
    runbook = (DEPLOY / "RUNBOOK.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbook, flags=re.MULTILINE)}
    assert {"StreamrecConsumerLagGrowing", "StreamrecConsumerStalled", "StreamrecDLQRateHigh",
            "StreamrecLatencySLOBurnFast"} <= alerts
    for alert in alerts:
        assert alert.lower() in headings, f"RUNBOOK.md has no '## {alert}' section"
    for alert in alerts - {"StreamrecLatencySLOBurnSlow", "StreamrecWorkerNotReady", "StreamrecRedisWriteErrors",
                           "StreamrecLagUnreadable"}:
        assert f"alertname: {alert}" in tested, f"{alert} has no promtool unit test"
    doc = yaml.safe_load(RULES.read_text())
    for rule in (r for g in doc["groups"] for r in g["rules"] if "alert" in r):
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["runbook"] == f"deploy/RUNBOOK.md#{rule['alert'].lower()}"


def test_rules_and_dashboard_use_only_series_a_worker_exposes() -> None:
    exposed = worker_series()
    records, _ = rule_names()
    exprs = [r.get("expr", "") for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in NAME.findall(re.sub(r'"[^"]*"', '""', e))}  # not label values
    unknown = {n for n in used if n not in exposed and n not in records}
    assert not unknown, f"series used in rules/dashboard that no worker exposes: {sorted(unknown)}"
    assert {"kafka_consumergroup_lag", "kafka_consumergroup_lag_seconds", "kafka_consumergroup_current_offset",
            "streamrec_events_total", "streamrec_dlq_total", "streamrec_execution_provider", "streamrec_model_info",
            "streamrec_event_to_recommendation_seconds_bucket"} <= used


def test_dashboard_shows_what_sres_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    by_title = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels}
    want = {
        "per partition (records)": "consumergroup_lag",
        "per partition (seconds)": "kafka_consumergroup_lag_seconds",
        "Throughput": "streamrec_events_total",
        "latency": "histogram_quantile(0.99",
        "Dead-letter": "streamrec_dlq_total",
        "provider": "streamrec_execution_provider",
        "Model version": "streamrec_model_info",
    }
    for title_part, expr_part in want.items():
        matches = [e for t, e in by_title.items() if title_part in t]
        assert matches and any(expr_part in e for e in matches), f"no panel '{title_part}' using {expr_part}"
    assert "histogram_quantile(0.5," in " ".join(by_title.values())
    for p in panels:
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"]
        assert set(p["gridPos"]) == {"x", "y", "w", "h"}


def test_grafana_provisioning_and_prometheus_config(promtool: str) -> None:
    run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["job_name"] == "streamrec"  # the rules' up{job="streamrec"}
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    dash = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "streamrec.yml").read_text())
    assert dash["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
