"""``streamrec evaluate``: read a dataset, run the prequential protocol, print and write the figures."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from export.datasets import Dataset
from export.prequential import READERS, baselines, evaluate
from export.quality_report import best_baseline, markdown_table, write_report
from models.baselines import Baseline
from models.item_embedding import ItemEmbedder
from models.ranking import Scorer
from streams.settings import Settings

if TYPE_CHECKING:
    from export.bundle import Bundle

#: Name of the product ranked by a learned ranker in the figures.
RANKER_NAME = "product+ranker"
#: Dimension of the zero item vectors of a log without item texts (ProductRecommender.for_dataset's default).
ZERO_DIM = 8


class EvaluationError(RuntimeError):
    """The evaluation could not run; the message says why and what to do."""


def load_dataset(path: Path, fmt: str, limit: int | None = None) -> Dataset:
    """Read ``path`` with the ``fmt`` reader, keeping the first ``limit`` events."""
    try:
        dataset = READERS[fmt](path)
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read {path} as {fmt}: {exc}") from None
    if limit is not None:
        dataset = Dataset(dataset.name, dataset.interactions[:limit], dataset.item_text)
    if not dataset.interactions:
        raise EvaluationError(f"{path} holds no interactions")
    return dataset


def run_evaluate_command(
    settings: Settings,
    path: Path,
    fmt: str,
    *,
    k: int = 10,
    warmup: float = 0.2,
    batch: int = 1,
    through_pipeline: bool = False,
    limit: int | None = None,
    product: bool = True,
    out_dir: Path | None = None,
    json_out: Path | None = None,
    console: Console | None = None,
    model: Path | None = None,
) -> dict[str, Any]:
    """Run one evaluation and report it; returns the result written as JSON.

    With ``model`` (a ranker bundle, or a folder of bundles), the product's candidates
    are also ranked by that learned ranker at every refresh, reported as ``product+ranker``;
    ``through_pipeline`` then runs the worker with that bundle, so ``pipeline`` is the
    deployed ranker, compared with ``product+ranker``.
    """
    from streams.pipeline import slate_settings

    console = console or Console()
    dataset = load_dataset(path, fmt, limit)
    embedder = None
    if product and dataset.item_text:
        from streams.model_loading import load_embedder

        with console.status("loading the encoders..."):
            embedder = load_embedder(settings)
    rankers: dict[str, Scorer] = {}
    ranker_info: dict[str, Any] | None = None
    bundle: Bundle | None = None
    if model is not None:
        scorer, ranker_info, bundle = _load_ranker(settings, model, dataset, embedder, warmup)
        rankers[RANKER_NAME] = scorer
        console.print(ranker_info["note"])
        console.print(f"ranker {ranker_info['version']} on {ranker_info['provider']}: {ranker_info['reference_check']}")
    started = time.time()
    with ExitStack() as stack:
        extra: list[Baseline] = []
        pipeline = None
        if through_pipeline:
            from streams.pipeline_eval import PipelineEvalError, running_pipeline

            try:
                with console.status("starting a worker and publishing the dataset's catalog..."):
                    pipeline = stack.enter_context(running_pipeline(settings, dataset, k, batch, bundle=bundle))
                    extra.append(pipeline)
            except PipelineEvalError as exc:
                raise EvaluationError(f"the pipeline could not start: {exc}") from None
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"{dataset.name}: replaying", total=len(dataset.interactions))
            try:
                figures = evaluate(
                    dataset, embedder, k=k, warmup=warmup, product=product, batch=batch, extra=extra,
                    rankers=rankers, slate=slate_settings(settings, k), bandit_policy=settings.bandit_policy,
                    feedback=not through_pipeline,  # the worker gets no impressions: neither does the product then
                    progress=lambda done, total: bar.update(task, completed=done),
                )
            except RuntimeError as exc:  # PipelineEvalError included
                raise EvaluationError(f"the evaluation stopped: {exc}") from None
        pipeline_versions = pipeline.model_versions() if pipeline is not None else None
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "path": str(path),
        "events": len(dataset.interactions),
        "users": dataset.n_users,
        "items": dataset.n_items,
        "k": k,
        "warmup": warmup,
        "batch": batch,
        "through_pipeline": through_pipeline,
        "wall_seconds": round(time.time() - started, 1),
        "figures": figures,
    }
    if product:
        name, hr = best_baseline(figures, tuple(b.name for b in baselines()))
        result["best_baseline"] = name
        result["product_vs_best_baseline"] = round(float(figures["product"]["hr"]) / hr, 3) if hr else None
    if ranker_info is not None:
        result["ranker"] = ranker_info
        blend_hr = float(figures["product"]["hr"])
        result["ranker_minus_blend_hr"] = round(float(figures[RANKER_NAME]["hr"]) - blend_hr, 6)
    if through_pipeline:
        result["pipeline_minus_product_hr"] = round(float(figures["pipeline"]["hr"]) - float(figures["product"]["hr"]), 6)
        result["pipeline_model_versions"] = pipeline_versions
        if ranker_info is not None:
            result["pipeline_minus_ranker_hr"] = round(
                float(figures["pipeline"]["hr"]) - float(figures[RANKER_NAME]["hr"]), 6
            )
    _print(console, result)
    if out_dir is not None:
        try:
            json_path, png = write_report(result, out_dir, dataset.name)
        except ImportError as exc:
            raise EvaluationError(f"--out needs matplotlib ({exc}): pip install -e '.[bench]'") from None
        console.print(f"wrote {json_path} and {png}")
    if json_out is not None:
        import json

        json_out.write_text(json.dumps(result, indent=2))
    return result


def _load_ranker(
    settings: Settings, model: Path, dataset: Dataset, embedder: ItemEmbedder | None, warmup: float
) -> tuple[Scorer, dict[str, Any], Bundle]:
    """The bundle's ranker on onnxruntime, what it was trained on against this run's warm-up, and the bundle."""
    from export.bundle import resolve_bundle
    from export.examples import fingerprint_events
    from models.onnx_ranker import OnnxRanker
    from models.ranker_features import DENSE_FEATURES
    from streams.model_loading import check_reference

    try:
        bundle = resolve_bundle(model)
        dim = embedder.dim if embedder is not None else ZERO_DIM
        bundle.check_fits(dim, embedder.version if embedder is not None else None, DENSE_FEATURES)
        scorer = OnnxRanker(bundle.model_path, bundle.version, settings.providers,
                            intra_op_threads=settings.ranker_threads or None)
        checked = check_reference(bundle, scorer)
    except Exception as exc:  # BundleError, OSError, ValueError, and onnxruntime's own errors (not RuntimeErrors)
        raise EvaluationError(f"cannot use the ranker in {model}: {exc}") from None
    training = bundle.meta.get("training", {})
    used = int(training.get("events_used", 0))
    n_warm = int(warmup * len(dataset.interactions))
    same_data = used and used <= len(dataset.interactions) and \
        fingerprint_events(dataset, used) == training.get("fingerprint")
    if same_data and used <= n_warm:
        note = (f"ranker {bundle.version} was trained on events 1-{used} of this log; scoring starts after "
                f"the {n_warm}-event warm-up, so no scored event was seen in training")
    elif same_data:
        note = (f"WARNING: ranker {bundle.version} was trained on events 1-{used} of this log, beyond the "
                f"{n_warm}-event warm-up: {used - n_warm} scored events were training data")
    else:
        note = f"ranker {bundle.version} was trained on other data ({training.get('dataset', 'unknown')})"
    info = {"version": bundle.version, "precision": bundle.precision, "path": str(bundle.path),
            "provider": scorer.provider, "reference_check": checked,
            "trained_events": used, "warmup_events": n_warm, "same_log": bool(same_data),
            "overlaps_scored_events": bool(same_data and used > n_warm), "note": note,
            "training_metrics": bundle.meta.get("metrics", {})}
    return scorer, info, bundle


def _print(console: Console, result: dict[str, Any]) -> None:
    k = result["k"]
    table = Table(title=f"{result['dataset']}: prequential top-{k}, {result['warmup']:.0%} warm-up, batch {result['batch']}")
    for col in ("recommender", f"HR@{k}", f"MRR@{k}", f"NDCG@{k}", "scored", "seconds"):
        table.add_column(col)
    for name, f in result["figures"].items():
        table.add_row(name, f"{f['hr']:.4f}", f"{f['mrr']:.4f}", f"{f['ndcg']:.4f}", str(f["n"]), f"{f['seconds']:.1f}")
    console.print(table)
    first = next(iter(result["figures"].values()))
    console.print(f"{first['repeats']} events re-visit an item the user already had (learned, not scored)")
    if "product_vs_best_baseline" in result:
        console.print(f"product / best baseline ({result['best_baseline']}) HR: {result['product_vs_best_baseline']}")
    if "ranker_minus_blend_hr" in result:
        console.print(f"learned ranker minus blend, HR: {result['ranker_minus_blend_hr']:+.4f} "
                      f"(ranker {result['ranker']['version']}, {result['ranker']['precision']}, "
                      f"on {result['ranker']['provider']})")
    if "pipeline_minus_product_hr" in result:
        console.print(f"through the pipeline minus in process, HR: {result['pipeline_minus_product_hr']:+.4f}")
        versions = ", ".join(f"{v or 'none'}: {n}" for v, n in (result["pipeline_model_versions"] or {}).items())
        console.print(f"lists the worker published, by model_version: {versions}")
    if "pipeline_minus_ranker_hr" in result:
        console.print(f"through the pipeline (worker on the bundle) minus in-process ranker, HR: "
                      f"{result['pipeline_minus_ranker_hr']:+.4f}")
    console.print(markdown_table(result["figures"], k), markup=False, highlight=False)
    coverage = ", ".join(f"{name} {f['coverage']:.3f}" for name, f in result["figures"].items() if "coverage" in f)
    console.print(f"catalog coverage (share of items ever in a scored list): {coverage}")
