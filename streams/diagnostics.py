"""A snapshot of a running worker's inner state, for finding out why it does not progress.

``kill -USR1 <worker pid>`` logs it (:mod:`agents.diagnostics_signal`): every asyncio task
with where it waits, the consumer's flow state, and per input partition the committed,
read and log-end offsets and what the streams hold. It reads Faust's bookkeeping, private
attributes included, defensively: a missing attribute shows as ``?``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable
from typing import Any

from streams.offset_holes import fetch_state


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        obj = getattr(obj, name, "?")
        if obj == "?":
            return obj
    return obj


def _await_chain(coro: Any, depth: int) -> list[str]:
    """Where a coroutine waits: its frame, the frame of what it awaits, and so on inwards."""
    out: list[str] = []
    while coro is not None and len(out) < depth:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            out.append(f"awaits {coro!r}"[:160])
            break
        path = frame.f_code.co_filename.split("site-packages/")[-1]
        out.append(f"{path}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return out


def task_report(tasks: Iterable[asyncio.Task[Any]], depth: int = 12) -> str:
    """Each task's name and the chain of awaits it is suspended in (outermost first).

    >>> async def main():
    ...     t = asyncio.ensure_future(asyncio.sleep(10)); await asyncio.sleep(0)
    ...     out = task_report([t]); t.cancel(); return out
    >>> "sleep" in asyncio.run(main())
    True
    """
    out = io.StringIO()
    for t in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"task {t.get_name()}{' (done)' if t.done() else ''}\n")
        for line in _await_chain(t.get_coro(), depth):
            out.write(f"    {line}\n")
    return out.getvalue()


def consumer_thread_tasks(app: Any) -> set[asyncio.Task[Any]]:
    """The tasks of the event loop Faust's consumer thread runs (fetches, seeks, commits)."""
    loop = _get(app.consumer, "_thread", "thread_loop")
    return set() if loop == "?" or loop is None else asyncio.all_tasks(loop)


def consumer_report(app: Any, topics: Iterable[str]) -> str:
    """Flow state and, per assigned partition of ``topics``, the consumer's offsets."""
    consumer = app.consumer
    lines = [
        (
            f"flow_active={_get(consumer, 'flow_active')} flow_control_active={app.flow_control.is_active()} "
            f"rebalancing={app.rebalancing} generation={app.consumer_generation_id} "
            f"recovery_completed={app.tables.recovery.completed.is_set()} "
            f"unacked={len(getattr(consumer, '_unacked_messages', ()))}"
        )
    ]
    names = set(topics)
    try:
        assigned = sorted((tp for tp in consumer.assignment() if tp.topic in names), key=lambda tp: (tp.topic, tp.partition))
    except Exception as exc:  # noqa: BLE001 - a diagnostic never fails the worker
        return "\n".join([*lines, f"no assignment: {exc!r}"])
    lines.extend(partition_report(consumer, tp) for tp in assigned)
    return "\n".join(lines)


def partition_report(consumer: Any, tp: Any) -> str:
    """One line on ``tp``: Faust's offsets and held messages, its flow sets, and aiokafka's fetch state."""
    try:
        paused: Any = set(_get(consumer, "_thread", "_consumer").paused())  # aiokafka's own pause set
    except Exception:  # noqa: BLE001 - a diagnostic never fails the worker
        paused = "?"
    sets = {name: _tp_set(consumer, attr) for name, attr in
            (("active", "_active_partitions"), ("faust_paused", "_paused_partitions"), ("buffered", "_buffered_partitions"))}
    acked = sorted(getattr(consumer, "_acked_index", {}).get(tp, ()))
    held = sorted(m.offset for m in list(getattr(consumer, "_unacked_messages", ())) if m.tp == tp)
    try:
        highwater = consumer.highwater(tp)
    except Exception as exc:  # noqa: BLE001
        highwater = f"? {exc!r}"
    return (
        f"{tp.topic}[{tp.partition}] committed={_get(consumer, '_committed_offset').get(tp)} "
        f"read={_get(consumer, '_read_offset').get(tp)} highwater={highwater} "
        f"paused={tp in paused if paused != '?' else '?'} "
        f"acked={acked[:3]}..({len(acked)}) held={held[:3]}..({len(held)}) "
        + " ".join(f"{name}={tp in tps if tps is not None else '?'}" for name, tps in sets.items())
        + f" fetch_state=({_fetch_state(consumer, tp)})"
    )


def _tp_set(consumer: Any, attr: str) -> set[Any] | None:
    """One of Faust's per-consumer partition sets (active, paused, buffered), or None when unknown."""
    value = getattr(consumer, attr, None)
    try:
        return set(value) if value is not None else None
    except TypeError:
        return None


def _fetch_state(consumer: Any, tp: Any) -> str:
    """aiokafka's own view of ``tp``: its position, pause flag, pending reset and last highwater."""
    try:
        state = fetch_state(consumer, tp)
        if state is None:
            return "not in aiokafka's assignment"
        position = state.position if state.has_valid_position else None
        return (
            f"position={position} paused={state.paused} reset={state.reset_strategy} "
            f"status={getattr(state, '_status', '?')} highwater={state.highwater}"
        )
    except Exception as exc:  # noqa: BLE001 - a diagnostic never fails the worker
        return f"? {exc!r}"[:120]
