"""Bandit rewards from impressions joined with clicks on request_id, within a window.

:class:`FeedbackJoin` is the pure, event-time join the feedback agent runs per user
partition (its state is a JSON-able dict, so it can live in a changelog table):

* an **impression** opens a window of ``window_s`` seconds (event time) for every
  item it shows, remembering the source and propensity each item was published with;
* a **click** with the same request_id on a shown item within the window gives that
  (request, item) a reward of 1 at once;
* when event time (:meth:`advance`, the newest event timestamp seen) passes a
  window's end, every shown item not clicked gets a reward of 0.

Deliberate handling of the awkward cases, each counted in :attr:`counts`:

* ``duplicate_impressions`` / ``duplicate_clicks``: idempotent by (request_id,
  item_id): a redelivered impression adds nothing, a second click on an item adds
  no second reward (Kafka is at-least-once);
* ``late_clicks``: a click after its window closed (its timestamp past the end, or
  its request already closed) is ignored for the reward (the 0 stands: the policy
  already learned it) but counted, so a too-short window shows up in the metrics;
* ``early_clicks``: a click whose impression has not arrived yet (the topics are not
  ordered with each other) is held for up to one window and applied when the
  impression comes; if it never does it is counted as ``orphan_clicks``;
* ``clicks_not_shown``: a click carrying a request_id on an item that request did
  not show gives no reward (it is not feedback on the slate).

Closed request ids are remembered for ``window_s`` more seconds, to recognise late
clicks and duplicate impressions; after that they are forgotten. With ``max_open``, at
most that many impressions stay open: a newer one closes the oldest early (its
unclicked items get their 0 then), and at most ``4 * max_open`` closed ids are kept, so
the state of a very active user stays bounded.

>>> j = FeedbackJoin(window_s=60)
>>> j.impression("r1", "u1", ["a", "b"], ts=0.0, sources=["interest", "explore"], propensities=[1.0, 0.25])
[]
>>> [(r.item_id, r.reward) for r in j.click("r1", "b", ts=10.0)]
[('b', 1)]
>>> [(r.item_id, r.reward, r.source, r.propensity) for r in j.advance(61.0)]
[('a', 0, 'interest', 1.0)]
>>> j.click("r1", "a", ts=70.0), j.counts["late_clicks"]
([], 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COUNTERS: tuple[str, ...] = (
    "impressions", "rewards_1", "rewards_0", "duplicate_impressions", "duplicate_clicks",
    "late_clicks", "early_clicks", "orphan_clicks", "clicks_not_shown",
)


@dataclass(frozen=True)
class Reward:
    """One resolved (request, item): 1 clicked within the window, 0 not clicked by its end."""

    request_id: str
    user_id: str
    item_id: str
    reward: int
    source: str
    propensity: float
    shown_ts: float
    resolved_ts: float


class FeedbackJoin:
    """Event-time join of impressions and clicks on request_id (see the module docstring).

    Parameters
    ----------
    window_s
        Seconds after an impression during which a click counts as its reward.
    max_open
        Most impressions kept open at once (None: no bound); see the module docstring.
    """

    def __init__(self, window_s: float = 1800.0, max_open: int | None = None) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive (got {window_s})")
        if max_open is not None and max_open < 1:
            raise ValueError(f"max_open must be at least 1 (got {max_open})")
        self.window_s = float(window_s)
        self.max_open = max_open
        # request_id -> {"user": str, "ts": float, "items": {item_id: [source, propensity, clicked]}}
        self._open: dict[str, dict[str, Any]] = {}
        self._closed: dict[str, float] = {}  # request_id -> window end
        self._early: dict[str, list[list[Any]]] = {}  # request_id -> [[item_id, ts], ...]
        self._watermark = float("-inf")
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    @property
    def watermark(self) -> float:
        """The newest event time seen."""
        return self._watermark

    def pending(self) -> int:
        """Number of (request, item) pairs still waiting for their window to close."""
        return sum(len(r["items"]) for r in self._open.values())

    def impression(
        self,
        request_id: str,
        user_id: str,
        item_ids: Sequence[str],
        ts: float,
        sources: Sequence[str] | None = None,
        propensities: Sequence[float] | None = None,
    ) -> list[Reward]:
        """Open the window of a shown slate; returns rewards of clicks that arrived before it."""
        sources = list(sources) if sources is not None else ["unknown"] * len(item_ids)
        props = [float(p) for p in propensities] if propensities is not None else [1.0] * len(item_ids)
        if not (len(sources) == len(props) == len(item_ids)):
            raise ValueError("sources and propensities must have one entry per shown item")
        if any(not 0.0 < p <= 1.0 for p in props):
            raise ValueError("propensities must be in (0, 1]")
        if request_id in self._closed:
            self.counts["duplicate_impressions"] += 1
            return []
        entry = self._open.get(request_id)
        if entry is None:
            entry = self._open[request_id] = {"user": user_id, "ts": float(ts), "items": {}}
            self.counts["impressions"] += 1
        else:
            self.counts["duplicate_impressions"] += 1
        for item_id, source, p in zip(item_ids, sources, props, strict=True):
            entry["items"].setdefault(item_id, [source, p, False])
        out: list[Reward] = []
        for item_id, click_ts in self._early.pop(request_id, []):
            out.extend(self.click(request_id, item_id, click_ts))
        out.extend(self.advance(ts))
        if self.max_open is not None:
            while len(self._open) > self.max_open:
                out.extend(self._close(min(self._open, key=lambda r: self._open[r]["ts"])))
            for r in sorted(self._closed, key=self._closed.__getitem__)[: max(0, len(self._closed) - 4 * self.max_open)]:
                del self._closed[r]
        return out

    def _close(self, request_id: str) -> list[Reward]:
        """Close one open impression: a 0 for each item not clicked."""
        entry = self._open.pop(request_id)
        end = entry["ts"] + self.window_s
        out: list[Reward] = []
        for item_id, (source, p, clicked) in entry["items"].items():
            if not clicked:
                self.counts["rewards_0"] += 1
                out.append(Reward(request_id, entry["user"], item_id, 0, source, p, entry["ts"], end))
        self._closed[request_id] = end
        return out

    def click(self, request_id: str, item_id: str, ts: float) -> list[Reward]:
        """A click carrying ``request_id``: a reward of 1 if it is in the shown item's window."""
        entry = self._open.get(request_id)
        out: list[Reward] = []
        if entry is None:
            if request_id in self._closed:
                self.counts["late_clicks"] += 1
            else:
                self.counts["early_clicks"] += 1
                self._early.setdefault(request_id, []).append([item_id, float(ts)])
        elif item_id not in entry["items"]:
            self.counts["clicks_not_shown"] += 1
        elif ts > entry["ts"] + self.window_s:
            self.counts["late_clicks"] += 1
        else:
            shown = entry["items"][item_id]
            if shown[2]:
                self.counts["duplicate_clicks"] += 1
            else:
                shown[2] = True
                self.counts["rewards_1"] += 1
                out.append(Reward(request_id, entry["user"], item_id, 1, shown[0], shown[1], entry["ts"], float(ts)))
        out.extend(self.advance(ts))
        return out

    def advance(self, now: float) -> list[Reward]:
        """Move event time to ``now``: windows that ended give a 0 for each item not clicked."""
        if now <= self._watermark:
            return []
        self._watermark = float(now)
        out: list[Reward] = []
        for request_id in [r for r, e in self._open.items() if e["ts"] + self.window_s < now]:
            out.extend(self._close(request_id))
        for request_id in [r for r, end in self._closed.items() if end + self.window_s < now]:
            del self._closed[request_id]
        for request_id in [r for r, clicks in self._early.items() if clicks[0][1] + self.window_s < now]:
            self.counts["orphan_clicks"] += len(self._early.pop(request_id))
        return out

    def state_dict(self) -> dict[str, Any]:
        """The join's whole state as JSON-able data."""
        return {
            "window_s": self.window_s, "max_open": self.max_open, "watermark": self._watermark if self._watermark > float("-inf") else None,
            "open": {r: {"user": e["user"], "ts": e["ts"], "items": [[i, *v] for i, v in e["items"].items()]}
                     for r, e in self._open.items()},
            "closed": dict(self._closed), "early": {r: [list(c) for c in v] for r, v in self._early.items()},
            "counts": dict(self.counts),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeedbackJoin:
        """Rebuild a join from :meth:`state_dict` output."""
        j = cls(float(state["window_s"]), state.get("max_open"))
        j._watermark = float("-inf") if state["watermark"] is None else float(state["watermark"])
        j._open = {r: {"user": e["user"], "ts": float(e["ts"]), "items": {i[0]: [i[1], float(i[2]), bool(i[3])]
                                                                      for i in e["items"]}}
                   for r, e in state["open"].items()}
        j._closed = {r: float(t) for r, t in state["closed"].items()}
        j._early = {r: [[c[0], float(c[1])] for c in v] for r, v in state["early"].items()}
        j.counts = {k: int(state["counts"].get(k, 0)) for k in COUNTERS}
        return j
