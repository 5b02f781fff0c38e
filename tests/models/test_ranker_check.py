"""A bundle's reference scores, reproduced by the served graphs (or not)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.onnx_ranker import OnnxRanker
from models.ranker_check import (
    SERVING_MIN_TOP_K_AGREEMENT,
    TOP_K,
    CheckReport,
    Reference,
    check_scores,
    top_k_agreement,
)
from tests.export.ranker_logs import tiny_bundle


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[OnnxRanker, Reference]:
    bundle, _ = tiny_bundle(tmp_path_factory.mktemp("bundles"), dim=24, text_dim=16)
    assert bundle.reference_path is not None
    return OnnxRanker(bundle.model_path, bundle.version), Reference.load(bundle.reference_path)


def test_the_served_graphs_reproduce_their_reference(served: tuple[OnnxRanker, Reference]) -> None:
    ranker, reference = served
    report = check_scores(ranker, reference, tolerance=1e-4)
    assert report.passed and report.pairs == len(reference.inputs) == 512
    assert report.max_abs_diff < 1e-5 and report.top_k_agreement == 1.0
    assert "over 512 reference pairs (tolerance 1.0e-04)" in report.describe()


def test_a_logit_off_by_more_than_the_tolerance_fails_only_where_the_tolerance_applies(
        served: tuple[OnnxRanker, Reference]) -> None:
    ranker, reference = served
    logits = reference.logits.copy()
    worst = int(np.argmin(logits))  # a user's last pair: the ranking stays as it was
    logits[worst] -= 1e-3
    shifted = replace(reference, logits=logits)
    on_cpu = check_scores(ranker, shifted, tolerance=1e-4)
    assert not on_cpu.passed and on_cpu.max_abs_diff == pytest.approx(1e-3, rel=1e-2)
    on_gpu = check_scores(ranker, shifted, tolerance=None)  # a GPU provider: the ranking only
    assert on_gpu.passed and on_gpu.top_k_agreement == 1.0
    assert "not applied on this provider" in on_gpu.describe()


def test_a_reordered_top_10_fails_even_without_a_tolerance(served: tuple[OnnxRanker, Reference]) -> None:
    ranker, reference = served
    reversed_logits = -reference.logits  # every user's list upside down
    report = check_scores(ranker, replace(reference, logits=reversed_logits), tolerance=None)
    assert report.top_k_agreement is not None and report.top_k_agreement < SERVING_MIN_TOP_K_AGREEMENT
    assert not report.passed
    assert f"each user's top {TOP_K} kept" in report.describe()


def test_nan_scores_never_pass() -> None:
    assert not CheckReport(3, float("nan"), None, None, 0.9).passed
    assert not CheckReport(3, float("nan"), 1.0, 1e-4, 0.9).passed


def test_a_reference_round_trips_through_its_file(served: tuple[OnnxRanker, Reference], tmp_path: Path) -> None:
    _, reference = served
    reference.save(tmp_path / "r.npz")
    again = Reference.load(tmp_path / "r.npz")
    assert np.array_equal(again.logits, reference.logits)
    assert np.array_equal(again.item_vectors, reference.item_vectors)
    assert np.array_equal(again.inputs.user_index, reference.inputs.user_index)


def test_an_unreadable_or_inconsistent_reference_is_refused_with_its_name(
        served: tuple[OnnxRanker, Reference], tmp_path: Path) -> None:
    _, reference = served
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"bad\.npz: unreadable reference scores"):
        Reference.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "partial.npz", logits=reference.logits)
    with pytest.raises(ValueError, match=r"partial\.npz: unreadable reference scores: missing arrays user_vectors"):
        Reference.load(tmp_path / "partial.npz")
    with pytest.raises(ValueError, match="disagree on the number of pairs"):
        replace(reference, logits=reference.logits[:-1])


def test_top_k_agreement_counts_users_with_more_than_k_pairs() -> None:
    users = np.array([0, 0, 0, 1, 1, 1, 2])
    want = np.array([3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 5.0])
    assert top_k_agreement(users, want, want, 1) == 1.0
    assert top_k_agreement(users, want, -want, 1) == 0.0
    assert top_k_agreement(users[:1], want[:1], want[:1], 1) is None
