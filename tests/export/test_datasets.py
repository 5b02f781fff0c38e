"""Dataset readers on small files written here, and on the real data when it is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.datasets import (
    Dataset,
    Interaction,
    read_diginetica,
    read_jsonl,
    read_movielens,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_movielens_order_ties_and_text(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    write(
        d / "ml-100k.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t3\t200\n2\t11\t1\t100\n1\t12\t5\t200\n3\t10\t4\t150\n",
    )
    write(
        d / "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Children's Comedy\n11\tHeat\t\t\n",
    )
    ds = read_movielens(d)
    assert [(i.user_id, i.item_id, i.ts) for i in ds.interactions] == [
        ("2", "11", 100.0), ("3", "10", 150.0), ("1", "10", 200.0), ("1", "12", 200.0)
    ]  # equal timestamps keep file order
    assert ds.item_text == {"10": "Toy Story (1995). Genres: Animation Children's Comedy", "11": "Heat"}
    assert ds.item_category == {"10": "Animation"}  # the first genre; none without genres
    assert all(i.kind == "click" for i in ds.interactions)
    assert ds.item_ids() == ["10", "11", "12"]


def test_movielens_errors_name_file_and_line(tmp_path: Path) -> None:
    d = tmp_path / "ml"
    with pytest.raises(ValueError, match="not found"):
        read_movielens(d)
    write(d / "ml-100k.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n")
    with pytest.raises(ValueError, match=r"ml-100k\.inter:3: expected 3"):
        read_movielens(d)
    write(d / "ml-100k.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\tsoon\n")
    with pytest.raises(ValueError, match=r"ml-100k\.inter:2: timestamp is not a number"):
        read_movielens(d)
    write(d / "ml-100k.inter", "user_id:token\ttimestamp:float\n1\t2\n")
    with pytest.raises(ValueError, match=r"ml-100k\.inter:1: header lacks item_id"):
        read_movielens(d)


def test_diginetica_users_and_order(tmp_path: Path) -> None:
    d = tmp_path / "dig"
    write(
        d / "train-item-views.csv",
        "session_id;user_id;item_id;timeframe;eventdate\n"
        "1;NA;81766;526309;2016-05-09\n"
        "1;NA;31331;1031018;2016-05-09\n"
        "2;7;555;1000;2016-05-10\n"
        "3;NA;9;5000;2016-05-09\n",
    )
    ds = read_diginetica(d)
    assert [(i.user_id, i.item_id) for i in ds.interactions] == [
        ("s3", "9"), ("s1", "81766"), ("s1", "31331"), ("7", "555")
    ]
    assert ds.interactions[0].ts == pytest.approx(1462752000.0 + 5.0)  # 2016-05-09T00:00Z + 5 s
    assert ds.item_text == {} and all(i.kind == "view" for i in ds.interactions)


def test_diginetica_errors(tmp_path: Path) -> None:
    d = tmp_path / "dig"
    head = "session_id;user_id;item_id;timeframe;eventdate\n"
    write(d / "train-item-views.csv", head + "1;NA;2;3;May 9\n")
    with pytest.raises(ValueError, match=r"train-item-views\.csv:2: eventdate"):
        read_diginetica(d)
    write(d / "train-item-views.csv", head + "1;NA;2;3;2016-05-09\n1;NA;2\n")
    with pytest.raises(ValueError, match=r"train-item-views\.csv:3: expected 5"):
        read_diginetica(d)
    write(d / "train-item-views.csv", "a;b\n")
    with pytest.raises(ValueError, match=r":1: expected header"):
        read_diginetica(d)


def test_jsonl_events_and_catalog(tmp_path: Path) -> None:
    lines = [
        {"item_id": "p1", "title": "Pulse Buds", "category": "audio"},
        {"event_id": "e2", "user_id": "u", "item_id": "p2", "kind": "purchase", "ts": 20.5},
        {"event_id": "e1", "user_id": "u", "item_id": "p1", "kind": "view", "ts": 10},
    ]
    path = write(tmp_path / "events.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    ds = read_jsonl(path)
    assert ds.name == "events"
    assert ds.interactions == [Interaction("u", "p1", 10.0, "view"), Interaction("u", "p2", 20.5, "purchase")]
    assert ds.item_text == {"p1": "Pulse Buds"}
    assert ds.item_category == {"p1": "audio"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ('["a"]', "expected a JSON object"),
        ('{"user_id": "u", "item_id": "i", "ts": 1}', "missing kind"),
        ('{"user_id": "u", "item_id": "i", "kind": "like", "ts": 1}', "kind must be one of"),
        ('{"user_id": "u", "item_id": "i", "kind": "view", "ts": "x"}', "ts must be a number"),
    ],
)
def test_jsonl_errors(tmp_path: Path, line: str, message: str) -> None:
    ok = '{"user_id": "u", "item_id": "i", "kind": "view", "ts": 1}'
    path = write(tmp_path / "bad.jsonl", ok + "\n" + line + "\n")
    with pytest.raises(ValueError, match=rf"bad\.jsonl:2: {message}"):
        read_jsonl(path)


def test_dataset_sorts_stably() -> None:
    ds = Dataset("x", [Interaction("u", "b", 1.0), Interaction("u", "c", 0.0), Interaction("v", "a", 1.0)])
    assert [i.item_id for i in ds.interactions] == ["c", "b", "a"]
    assert (len(ds), ds.n_users, ds.n_items) == (3, 2, 3)


@pytest.mark.skipif(not (DATA / "movielens-100k").is_dir(), reason=f"no MovieLens data at {DATA}")
def test_real_movielens() -> None:
    ds = read_movielens(DATA / "movielens-100k")
    assert (len(ds), ds.n_users, ds.n_items, len(ds.item_text)) == (100_000, 943, 1682, 1682)
    assert ds.item_text["1"] == "Toy Story (1995). Genres: Animation Children's Comedy"
    ts = [i.ts for i in ds.interactions]
    assert ts == sorted(ts)


@pytest.mark.skipif(not (DATA / "diginetica-sample").is_dir(), reason=f"no Diginetica data at {DATA}")
def test_real_diginetica() -> None:
    ds = read_diginetica(DATA / "diginetica-sample")
    assert (len(ds), ds.n_items) == (12_391, 7139)
    assert not any(i.user_id == "NA" for i in ds.interactions)
    ts = [i.ts for i in ds.interactions]
    assert ts == sorted(ts)
