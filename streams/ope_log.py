"""``streamrec ope-log OUT``: the exploration decisions a shop's workers made, with their rewards,
as the log ``streamrec ope`` reads.

Every exploration slot of a published list is one logged decision: its item carries the
``source`` its user's bandit picked (the arm), the ``propensity`` of that pick and the
``arms`` it picked among (``recommendations`` topic). The site's impression of the list
(``events.impressions``, same ``request_id``) says it was shown; a click carrying the
list's ``request_id`` on that item within ``window_s`` of the impression (in event time,
as the workers' reward join counts it) makes the reward 1, none makes it 0. Decisions
never shown are not in the log (nothing was learned from them); shown ones whose window
has not ended by the newest event read are left out as pending. The first impression of a
list counts (a redelivered one changes nothing), and so does the first click on an item.

>>> recs = [{"request_id": "r1", "user_id": "u", "policy": "thompson", "items": [
...     {"item_id": "a", "source": "interest", "propensity": 1.0},
...     {"item_id": "b", "source": "trending", "propensity": 0.3, "arms": ["interest", "trending"]}]}]
>>> imps = [{"request_id": "r1", "user_id": "u", "item_ids": ["a", "b"], "ts": 10.0}]
>>> clicks = [{"request_id": "r1", "user_id": "u", "item_id": "b", "ts": 12.0}, {"user_id": "u", "item_id": "c", "ts": 99.0}]
>>> lines, counts = join_decisions(recs, imps, clicks, window_s=60.0)
>>> [(x["arm"], x["reward"], x["propensity"], x["arms"]) for x in lines], counts["pending"]
([('trending', 1, 0.3, ['interest', 'trending'])], 0)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.topic_reader import TopicReadError, read_to_end

if TYPE_CHECKING:
    from streams.settings import Settings

Record = Mapping[str, Any]


class OpeLogError(RuntimeError):
    """The topics could not be read or the log not written; the message says why."""


def _decisions(recommendations: Iterable[Record], counts: Counter[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """(request_id, item_id) -> the logged decision, for every exploration slot published."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in recommendations:
        for item in rec.get("items") or ():
            arms = item.get("arms") if isinstance(item, Mapping) else None
            if not arms:
                continue
            try:
                key = (str(rec["request_id"]), str(item["item_id"]))
                out.setdefault(key, {
                    "request_id": key[0], "user_id": str(rec.get("user_id", "")), "item_id": key[1],
                    "policy": str(rec.get("policy", "")), "arm": str(item["source"]),
                    "propensity": float(item["propensity"]), "arms": [str(a) for a in arms],
                })
            except (KeyError, TypeError, ValueError):
                counts["unreadable_recommendations"] += 1
    return out


def join_decisions(
    recommendations: Iterable[Record], impressions: Iterable[Record], clicks: Iterable[Record], window_s: float
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The shown exploration decisions with their rewards (see the module docstring), and counts
    of what was left out: ``pending`` (window still open), ``not_shown``, ``unreadable_*``."""
    counts: Counter[str] = Counter()
    decisions = _decisions(recommendations, counts)
    shown: dict[str, tuple[float, set[str]]] = {}  # request_id -> (first impression ts, item ids)
    newest = float("-inf")
    for imp in impressions:
        try:
            rid, ts, items = str(imp["request_id"]), float(imp["ts"]), {str(i) for i in imp["item_ids"]}
        except (KeyError, TypeError, ValueError):
            counts["unreadable_impressions"] += 1
            continue
        newest = max(newest, ts)
        if rid not in shown or ts < shown[rid][0]:
            shown[rid] = (ts, items)
    first_click: dict[tuple[str, str], float] = {}
    for click in clicks:
        try:
            ts = float(click["ts"])
            click_rid = click.get("request_id")
            key = (str(click_rid), str(click["item_id"])) if click_rid else None
        except (KeyError, TypeError, ValueError):
            counts["unreadable_clicks"] += 1
            continue
        newest = max(newest, ts)
        if key is not None and key in decisions:
            first_click[key] = min(ts, first_click.get(key, ts))
    lines: list[dict[str, Any]] = []
    for key, decision in decisions.items():
        seen = shown.get(key[0])
        if seen is None or key[1] not in seen[1]:
            counts["not_shown"] += 1
            continue
        t_shown = seen[0]
        clicked = first_click.get(key)
        if clicked is not None and t_shown - window_s <= clicked <= t_shown + window_s:  # early clicks wait a window
            lines.append({**decision, "reward": 1})
        elif t_shown + window_s < newest:
            lines.append({**decision, "reward": 0})
        else:
            counts["pending"] += 1
    return lines, counts


def _values(settings: Settings, topic: str, setting: str, timeout_s: float, counts: Counter[str],
            name: str) -> Iterable[Record]:
    for r in read_to_end(settings, topic, timeout_s, setting=setting, purpose="ope-log"):
        if r.value is None:
            continue  # a tombstone (a forgotten user)
        try:
            value = json.loads(r.value)
        except (UnicodeDecodeError, ValueError):
            counts[f"unreadable_{name}"] += 1
            continue
        if isinstance(value, dict):
            yield value
        else:
            counts[f"unreadable_{name}"] += 1


def write_ope_log(settings: Settings, out: Path, window_s: float, timeout_s: float = 300.0) -> Counter[str]:
    """Read the recommendations, impressions and clicks topics to their ends and write the
    shown exploration decisions to ``out`` (JSON lines); returns what was written and left out."""
    counts: Counter[str] = Counter()
    try:
        recs = list(_values(settings, settings.topic_recommendations, "STREAMREC_TOPIC_RECOMMENDATIONS", timeout_s,
                            counts, "recommendations"))
        imps = list(_values(settings, settings.topic_impressions, "STREAMREC_TOPIC_IMPRESSIONS", timeout_s,
                            counts, "impressions"))
        clicks = list(_values(settings, settings.topic_clicks, "STREAMREC_TOPIC_CLICKS", timeout_s, counts, "clicks"))
    except TopicReadError as exc:
        raise OpeLogError(str(exc)) from None
    lines, left_out = join_decisions(recs, imps, clicks, window_s)
    counts.update(left_out)
    counts["decisions"] = len(lines)
    counts["clicked"] = sum(x["reward"] for x in lines)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines), encoding="utf-8")
    except OSError as exc:
        raise OpeLogError(f"cannot write {out}: {exc.strerror or exc}") from None
    return counts
