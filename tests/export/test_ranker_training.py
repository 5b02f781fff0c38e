"""Training examples from a replayed log, and training itself, on a tiny generated log."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.examples import build_examples
from export.training import (
    TrainConfig,
    load_checkpoint,
    ranking_metrics,
    save_checkpoint,
    train_ranker,
)
from models.ranker_features import DENSE_FEATURES
from tests.export.ranker_logs import walk_log

CFG = TrainConfig(epochs=4, batch_groups=32, rank=4, hidden=(16,), seed=3)


def test_examples_use_only_what_was_known_when_the_list_was_served() -> None:
    ds = walk_log()
    short = build_examples(ds, None, events=300, val_share=0.2, negatives=5, seed=1)
    longer = build_examples(ds, None, events=600, val_share=0.2, negatives=5, seed=1)
    # The training groups of the first 240 events are in both runs (same seed, same order);
    # had any feature looked ahead, the longer replay would have changed them.
    n = short.train.n_groups
    assert n > 50
    end = int(short.train.offsets[-1])
    assert np.array_equal(short.train.offsets, longer.train.offsets[: n + 1])
    np.testing.assert_array_equal(short.train.rows, longer.train.rows[:end])
    np.testing.assert_array_equal(short.train.dense, longer.train.dense[:end])
    np.testing.assert_array_equal(short.train.user_vectors, longer.train.user_vectors[:n])


def test_groups_put_the_chosen_item_first_with_sampled_served_negatives() -> None:
    ex = build_examples(walk_log(), None, events=500, val_share=0.2, negatives=6, seed=0)
    sizes = np.diff(ex.train.offsets)
    assert sizes.max() <= 7 and sizes.min() >= 2
    assert ex.train.label[ex.train.offsets[:-1]].sum() == ex.train.n_groups == ex.train.label.sum()
    # Validation keeps every served candidate, so groups there are larger than the sampled ones.
    assert np.diff(ex.val.offsets).max() > 7
    assert ex.info["val_start_event"] == 400 and ex.info["events_used"] == 500
    popularity = ex.train.dense[:, DENSE_FEATURES.index("log_popularity")]
    assert popularity.max() > 0  # item statistics reach the features
    assert ex.dim == ex.text_dim == 8 and ex.embedding_space is None  # behaviour-only log


def test_training_is_deterministic_and_learns_the_walk(tmp_path: object) -> None:
    ex = build_examples(walk_log(users=120), None, events=1400, val_share=0.2, negatives=10, seed=0)
    one = train_ranker(ex, CFG)
    two = train_ranker(ex, CFG)
    assert one.history == two.history
    for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    m = one.metrics
    assert m["val_groups"] > 0 and 0.0 <= m["val_hr@10"] <= 1.0
    # The next item of a walk is a co-visitation neighbour: the model ranks it far above chance.
    assert m["val_auc"] > 0.75, m
    assert m["val_hr@10"] >= m["blend_val_hr@10"] - 0.05, m


def test_checkpoint_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ex = build_examples(walk_log(), None, events=400, val_share=0.25, negatives=5, seed=0)
    result = train_ranker(ex, TrainConfig(epochs=1, rank=4, hidden=(8,)))
    path = tmp_path / "r.pt"
    save_checkpoint(path, result, ex, TrainConfig(epochs=1))
    model, ckpt = load_checkpoint(path)
    assert ckpt["training"]["fingerprint"] == ex.info["fingerprint"]
    sample = {k: v for k, v in ckpt["sample"].items()}
    with torch.no_grad():
        again = model(sample["user_vectors"], sample["user_index"], sample["item_vectors"], sample["item_rows"],
                      sample["dense"])
        before = result.model(sample["user_vectors"], sample["user_index"], sample["item_vectors"],
                              sample["item_rows"], sample["dense"])
    assert torch.equal(again, before)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a streamrec ranker checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_ranking_metrics_count_misses_and_break_ties_against_the_positive() -> None:
    from export.examples import GroupSet

    z = np.zeros(4, np.float32)
    groups = GroupSet(np.zeros((2, 3, 2), np.float32), np.array([0, 2, 4]), np.array([5, 1, 7, 9]),
                      np.zeros((4, 1), np.float32), np.array([1, 0, 1, 0], np.float32), z, z, misses=2)
    # Group 0: positive ties with a negative of a lower row -> the negative goes first.
    # Group 1: positive wins.
    m = ranking_metrics(np.array([1.0, 1.0, 2.0, 0.0], np.float32), groups, k=1)
    assert m == {"hr": 0.25, "auc": 0.75, "groups": 2, "events": 4}
