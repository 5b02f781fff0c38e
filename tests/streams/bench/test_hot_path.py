"""The in-process hot-path replay measures every stage and leaves real state behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.interest import UserState
from streams.bench.clickgen import ClickGenerator
from streams.bench.hot_path import demo_recommender, main, replay
from streams.settings import Settings


def test_replay_times_every_stage_and_learns(model_dir: Path) -> None:
    rec = demo_recommender(Settings(model_dir=model_dir))
    assert len(rec.index) == 200
    gen = ClickGenerator(rec.index.item_ids(range(rec.index.size)), users=20, seed=1, run="t")
    raw = [gen.next(1.8e9 + i)[1] for i in range(300)]
    seconds = replay(rec, raw, batch=64)
    assert set(seconds) == {
        "decode", "load states", "apply events", "save states",
        "refresh (candidates + ranking)", "recommendation JSON", "item-side state",
    }
    assert all(s > 0 for s in seconds.values())
    assert len(rec.covisitation) > 0 and len(rec.trending) > 0  # the batches were folded in
    first = rec.index.item_id(0)
    state = rec.learner.learn_interaction(UserState(), first, rec.index.vector(first), "click", 1.8e9, None)
    assert len(rec.recommend([("someone", state, 1.8e9)])[0]) == rec.top_k


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--batch", "0"])
    assert exc.value.code == 2 and "--batch" in capsys.readouterr().err
