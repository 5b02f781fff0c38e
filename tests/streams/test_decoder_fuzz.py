"""Generated garbage through the decoder: it either returns a valid record or raises
InvalidEvent with a reason; nothing else escapes, whatever the bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.records import INPUT_RECORDS, ClickEvent, SearchEvent
from streams.validation import InvalidEvent, Limits, decode_event

LIMITS = Limits(max_bytes=64 * 1024, min_ts=788918400.0, max_ts=2.0e9)
REASONS = {
    "empty", "oversized", "invalid_utf8", "malformed_json", "not_an_object", "unknown_field", "missing_field",
    "wrong_type", "too_long", "empty_field", "out_of_range", "too_many", "bad_timestamp", "invalid_value",
}

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["event_id", "user_id", "item_id", "kind", "ts", "session_id", "request_id", "position", "query",
     "item_ids", "surface", "title", "description", "category", "price", "image", "tags", "deleted", "__faust", "x"]
)
#: Objects with the right field names and any values: the decoder's type and range checks.
near_miss_objects = st.dictionaries(field_names, json_values, max_size=10)


def _check(model: type, raw: bytes | None) -> None:
    try:
        record = decode_event(model, raw, LIMITS)
    except InvalidEvent as exc:
        assert exc.code in REASONS, exc.code
        assert str(exc)
        return
    assert isinstance(record, model)
    assert record.problems() == []


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(list(INPUT_RECORDS.values())), raw=st.binary(max_size=300))
def test_random_bytes_never_escape_as_anything_but_invalid_event(model: type, raw: bytes) -> None:
    _check(model, raw)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(list(INPUT_RECORDS.values())), obj=near_miss_objects)
def test_json_objects_with_any_values_are_decoded_or_rejected_with_a_reason(model: type, obj: dict[str, Any]) -> None:
    _check(model, json.dumps(obj).encode())


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_any_json_document_is_decoded_or_rejected(value: Any) -> None:
    _check(ClickEvent, json.dumps(value).encode())


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(min_size=1, max_size=600),
    ts=st.floats(allow_nan=True, allow_infinity=True),
    cut=st.integers(min_value=0, max_value=200),
)
def test_truncated_and_mangled_valid_events_are_rejected_not_crashing(text: str, ts: float, cut: int) -> None:
    raw = json.dumps({"event_id": "e", "user_id": "u", "query": text, "ts": ts}).encode()
    _check(SearchEvent, raw)
    _check(SearchEvent, raw[:cut])
    _check(SearchEvent, raw.replace(b'"', b"\xff", 1))


@settings(max_examples=200, deadline=None)
@given(
    event_id=st.text(min_size=1, max_size=128),
    user_id=st.text(min_size=1, max_size=128),
    item_id=st.text(min_size=1, max_size=128),
    kind=st.sampled_from(["view", "click", "add_to_cart", "purchase"]),
    ts=st.floats(min_value=LIMITS.min_ts, max_value=LIMITS.max_ts),
)
def test_every_valid_click_decodes_to_the_same_values(event_id: str, user_id: str, item_id: str, kind: str, ts: float) -> None:
    raw = json.dumps({"event_id": event_id, "user_id": user_id, "item_id": item_id, "kind": kind, "ts": ts}).encode()
    rec = decode_event(ClickEvent, raw, LIMITS)
    assert (rec.event_id, rec.user_id, rec.item_id, rec.kind, rec.ts) == (event_id, user_id, item_id, kind, ts)


def test_each_kind_of_bad_input_has_its_own_reason() -> None:
    good = {"event_id": "e", "user_id": "u", "item_id": "i", "kind": "click", "ts": 1.7e9}
    cases: dict[str, bytes | None] = {
        "empty": None,
        "oversized": json.dumps({**good, "session_id": "s" * 100}).encode() + b" " * LIMITS.max_bytes,
        "invalid_utf8": b'{"event_id": "\xc3\x28"}',
        "malformed_json": b'{"event_id": ',
        "not_an_object": b"[1, 2]",
        "unknown_field": json.dumps({**good, "evil": 1}).encode(),
        "missing_field": json.dumps({k: v for k, v in good.items() if k != "kind"}).encode(),
        "wrong_type": json.dumps({**good, "ts": "yesterday"}).encode(),
        "too_long": json.dumps({**good, "user_id": "u" * 129}).encode(),
        "empty_field": json.dumps({**good, "item_id": ""}).encode(),
        "out_of_range": json.dumps({**good, "position": -1}).encode(),
        "invalid_value": json.dumps({**good, "kind": "like"}).encode(),
    }
    for reason, raw in cases.items():
        try:
            decode_event(ClickEvent, raw, LIMITS)
        except InvalidEvent as exc:
            assert exc.code == reason, (reason, str(exc))
        else:
            raise AssertionError(f"{reason}: accepted")
    for ts, why in ((1.7e12, "milliseconds"), (3.0e9, "outside"), (1.0e8, "outside"), (-5.0, "outside")):
        try:
            decode_event(ClickEvent, json.dumps({**good, "ts": ts}).encode(), LIMITS)
        except InvalidEvent as exc:
            assert exc.code == "bad_timestamp" and why in str(exc)
        else:
            raise AssertionError(f"ts={ts} accepted")
    for raw in (b'{"ts": NaN}', b'{"ts": Infinity}', b"[" * 100_000):
        try:
            decode_event(ClickEvent, raw, Limits(10**6, 0.0, 2e9))
        except InvalidEvent as exc:
            assert exc.code == "malformed_json"
        else:
            raise AssertionError(f"{raw[:20]!r} accepted")
