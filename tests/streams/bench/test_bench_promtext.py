"""Reading /metrics: counters, histograms and bucket quantiles (Prometheus' definition)."""

from __future__ import annotations

import math

import pytest

from streams.bench import promtext
from streams.metrics import Metrics


def test_counters_and_histograms_of_the_workers_own_exposition() -> None:
    m = Metrics()
    m.events.labels("events.clicks", "ok").inc(120)
    m.events.labels("events.searches", "ok").inc(30)
    m.events.labels("events.clicks", "dlq").inc(2)
    m.refreshes.inc(90)
    for seconds in (0.003, 0.02, 0.02, 0.07, 0.3):
        m.latency.observe(seconds)
    text = m.render().decode()

    assert promtext.counter(text, "streamrec_events_total") == 152.0
    assert promtext.counter(text, "streamrec_events_total", outcome="ok") == 150.0
    assert promtext.counter(text, "streamrec_events_total", topic="events.clicks", outcome="dlq") == 2.0
    assert promtext.counter(text, "streamrec_refreshes_total") == 90.0
    assert promtext.counter(text, "streamrec_nothing_total") == 0.0

    buckets = dict(promtext.histogram(text, "streamrec_event_to_recommendation_seconds"))
    assert buckets[0.005] == 1 and buckets[0.025] == 3 and buckets[0.1] == 4 and buckets[math.inf] == 5


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.1, 10.0), (0.2, 30.0), (math.inf, 40.0)]
    assert promtext.quantile(0.25, buckets) == pytest.approx(0.1)  # rank 10: top of the first bucket
    assert promtext.quantile(0.1, buckets) == pytest.approx(0.04)  # rank 4 of 10 in [0, 0.1]
    assert promtext.quantile(0.5, buckets) == pytest.approx(0.15)  # rank 20: halfway through (0.1, 0.2]
    assert promtext.quantile(0.99, buckets) == pytest.approx(0.2)  # +Inf bucket: the highest finite bound
    assert promtext.quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert promtext.quantile(0.5, []) is None


def test_a_window_between_two_scrapes() -> None:
    before = [(0.1, 10.0), (0.2, 30.0), (math.inf, 40.0)]
    after = [(0.1, 10.0), (0.2, 50.0), (math.inf, 60.0)]
    window = promtext.subtract(after, before)
    assert window == [(0.1, 0.0), (0.2, 20.0), (math.inf, 20.0)]
    assert promtext.quantile(0.5, window) == pytest.approx(0.15)  # all 20 new ones in (0.1, 0.2]


def test_labels_with_escapes_and_comments() -> None:
    text = '# HELP x_total a\n# TYPE x_total counter\nx_total{q="a \\"b\\"",k="v"} 3.0\nx_total{k="w"} 4 1700000000\n'
    assert [labels for _, labels, _ in promtext.samples(text)] == [{"q": 'a "b"', "k": "v"}, {"k": "w"}]
    assert promtext.counter(text, "x_total", k="w") == 4.0
