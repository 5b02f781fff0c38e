"""``streamrec bench retrieval``: candidate generation per micro-batch, numpy against onnxruntime.

Candidate generation (:func:`models.candidates.generate_candidates`) finds, for every
user of a micro-batch, the catalog items nearest to their interest and to their latest
search. The worker does this one of two ways (``STREAMREC_RETRIEVAL``): three matrix
products over the whole catalog in numpy, or one onnxruntime call
(:class:`models.onnx_retrieval.OnnxRetrieval`) that returns only each user's top rows,
with the item matrix resident on the device when the provider is a GPU.

For every catalog size and number of users per micro-batch, this bench times the whole
``generate_candidates`` call (what a refresh pays, co-visitation and trending included,
both empty here) with each engine, interleaved over rounds that alternate the order, and
checks that every engine found the same candidate pairs. numpy's BLAS and onnxruntime
get the same number of threads. With a CUDA provider available, onnxruntime on the GPU
is measured too; otherwise the report says the GPU figure was not measured.

Inputs: unit item vectors of ``dim`` dimensions, and users with a long-term, a
short-term and a query vector each (random unit vectors), all three sources asked for
``per_source`` items.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from streams.bench.scoring import CUDA, NO_GPU, interleaved_times

DEFAULT_CATALOGS: tuple[int, ...] = (10_000, 100_000)
DEFAULT_USERS: tuple[int, ...] = (1, 8, 64, 512)


@dataclass(frozen=True)
class RetrievalBenchConfig:
    """What ``streamrec bench retrieval`` measures."""

    catalog_sizes: tuple[int, ...] = DEFAULT_CATALOGS
    user_batches: tuple[int, ...] = DEFAULT_USERS
    per_source: int = 100
    dim: int = 512
    rounds: int = 5
    seconds: float = 0.4  # per engine, size and round
    threads: int = 1
    out: Path = Path("bench-results/retrieval")
    seed: int = 0


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build_catalog(items: int, dim: int, seed: int = 0) -> Any:
    """An :class:`~models.item_index.ItemIndex` of ``items`` random unit vectors."""
    from models.item_index import ItemIndex

    index = ItemIndex(dim=dim, capacity=items)
    for i, vector in enumerate(_unit_rows(np.random.default_rng(seed), items, dim)):
        index.upsert(f"i{i}", vector)
    return index


def build_users(n: int, dim: int, seed: int = 0) -> list[Any]:
    """``n`` users with a long-term, a short-term and a query vector (all sources active)."""
    from models.candidates import UserContext

    rng = np.random.default_rng(seed)
    long, short, query = (_unit_rows(rng, n, dim) for _ in range(3))
    return [UserContext(f"u{i}", long[i], short[i], query[i], conf_long=0.7, conf_short=0.3, conf_query=1.0)
            for i in range(n)]


def candidate_pairs(candidates: Any) -> set[tuple[int, int, int]]:
    """The (user, row, source) triples of a :class:`~models.candidates.Candidates`."""
    return set(zip(candidates.user.tolist(), candidates.row.tolist(), candidates.source.tolist(), strict=True))


def run_retrieval_bench(config: RetrievalBenchConfig, log: Callable[[str], None] = print,
                        command: str = "streamrec bench retrieval") -> dict[str, Any]:
    """Measure and write ``retrieval.json`` and ``retrieval.md`` under ``config.out``."""
    import onnxruntime as ort
    from threadpoolctl import threadpool_limits

    from models.candidates import generate_candidates
    from models.covisitation import CoVisitation
    from models.onnx_retrieval import OnnxRetrieval
    from models.onnx_session import CPU_PROVIDER
    from models.trending import Trending
    from streams.bench.machine import load_average, machine_facts, source_revision

    config.out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    covisitation, trending = CoVisitation(), Trending()
    onnx_cpu = OnnxRetrieval([CPU_PROVIDER], intra_op_threads=config.threads)
    gpu = OnnxRetrieval([CUDA]) if CUDA in ort.get_available_providers() else None
    if gpu is not None and gpu.provider != CUDA:
        gpu = None
    engines: dict[str, Any] = {"numpy": None, "onnxruntime-cpu": onnx_cpu}
    if gpu is not None:
        engines["onnxruntime-cuda-iobinding"] = gpu
    rows: list[dict[str, Any]] = []
    with threadpool_limits(limits=config.threads):  # numpy's BLAS: as many threads as onnxruntime
        for items in config.catalog_sizes:
            index = build_catalog(items, config.dim, config.seed)
            for n in config.user_batches:
                users = build_users(n, config.dim, config.seed + n)
                calls: dict[str, Callable[[], object]] = {
                    name: partial(generate_candidates, users, index, covisitation, trending,
                                  per_source=config.per_source, retrieval=retrieval)
                    for name, retrieval in engines.items()}
                found = {name: candidate_pairs(fn()) for name, fn in calls.items()}  # also the warm-up
                times = interleaved_times(calls, config.rounds, config.seconds)
                row: dict[str, Any] = {"items": items, "users": n,
                                       "same_candidates": all(f == found["numpy"] for f in found.values()),
                                       "candidates": len(found["numpy"])}
                for name, ts in times.items():
                    median = statistics.median(ts)
                    row[name] = {"calls": len(ts), "median_ms": round(median * 1e3, 4),
                                 "users_per_s": round(n / median, 1)}
                row["ort_over_numpy"] = round(row["numpy"]["median_ms"] / row["onnxruntime-cpu"]["median_ms"], 3)
                if gpu is not None:
                    row["gpu_over_numpy"] = round(
                        row["numpy"]["median_ms"] / row["onnxruntime-cuda-iobinding"]["median_ms"], 3)
                rows.append(row)
                gpu_note = (f", GPU {row['onnxruntime-cuda-iobinding']['median_ms']:.3f} ms" if gpu else "")
                log(f"{items:>9,} items, {n:>5} users: numpy {row['numpy']['median_ms']:.3f} ms, onnxruntime "
                    f"{row['onnxruntime-cpu']['median_ms']:.3f} ms ({row['ort_over_numpy']:.2f}x){gpu_note}; "
                    f"same candidates: {row['same_candidates']}")
    results = {
        "command": command,
        "config": {**asdict(config), "out": str(config.out)},
        "source": source_revision(),
        "machine": {**machine_facts(), "onnxruntime": ort.__version__, "numpy": np.__version__,
                    "onnxruntime_providers": ort.get_available_providers()},
        "load_average_start": load_before,
        "load_average_end": load_average(),
        "gpu": "measured" if gpu is not None else NO_GPU,
        "rows": rows,
    }
    (config.out / "retrieval.json").write_text(json.dumps(results, indent=2))
    (config.out / "retrieval.md").write_text(markdown(results))
    return results


def markdown(results: dict[str, Any]) -> str:
    """The Markdown table of a retrieval run."""
    rows: Sequence[dict[str, Any]] = results["rows"]
    gpu = any("onnxruntime-cuda-iobinding" in r for r in rows)
    head = ["catalog items", "users per call", "numpy ms/call", "onnxruntime CPU ms/call", "numpy ÷ ORT",
            "numpy users/s", "ORT users/s"]
    if gpu:
        head += ["ORT CUDA (I/O binding) ms/call", "numpy ÷ CUDA"]
    head.append("same candidates")
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in rows:
        cells = [f"{r['items']:,}", f"{r['users']:,}", f"{r['numpy']['median_ms']:.3f}",
                 f"{r['onnxruntime-cpu']['median_ms']:.3f}", f"{r['ort_over_numpy']:.2f}×",
                 f"{r['numpy']['users_per_s']:,.0f}", f"{r['onnxruntime-cpu']['users_per_s']:,.0f}"]
        if gpu:
            cells += [f"{r['onnxruntime-cuda-iobinding']['median_ms']:.3f}", f"{r['gpu_over_numpy']:.2f}×"]
        cells.append("yes" if r["same_candidates"] else "**no**")
        lines.append("| " + " | ".join(cells) + " |")
    cfg = results["config"]
    lines += ["", f"Whole `generate_candidates` calls, {cfg['dim']}-d items, {cfg['per_source']} candidates per "
                  f"source, {cfg['threads']} thread(s) for numpy's BLAS and for onnxruntime; medians over "
                  f"{cfg['rounds']} interleaved rounds. GPU: {results['gpu']}."]
    return "\n".join(lines) + "\n"
