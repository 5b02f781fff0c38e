"""Internal wire formats: item-stats deltas with impressions and clicks, read back and from older writers."""

from __future__ import annotations

import json

from streams.internal import StatsDelta


def test_a_delta_with_impressions_and_clicks_round_trips() -> None:
    d = StatsDelta(pairs=[("a", "b", 2.0)], counts=[("a", 1.0, 5.0)], shown=[("n1", 3)], clicked=[("n1", 1)])
    assert StatsDelta.from_bytes(d.to_bytes()) == d


def test_a_delta_from_a_writer_without_impressions_reads_as_none() -> None:
    old = json.dumps({"pairs": [["a", "b", 1.0]], "counts": [["a", 1.0, 2.0]]}).encode()
    d = StatsDelta.from_bytes(old)
    assert d.shown == [] and d.clicked == [] and d.pairs == [("a", "b", 1.0)]
    assert b"shown" not in StatsDelta(d.pairs, d.counts).to_bytes()  # unchanged for readers of the old format
