"""``streamrec evaluate --through-pipeline``: a real worker's published lists, scored in the same
pass as the in-process product, agree with it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from export.datasets import read_jsonl
from streams.evaluate_command import run_evaluate_command
from streams.settings import Settings

TOPICS = {
    "audio": ["wireless earbuds", "bluetooth headphones", "portable speaker", "studio monitor headphones"],
    "shoes": ["trail running shoes", "leather hiking boots", "canvas sneakers", "road running shoes"],
    "kitchen": ["cast iron skillet", "chef knife", "espresso machine", "nonstick frying pan"],
}


def write_log(path: Path, n_users: int = 24, seed: int = 3) -> Path:
    """Catalog lines, then users who each browse one topic's items in a fixed order, interleaved."""
    rng = random.Random(seed)
    lines = [
        {"item_id": f"{topic}-{i}", "title": title}
        for topic, titles in TOPICS.items()
        for i, title in enumerate(titles)
    ]
    sessions = []
    for u in range(n_users):
        topic = list(TOPICS)[u % len(TOPICS)]
        order = list(range(len(TOPICS[topic])))
        rng.shuffle(order)
        sessions.append([(f"u{u}", f"{topic}-{i}") for i in order])
    ts = 1_600_000_000.0
    while any(sessions):
        for s in sessions:
            if s:
                user, item = s.pop(0)
                ts += 1.0
                lines.append({"user_id": user, "item_id": item, "kind": "click", "ts": ts})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_through_the_pipeline_agrees_with_in_process(settings: Settings, tmp_path: Path) -> None:
    log = write_log(tmp_path / "shop.jsonl")
    n_events = len(read_jsonl(log).interactions)
    result = run_evaluate_command(
        settings, log, "jsonl", k=3, warmup=0.25, batch=8, through_pipeline=True, out_dir=tmp_path / "out"
    )
    product, pipeline = result["figures"]["product"], result["figures"]["pipeline"]
    assert product["n"] == pipeline["n"] == result["figures"]["popularity"]["n"] > 0.5 * n_events
    # Same events, same micro-batches, same code: the lists a shop reads from the topic score
    # like the in-process ones (a tie or an item-stats update landing late may flip one event).
    # Figures are rounded to 6 decimals, so compare counts of hits, not rates.
    hits = {name: round(fig["hr"] * fig["n"]) for name, fig in (("product", product), ("pipeline", pipeline))}
    assert abs(hits["pipeline"] - hits["product"]) <= 1
    assert pipeline["hr"] > 0.3  # topic-loyal users: the product must find the rest of the topic
    assert result["pipeline_minus_product_hr"] == round(pipeline["hr"] - product["hr"], 6)
    saved = json.loads((tmp_path / "out" / "shop.json").read_text())
    assert saved["figures"]["pipeline"]["n"] == pipeline["n"]
    assert (tmp_path / "out" / "shop.png").stat().st_size > 1000


def test_through_the_pipeline_with_a_bundle_runs_the_worker_on_that_bundle(settings: Settings, tmp_path: Path) -> None:
    from export.bundle import newest_bundle
    from tests.export.ranker_logs import tiny_bundle

    log = write_log(tmp_path / "shop.jsonl", n_users=12)
    bundles = tmp_path / "bundles"
    # An older and a newer bundle in the folder: --model names the older one explicitly,
    # so the worker must rank with exactly that one, not the newest it could find.
    dim = 384 + settings.image_embedding_dim  # MiniLM text + image projection
    chosen, _ = tiny_bundle(bundles, dim=dim, text_dim=384, seed=1, created_at=1_767_000_000.0)
    newer, _ = tiny_bundle(bundles, dim=dim, text_dim=384, seed=2, created_at=1_767_000_100.0)
    assert newest_bundle(bundles).version == newer.version != chosen.version  # type: ignore[union-attr]
    result = run_evaluate_command(
        settings, log, "jsonl", k=3, warmup=0.25, batch=8, through_pipeline=True, model=chosen.path
    )
    figures = result["figures"]
    ranker, pipeline = figures["product+ranker"], figures["pipeline"]
    assert ranker["n"] == pipeline["n"] > 0
    # Every list the worker published during the evaluation carries the bundle's version.
    versions = result["pipeline_model_versions"]
    assert set(versions) == {chosen.version} and versions[chosen.version] >= pipeline["n"]
    assert result["ranker"]["version"] == chosen.version
    # The worker ranks with the same model, on the same item vectors and the same micro-batches,
    # as the in-process ranker: their hits agree (a tie broken by a different item row may flip
    # one event). A tiny untrained bundle scores every pair alike, so any difference in the
    # features (item texts embedded differently, a batch split in two) shows here.
    hits = {name: round(fig["hr"] * fig["n"]) for name, fig in (("ranker", ranker), ("pipeline", pipeline))}
    assert abs(hits["pipeline"] - hits["ranker"]) <= 1, (hits, figures)
    assert result["pipeline_minus_ranker_hr"] == round(pipeline["hr"] - ranker["hr"], 6)


def test_a_bundle_the_worker_refuses_stops_the_run_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    from streams.evaluate_command import ZERO_DIM, EvaluationError
    from tests.export.ranker_logs import tiny_bundle

    # No item texts: in process the items get ZERO_DIM-d zero vectors, so a bundle of that
    # size fits there; the worker embeds every item (MiniLM + image), so it refuses it.
    lines = [json.loads(x) for x in write_log(tmp_path / "full.jsonl", n_users=6).read_text().splitlines()]
    log = tmp_path / "no-text.jsonl"
    log.write_text("\n".join(json.dumps(x) for x in lines if "user_id" in x) + "\n")
    bundle, _ = tiny_bundle(tmp_path / "bundles", dim=ZERO_DIM, text_dim=6)
    with pytest.raises(EvaluationError, match=f"(?s)not the bundle {bundle.version}.*expects {ZERO_DIM}-d item vectors"):
        run_evaluate_command(settings, log, "jsonl", k=3, warmup=0.25, batch=8, through_pipeline=True,
                             model=bundle.path)
