"""The running pipeline as a prequential recommender (``streamrec evaluate --through-pipeline``).

:class:`PipelineRecommender` plays the product's part in
:func:`export.prequential.run_prequential` through the real system: the events
of each micro-batch are produced to ``events.clicks``, a worker process consumes
them, and the batch ends when every user it touched has a refreshed list on the
recommendations topic. ``recommend`` then answers with the list last published
for the user -- exactly what a shop would have read -- so the streaming system
itself is what is measured. Fed the same batches, it must agree with the
in-process :class:`export.prequential.ProductRecommender`.

With a ranker bundle, the worker ranks with that bundle: it is copied into the
worker's own ranker folder (``STREAMREC_RANKER_DIR``) before the worker starts, the
run refuses to begin unless the worker reports the bundle's version, and every
published list's ``model_version`` is counted, so the figures are those of the
deployed ranker and the report shows it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from agents.refresh import recommendation_from_json
from export.bundle import Bundle
from export.datasets import Dataset
from models.baselines import InteractionLike
from models.types import ItemId, Timestamp, UserId
from streams.kafka_config import kafka_python_kwargs
from streams.producer import create_producer
from streams.runtime import find_free_port, resolve_addresses
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerFailed, WorkerProcess

#: Per-user memory large enough for a whole history, so a user's list excludes
#: everything they interacted with, as the evaluation protocol does.
EVAL_HISTORY = 10_000


#: Longest the worker waits for an evaluation batch's events to be in before it refreshes
#: with fewer (so only a final, shorter batch waits this long).
EVAL_BATCH_WAIT_S = 10.0


class PipelineEvalError(RuntimeError):
    """The pipeline did not answer as the evaluation needs; the message says why."""


def _event_id(n: int) -> str:
    return f"e{n:010d}"


@dataclass
class _Published:
    trigger: int  # position of the newest event the list reflects
    items: list[ItemId]


class RecommendationReader:
    """Follows the recommendations topic in a thread, keeping each user's newest list."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._latest: dict[UserId, _Published] = {}
        self._versions: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rec-reader", daemon=True)

    def start(self) -> RecommendationReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        s = self._settings
        try:
            consumer = KafkaConsumer(
                **kafka_python_kwargs(s),
                enable_auto_commit=False,
                fetch_max_wait_ms=max(1, int(s.kafka_fetch_max_wait_s * 1000)),
            )
            parts = [TopicPartition(s.topic_recommendations, p) for p in range(s.partitions)]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=100).values():
                    with self._cond:
                        for r in records:
                            self._take(r.value)
                        self._cond.notify_all()
            consumer.close()
        except BaseException as exc:  # noqa: BLE001 - reported to the waiting thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _take(self, raw: bytes) -> None:
        rec = recommendation_from_json(raw)
        trigger = str(rec.get("trigger_event_id") or "")
        if not trigger.startswith("e"):
            return
        user = str(rec["user_id"])
        self._versions[str(rec.get("model_version") or "")] += 1
        n = int(trigger[1:])
        prev = self._latest.get(user)
        if prev is None or n >= prev.trigger:
            items: list[dict[str, Any]] = rec["items"]
            self._latest[user] = _Published(n, [str(i["item_id"]) for i in items])

    def wait_for(self, wanted: dict[UserId, int], timeout: float) -> None:
        """Block until every user in ``wanted`` has a list reflecting its event at that position."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._error is not None:
                    raise PipelineEvalError(f"reading the recommendations topic failed: {self._error!r}")
                missing = [u for u, n in wanted.items() if (p := self._latest.get(u)) is None or p.trigger < n]
                if not missing:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PipelineEvalError(
                        f"{len(missing)} users got no refreshed list within {timeout:.0f}s (e.g. {missing[:3]})"
                    )
                self._cond.wait(min(left, 0.5))

    def model_versions(self) -> dict[str, int]:
        """How many of the evaluation's published lists each ``model_version`` ranked."""
        with self._cond:
            return dict(self._versions)

    def latest(self, user_id: UserId) -> list[ItemId]:
        with self._cond:
            p = self._latest.get(user_id)
            return list(p.items) if p else []


class PipelineRecommender:
    """The live pipeline behind the prequential interface (see the module docstring)."""

    def __init__(
        self, settings: Settings, worker: WorkerProcess, reader: RecommendationReader, *, name: str = "pipeline",
        timeout: float = 120.0,
    ) -> None:
        self.name = name
        self._s = settings
        self._worker = worker
        self._reader = reader
        self._producer = create_producer(settings, linger_ms=2)
        self._pending: dict[UserId, int] = {}
        self._n = 0
        self._timeout = timeout

    def learn_one(self, ev: InteractionLike) -> None:
        """Produce one event (its id is its position in the stream)."""
        event = {
            "event_id": _event_id(self._n), "user_id": ev.user_id, "item_id": ev.item_id, "kind": ev.kind, "ts": ev.ts,
        }
        self._producer.send(self._s.topic_clicks, key=ev.user_id.encode(), value=json.dumps(event).encode())
        self._pending[ev.user_id] = self._n
        self._n += 1

    def end_batch(self) -> None:
        """Flush the batch and wait until each of its users has its refreshed list."""
        if not self._pending:
            return
        self._producer.flush()
        wanted, self._pending = self._pending, {}
        try:
            self._worker.check_alive()
            self._reader.wait_for(wanted, self._timeout)
            self._wait_item_stats_applied()
        except WorkerFailed as exc:
            raise PipelineEvalError(str(exc)) from None

    def _wait_item_stats_applied(self) -> None:
        """Block until the worker applied every item-statistics increment it produced, so the
        next batch meets this one's increments, as in process (the only worker on its topics)."""
        deadline = time.monotonic() + self._timeout
        while True:
            figures = metric_values(self._worker.metrics(), ("streamrec_item_stats_sent_total",
                                                             "streamrec_item_stats_applied_total"))
            sent, applied = figures["streamrec_item_stats_sent_total"], figures["streamrec_item_stats_applied_total"]
            if applied >= sent:
                return
            if time.monotonic() > deadline:
                raise PipelineEvalError(
                    f"the worker applied {applied:.0f} of the {sent:.0f} item-statistics increments it produced "
                    f"within {self._timeout:.0f}s"
                )
            self._worker.check_alive()
            time.sleep(0.01)

    def recommend(
        self, user_id: UserId, k: int, exclude: set[ItemId], now: Timestamp | None = None
    ) -> list[ItemId]:
        """The list last published for ``user_id``, without ``exclude``."""
        return [i for i in self._reader.latest(user_id) if i not in exclude][:k]

    def model_versions(self) -> dict[str, int]:
        """Published lists per ``model_version`` so far (the ranker the figures measure)."""
        return self._reader.model_versions()

    def close(self) -> None:
        self._producer.close()


def eval_settings(settings: Settings, k: int, batch: int) -> Settings:
    """``settings`` adjusted for an evaluation run: whole histories excluded, old timestamps
    accepted, no rate limit or state expiry, lists of ``k``, micro-batches of exactly ``batch``
    events, its own names."""
    return settings.isolated(f"eval{time.time_ns() // 1_000_000 % 10**10}").model_copy(
        update={
            "top_k": k,
            "history_size": EVAL_HISTORY,
            "exclude_recent": EVAL_HISTORY,
            "min_event_ts": 0.0,
            # A replay compresses years into minutes: no per-user rate limit, no state expiry,
            # so the worker learns every event as the in-process product does.
            "user_rate_limit_per_s": 0.0,
            "user_state_ttl_s": 0.0,
            # The worker's micro-batch is the evaluation's: it yields when exactly ``batch`` events
            # are in, not when a short debounce ends partway through a batch's arrival (a split
            # batch lets its second half see the first half's item statistics, as in process it
            # cannot). Only a final, shorter batch waits the whole window.
            "event_batch_size": batch,
            "refresh_debounce_s": max(settings.refresh_debounce_s, EVAL_BATCH_WAIT_S),
            # The next batch should meet the item-stats increments of this one, as in process.
            "item_state_fetch_wait_s": settings.kafka_fetch_max_wait_s,
        }
    )


@contextmanager
def running_pipeline(
    settings: Settings, dataset: Dataset, k: int, batch: int, *, log_dir: Path | None = None, timeout: float = 120.0,
    bundle: Bundle | None = None,
) -> Iterator[PipelineRecommender]:
    """A worker (on the embedded broker and Redis unless addresses are set) with
    ``dataset``'s items in its catalog, as a :class:`PipelineRecommender`; with ``bundle``,
    the worker ranks with that ranker bundle (and refuses to start otherwise)."""
    work = log_dir or Path(tempfile.mkdtemp(prefix="streamrec-eval-"))
    with ExitStack() as stack:
        resolved = stack.enter_context(resolve_addresses(settings))
        s = eval_settings(resolved, k, batch).model_copy(
            update={"web_port": find_free_port(), "data_dir": work / "worker"}
        )
        if bundle is not None:
            s = s.model_copy(update={"ranker_dir": worker_ranker_dir(bundle, work / "rankers"), "ranker_poll_s": 0.0})
        ensure_topics(s)
        worker = stack.enter_context(WorkerProcess(s, work / "worker.log"))
        reader = RecommendationReader(s).start()
        stack.callback(reader.stop)
        try:
            status = worker.wait_ready(timeout=600)
            if bundle is not None and status.get("model_version") != bundle.version:
                said = [line for line in worker.log_tail(2000).splitlines() if "ranker" in line][-5:]
                raise PipelineEvalError(
                    f"the worker ranks with {status.get('model_version')!r}, not the bundle {bundle.version} "
                    f"({bundle.path}); its log says:\n" + "\n".join(said or ["(nothing about the ranker)"])
                )
            publish_catalog(s, dataset)
            worker.wait_ready(min_items=len(dataset.item_ids()), timeout=600)
        except WorkerFailed as exc:
            raise PipelineEvalError(str(exc)) from None
        rec = PipelineRecommender(s, worker, reader, timeout=timeout)
        stack.callback(rec.close)
        yield rec


def metric_values(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """The values of unlabelled samples ``names`` in Prometheus text ``text`` (0 when absent).

    >>> metric_values("# HELP a_total A\\na_total 3.0\\nb 1\\n", ("a_total", "c"))
    {'a_total': 3.0, 'c': 0.0}
    """
    found = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = float(value)
    return found


def worker_ranker_dir(bundle: Bundle, root: Path) -> Path:
    """A ranker folder under ``root`` holding a copy of ``bundle`` alone, so it is the newest there."""
    if root.exists():
        raise PipelineEvalError(f"{root} already exists; give the evaluation a fresh work folder")
    shutil.copytree(bundle.path, root / bundle.path.name)
    return root


def publish_catalog(settings: Settings, dataset: Dataset) -> None:
    """Every item of ``dataset`` to the catalog topic (its text as the title, none: behaviour-only;
    its category, if any)."""
    producer = create_producer(settings, linger_ms=20)
    for item_id in dataset.item_ids():
        item = {"item_id": item_id, "title": dataset.item_text.get(item_id, "")}
        if item_id in dataset.item_category:
            item["category"] = dataset.item_category[item_id]
        producer.send(settings.topic_catalog, key=item_id.encode(), value=json.dumps(item).encode())
    producer.flush()
    producer.close()
