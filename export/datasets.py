"""Interaction logs for offline quality evaluation, read from their public formats.

Every reader returns a :class:`Dataset`: interactions in time order (ties kept in
file order) and, when the data has it, a text per item for the sentence encoder.
Paths are always arguments; nothing here copies data anywhere.

>>> ds = Dataset("toy", [Interaction("u", "b", 2.0), Interaction("u", "a", 1.0)])
>>> [i.item_id for i in ds.interactions], ds.n_users, ds.n_items
(['a', 'b'], 1, 2)
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from models.interest import KIND_WEIGHTS


@dataclass(frozen=True)
class Interaction:
    """One user-item event at Unix time ``ts``."""

    user_id: str
    item_id: str
    ts: float
    kind: str = "click"


@dataclass
class Dataset:
    """A named interaction log sorted by ``ts`` (stable), plus optional item texts and categories."""

    name: str
    interactions: list[Interaction]
    item_text: dict[str, str] = field(default_factory=dict)
    item_category: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interactions = sorted(self.interactions, key=lambda i: i.ts)  # sorted() is stable

    def __len__(self) -> int:
        return len(self.interactions)

    @property
    def n_users(self) -> int:
        return len({i.user_id for i in self.interactions})

    @property
    def n_items(self) -> int:
        return len({i.item_id for i in self.interactions})

    def item_ids(self) -> list[str]:
        """Every item that has a text or occurs in the log, in first-seen order."""
        seen = dict.fromkeys(self.item_text)
        seen.update(dict.fromkeys(i.item_id for i in self.interactions))
        return list(seen)


def _atomic_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, field -> value) rows of a RecBole atomic file (header ``name:type``)."""
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    with path.open(encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    if not lines:
        raise ValueError(f"{path}:1: empty file, expected a header")
    names = [h.split(":", 1)[0] for h in lines[0].split("\t")]
    missing = [r for r in required if r not in names]
    if missing:
        raise ValueError(f"{path}:1: header lacks {', '.join(missing)} (got {lines[0]!r})")
    rows: list[tuple[int, dict[str, str]]] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(names):
            raise ValueError(f"{path}:{n}: expected {len(names)} tab-separated fields, got {len(values)}")
        rows.append((n, dict(zip(names, values, strict=True))))
    return rows


def _float(value: str, path: Path, line: int, what: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{path}:{line}: {what} is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{path}:{line}: {what} is not finite: {value!r}")
    return x


def read_movielens(path: Path) -> Dataset:
    """MovieLens in RecBole atomic format (``<dir>/ml-100k.inter`` and optional ``ml-100k.item``).

    Every rating is one interaction; the item text is ``"Title (year). Genres: ..."`` and
    the item's category its first listed genre.
    """
    path = Path(path)
    inter = path / "ml-100k.inter"
    events: list[Interaction] = []
    for n, row in _atomic_rows(inter, ("user_id", "item_id", "timestamp")):
        if not row["user_id"] or not row["item_id"]:
            raise ValueError(f"{inter}:{n}: empty user_id or item_id")
        events.append(Interaction(row["user_id"], row["item_id"], _float(row["timestamp"], inter, n, "timestamp")))
    texts: dict[str, str] = {}
    categories: dict[str, str] = {}
    item_file = path / "ml-100k.item"
    if item_file.is_file():
        for _, row in _atomic_rows(item_file, ("item_id", "movie_title")):
            title = row["movie_title"].strip()
            year = row.get("release_year", "").strip()
            text = f"{title} ({year})" if year else title
            genres = row.get("class", "").strip()
            texts[row["item_id"]] = f"{text}. Genres: {genres}" if genres else text
            if genres:
                categories[row["item_id"]] = genres.split()[0]
    return Dataset(path.name, events, texts, categories)


def read_diginetica(path: Path) -> Dataset:
    """Diginetica item views (``<dir>/train-item-views.csv``), ordered by (eventdate, timeframe).

    Anonymous sessions (``user_id`` NA) become users ``s<session_id>``; ``ts`` is the
    date's UTC midnight plus ``timeframe`` milliseconds.
    """
    path = Path(path)
    views = path / "train-item-views.csv"
    if not views.is_file():
        raise ValueError(f"{views}: file not found")
    keyed: list[tuple[float, int, Interaction]] = []
    with views.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader, None)
        want = ["session_id", "user_id", "item_id", "timeframe", "eventdate"]
        if header != want:
            raise ValueError(f"{views}:1: expected header {';'.join(want)}, got {header!r}")
        for row in reader:
            n = reader.line_num
            if not row:
                continue
            if len(row) != 5:
                raise ValueError(f"{views}:{n}: expected 5 ';'-separated fields, got {len(row)}")
            session, user, item, timeframe, day = (x.strip() for x in row)
            if not session or not item:
                raise ValueError(f"{views}:{n}: empty session_id or item_id")
            try:
                midnight = (date.fromisoformat(day) - date(1970, 1, 1)).days * 86400.0
            except ValueError:
                raise ValueError(f"{views}:{n}: eventdate is not a YYYY-MM-DD date: {day!r}") from None
            ms = _float(timeframe, views, n, "timeframe")
            if ms < 0 or ms >= 86_400_000:
                raise ValueError(f"{views}:{n}: timeframe {timeframe!r} is outside one day of milliseconds")
            uid = user if user and user != "NA" else f"s{session}"
            ts = midnight + ms / 1000.0
            keyed.append((ts, n, Interaction(uid, item, ts, "view")))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return Dataset(path.name, [e for _, _, e in keyed])


def read_jsonl(path: Path) -> Dataset:
    """The project's ClickEvent JSON lines; lines with ``item_id`` and ``title`` but no
    ``user_id`` are catalog items whose title becomes the item text (and ``category``,
    if any, the item's category)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    events: list[Interaction] = []
    texts: dict[str, str] = {}
    categories: dict[str, str] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object")  # noqa: TRY004 - malformed input
            if "user_id" not in obj and "title" in obj and "item_id" in obj:
                texts[str(obj["item_id"])] = str(obj["title"])
                if obj.get("category"):
                    categories[str(obj["item_id"])] = str(obj["category"])
                continue
            missing = [k for k in ("user_id", "item_id", "kind", "ts") if obj.get(k) in (None, "")]
            if missing:
                raise ValueError(f"{path}:{n}: missing {', '.join(missing)}")
            if obj["kind"] not in KIND_WEIGHTS:
                raise ValueError(f"{path}:{n}: kind must be one of {', '.join(KIND_WEIGHTS)} (got {obj['kind']!r})")
            if isinstance(obj["ts"], bool) or not isinstance(obj["ts"], (int, float)):
                raise ValueError(f"{path}:{n}: ts must be a number (got {obj['ts']!r})")  # noqa: TRY004
            ts = _float(str(obj["ts"]), path, n, "ts")
            events.append(Interaction(str(obj["user_id"]), str(obj["item_id"]), ts, str(obj["kind"])))
    return Dataset(path.stem, events, texts, categories)
