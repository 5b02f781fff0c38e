"""Strict decoding of raw Kafka message bytes into event records.

Every failure raises :class:`InvalidEvent` with a reason a producer can act on;
the agents route such messages to the dead-letter topic. Parsing is JSON only.

>>> from streams.records import SearchEvent
>>> limits = Limits(max_bytes=1024, min_ts=0.0, max_ts=2e9)
>>> decode_event(SearchEvent, b'{"event_id":"e","user_id":"u","query":"shoes","ts":1.7e9}', limits).query
'shoes'
>>> decode_event(SearchEvent, b'{"event_id":"e","user_id":"u","ts":1.7e9}', limits)
Traceback (most recent call last):
...
streams.validation.InvalidEvent: missing_field: query is required
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from faust.types.models import FieldDescriptorT

from streams.records import Event

E = TypeVar("E", bound=Event)


class InvalidEvent(ValueError):
    """A message that cannot become a valid event; ``code`` is a short metric label."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """Size and time bounds applied while decoding."""

    max_bytes: int
    min_ts: float
    max_ts: float


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _check_type(name: str, value: Any, tp: Any) -> Any:
    """Check one JSON value against a field type; return the (normalised) value."""
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise InvalidEvent("wrong_type", f"{name} must not be null")
    if base is str:
        if not isinstance(value, str):
            raise InvalidEvent("wrong_type", f"{name} must be a string, got {type(value).__name__}")
        return value
    if base is bool:
        if not isinstance(value, bool):
            raise InvalidEvent("wrong_type", f"{name} must be true or false, got {type(value).__name__}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidEvent("wrong_type", f"{name} must be an integer, got {type(value).__name__}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidEvent("wrong_type", f"{name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise InvalidEvent("wrong_type", f"{name} must be a finite number")
        return float(value)
    if typing.get_origin(base) is list:
        (item_tp,) = typing.get_args(base)
        if not isinstance(value, list):
            raise InvalidEvent("wrong_type", f"{name} must be a list, got {type(value).__name__}")
        return [_check_type(f"{name}[{i}]", v, item_tp) for i, v in enumerate(value)]
    raise TypeError(f"unsupported field type {tp!r} for {name}")  # a schema bug, not bad input


def _check_limits(name: str, value: Any, desc: FieldDescriptorT[Any]) -> None:
    if value is None:
        return
    max_length = getattr(desc, "max_length", None)
    min_length = getattr(desc, "min_length", None)
    if isinstance(value, str):
        if max_length is not None and len(value) > max_length:
            raise InvalidEvent("too_long", f"{name} has {len(value)} characters, at most {max_length} allowed")
        if min_length and len(value) < min_length:
            raise InvalidEvent("empty_field", f"{name} must not be empty")
    min_value = getattr(desc, "min_value", None)
    max_value = getattr(desc, "max_value", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if min_value is not None and value < min_value:
            raise InvalidEvent("out_of_range", f"{name}={value} is below {min_value}")
        if max_value is not None and value > max_value:
            raise InvalidEvent("out_of_range", f"{name}={value} is above {max_value}")


def parse_json(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Bytes to a JSON object, with size, UTF-8 and shape checks."""
    if raw is None:
        raise InvalidEvent("empty", "message has no value")
    if len(raw) > max_bytes:
        raise InvalidEvent("oversized", f"message is {len(raw)} bytes, at most {max_bytes} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("invalid_utf8", f"message is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except InvalidEvent:
        raise
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidEvent("malformed_json", f"message is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidEvent("not_an_object", f"message must be a JSON object, got {type(data).__name__}")
    return data


def _reject_constant(name: str) -> None:
    raise InvalidEvent("malformed_json", f"{name} is not allowed in JSON numbers")


def decode_event(model: type[E], raw: bytes | None, limits: Limits) -> E:
    """Decode and validate ``raw`` as ``model``; raise :class:`InvalidEvent` on any problem."""
    data = parse_json(raw, limits.max_bytes)
    data.pop("__faust", None)
    options = model._options
    known = set(options.fields)
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidEvent("unknown_field", f"unknown field(s): {', '.join(unknown[:5])}")
    values: dict[str, Any] = {}
    for name, tp in options.fields.items():
        desc = options.descriptors[name]
        if name not in data:
            if name in options.defaults:
                continue
            raise InvalidEvent("missing_field", f"{name} is required")
        value = _check_type(name, data[name], tp)
        _check_limits(name, value, desc)
        values[name] = value
    for name, (max_items, max_chars) in model.list_limits.items():
        items = values.get(name) or []
        if len(items) > max_items:
            raise InvalidEvent("too_many", f"{name} has {len(items)} entries, at most {max_items} allowed")
        for i, item in enumerate(items):
            if not item or len(item) > max_chars:
                raise InvalidEvent("too_long", f"{name}[{i}] must have 1 to {max_chars} characters")
    ts = values.get("ts")
    if ts is not None:
        if ts > 1e11:
            raise InvalidEvent("bad_timestamp", f"ts={ts} looks like milliseconds; send Unix seconds")
        if ts < limits.min_ts or ts > limits.max_ts:
            raise InvalidEvent("bad_timestamp", f"ts={ts} is outside [{limits.min_ts:.0f}, {limits.max_ts:.0f}]")
    record = model(**values)
    problems = record.problems()
    if problems:
        raise InvalidEvent("invalid_value", "; ".join(problems))
    return record
