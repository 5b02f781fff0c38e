"""The swap step on its own: newer bundles in, roll back by removing one, refusals remembered."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from agents.model_swap import swap_if_newer
from models.covisitation import CoVisitation
from models.interest import InterestLearner, UserState
from models.item_activity import ItemActivity
from models.item_index import ItemIndex
from models.recommender import Recommender
from streams.metrics import Metrics
from streams.settings import Settings
from tests.export.ranker_logs import tiny_bundle


def test_swaps_to_newer_rolls_back_on_removal_and_refuses_misfits_once(tmp_path: Path) -> None:
    index = ItemIndex(dim=8)
    for i in range(30):
        index.upsert(f"i{i}", np.random.default_rng(i).standard_normal(8).astype(np.float32))
    rec = Recommender(index, CoVisitation(), ItemActivity(), InterestLearner())
    p = SimpleNamespace(recommender=rec, settings=Settings(ranker_dir=tmp_path), embedder=SimpleNamespace(version="s"),
                        metrics=Metrics())
    refused: set[str] = set()

    def swap() -> bool:
        return asyncio.run(swap_if_newer(p, refused))  # type: ignore[arg-type]

    assert not swap() and rec.model_version == "blend-2"  # nothing to load: the blend stays
    old, _ = tiny_bundle(tmp_path, dim=8, text_dim=6, space="s", created_at=1_767_000_000.0, fingerprint="aaaaaaaa")
    new, _ = tiny_bundle(tmp_path, dim=8, text_dim=6, space="s", created_at=1_767_000_100.0, fingerprint="bbbbbbbb")
    assert swap() and rec.model_version == new.version
    assert not swap()  # already in use: not reloaded
    state = InterestLearner().learn_interaction(UserState(), "i1", index.vector("i1"), "click", ts=10.0)
    (items,) = rec.recommend([("u", state, 10.0)])
    assert len(items) == 10  # the swapped-in ranker ranks real candidates
    misfit, _ = tiny_bundle(tmp_path, dim=8, text_dim=6, space="other", created_at=1_767_000_200.0, fingerprint="cc")
    assert not swap() and not swap() and rec.model_version == new.version
    assert refused == {misfit.version}
    assert 'streamrec_ranker_loads_total{outcome="error"} 1.0' in p.metrics.render().decode()  # refused once
    shutil.rmtree(misfit.path)
    shutil.rmtree(new.path)  # roll back: the next newest comes in
    assert swap() and rec.model_version == old.version
    shutil.rmtree(old.path)
    assert not swap() and rec.model_version == old.version  # no bundle left: keep ranking until restart
