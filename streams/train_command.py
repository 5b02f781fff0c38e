"""``streamrec train`` and ``streamrec export``: the learned ranker from an event log to a bundle."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from streams.evaluate_command import EvaluationError, load_dataset
from streams.settings import Settings


class TrainError(RuntimeError):
    """Training or export could not run; the message says why and what to do."""


def _columns() -> tuple[Any, ...]:
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def run_train_command(
    settings: Settings,
    path: Path,
    fmt: str,
    *,
    out: Path,
    share: float = 0.2,
    events: int | None = None,
    val_share: float = 0.1,
    negatives: int = 50,
    epochs: int = 8,
    batch_groups: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    threads: int = 1,
    export_to: Path | None = None,
    precision: str = "float32",
    rank: int | None = None,
    hidden: tuple[int, ...] | None = None,
    cross_layers: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Build examples from the first events of a log, train, save a checkpoint (and export a bundle)."""
    from export.examples import build_examples
    from export.training import TrainConfig, save_checkpoint, train_ranker

    console = console or Console()
    try:
        dataset = load_dataset(path, fmt)
    except EvaluationError as exc:
        raise TrainError(str(exc)) from None
    n = events if events is not None else int(share * len(dataset.interactions))
    if not 2 <= n <= len(dataset.interactions):
        raise TrainError(f"training needs between 2 and {len(dataset.interactions)} events of {path}, got {n} "
                         "(set --share or --events)")
    embedder = None
    if dataset.item_text:
        from streams.model_loading import load_embedder

        with console.status("loading the encoders..."):
            embedder = load_embedder(settings)
    config = TrainConfig(epochs=epochs, batch_groups=batch_groups, lr=lr, seed=seed, threads=threads)
    config = replace(config, rank=config.rank if rank is None else rank,
                     hidden=config.hidden if hidden is None else hidden,
                     cross_layers=config.cross_layers if cross_layers is None else cross_layers)
    with Progress(*_columns(), console=console) as bar:
        task = bar.add_task(f"{dataset.name}: replaying {n} events", total=n)
        try:
            examples = build_examples(dataset, embedder, events=n, val_share=val_share, negatives=negatives,
                                      seed=seed, progress=lambda done, total: bar.update(task, completed=done))
        except ValueError as exc:
            raise TrainError(f"cannot build training examples: {exc}") from None
        fit = bar.add_task("training", total=1)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(fit, description=f"training, {stage}", completed=done, total=total)

        try:
            result = train_ranker(examples, config, progress)
        except ValueError as exc:
            raise TrainError(str(exc)) from None
    save_checkpoint(out, result, examples, config)
    summary: dict[str, Any] = {"checkpoint": str(out), "training": examples.info, "metrics": result.metrics,
                               "history": result.history}
    _print_training(console, summary)
    console.print(f"wrote {out}")
    if export_to is not None:
        summary["bundle"] = run_export_command(out, export_to, precision=precision, console=console)
    return summary


def run_export_command(checkpoint: Path, bundles_root: Path, tolerance: float | None = None,
                       precision: str = "float32", console: Console | None = None) -> dict[str, Any]:
    """Export a checkpoint to a new bundle, validated against PyTorch; returns the bundle's summary."""
    from export.ranker_export import TOP_K, ParityError, export_bundle

    console = console or Console()
    try:
        with console.status(f"exporting to ONNX ({precision}) and checking it against PyTorch..."):
            bundle, report = export_bundle(checkpoint, bundles_root, tolerance, precision=precision)
    except (ParityError, ValueError, FileNotFoundError) as exc:
        raise TrainError(str(exc)) from None
    kept = "" if report.top_k_agreement is None else \
        f"; each user's top {TOP_K} on the real pairs kept {report.top_k_agreement:.1%}"
    held_out = bundle.meta.get("parity", {}).get("int8_held_out")
    if held_out:
        kept += (f"; a copy calibrated without {held_out['users']} of the real users kept "
                 f"{held_out[f'top{TOP_K}_agreement']:.1%} of their top {TOP_K}")
    console.print(
        f"bundle {bundle.version} ({precision}) written to {bundle.path}\n"
        f"onnxruntime vs PyTorch: max |diff| {report.max_abs_diff:.2e} over {report.n_checked} pairs "
        f"(tolerance {report.tolerance:.0e}){kept}"
    )
    return {"version": bundle.version, "path": str(bundle.path), "precision": precision,
            "max_abs_diff": report.max_abs_diff, "tolerance": report.tolerance, "pairs_checked": report.n_checked,
            f"top{TOP_K}_agreement": report.top_k_agreement}


def _print_training(console: Console, summary: dict[str, Any]) -> None:
    info, m = summary["training"], summary["metrics"]
    console.print(
        f"{info['dataset']}: trained on events 1-{info['events_used']} of {info['events_total']} "
        f"(validation from event {info['val_start_event'] + 1}); {info['train_groups']} training groups, "
        f"{info['train_misses']} events whose item was not among the candidates"
    )
    table = Table(title="validation (every served candidate ranked)")
    for col in ("epoch", "loss", "HR@10", "AUC"):
        table.add_column(col)
    for row in summary["history"]:
        table.add_row(str(row["epoch"]), f"{row['loss']:.4f}", f"{row['val_hr']:.4f}", f"{row['val_auc']:.4f}")
    console.print(table)
    console.print(json.dumps({k: v for k, v in m.items()}, indent=None))
