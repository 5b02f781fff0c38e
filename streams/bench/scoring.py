"""``streamrec bench scoring``: candidates scored per second, onnxruntime against PyTorch eager.

For every batch size (candidate pairs per call) the same inputs are scored by the
ranker's ONNX export in onnxruntime and by the PyTorch module it came from, in
eager mode (``torch.inference_mode()``), both with the same number of CPU threads.
Both run the serving design: the item features (:meth:`models.ranker.Ranker.item_features`)
are computed once per catalog version, outside the timed calls, by each engine for
itself (onnxruntime with the bundle's item model, PyTorch with the module), and each
call scores pairs from them (``score_pairs``). The one-graph form, which gathers and
projects each pair's full item vector in every call (``forward``, the bundles before
the split), is measured in the same rounds for both engines as the baseline, and the
item-features pass itself is timed once per engine (its cost per catalog change).

The engines are measured interleaved (rounds alternate the order), so load from
other processes on the machine hits all alike and their ratios stay meaningful when
the absolute figures do not. The int8 columns are the same pair scorer with its dense
layers quantized (``streamrec export --precision int8``, :mod:`export.quantize`): a
different model from the float one eager runs, its parity with PyTorch reported next to
the float graph's. Their baseline is PyTorch's own int8 of the same layers in eager mode
(``torch.ao.quantization.quantize_dynamic``, one weight scale per output channel, as in
the export), measured in the same rounds. It is the nearest PyTorch has, not the same
computation: it quantizes each layer's input over the call's own range, where the export
uses a fixed, calibrated one, and so also pays for finding that range in every call. With
``profile_calls``, onnxruntime's profiler then splits the pair scorer's calls by
operator (:mod:`streams.bench.scoring_profile`). With a CUDA provider available,
onnxruntime is also measured on the GPU through I/O binding, the item features resident
on the device (the serving path); otherwise the report says that the GPU figure was not
measured.

Inputs are random but shaped like serving: unit user and item vectors of the
item space (512-d: 384 text + 128 image, a third of the items without image),
about 256 candidates per user, items drawn from a catalog of ``--items``.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BATCHES: tuple[int, ...] = (1, 8, 64, 256, 1024, 4096, 8192)
CUDA = "CUDAExecutionProvider"
#: What a report says when no GPU could be measured.
NO_GPU = "not measured: no CUDA execution provider on this machine"


@dataclass(frozen=True)
class ScoringBenchConfig:
    """What ``streamrec bench scoring`` measures."""

    batch_sizes: tuple[int, ...] = DEFAULT_BATCHES
    items: int = 10_000
    per_user: int = 256
    rounds: int = 5
    seconds: float = 0.4  # per engine, batch size and round
    threads: int = 1
    checkpoint: Path | None = None
    out: Path = Path("bench-results/scoring")
    seed: int = 0
    profile_calls: int = 0  # onnxruntime-profiled calls per batch size (0: no profile)
    shape: dict[str, Any] = field(default_factory=dict)  # rank / hidden / cross_layers of the untrained ranker


def parse_batches(text: str, what: str = "batch sizes") -> tuple[int, ...]:
    """``"1,8,1024"`` -> (1, 8, 1024); each between 1 and 1,000,000 (``what``: their name in errors).

    >>> parse_batches("1, 1024,8192")
    (1, 1024, 8192)
    """
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not sizes or any(not 1 <= s <= 1_000_000 for s in sizes):
        raise ValueError(f"{what} must be between 1 and 1,000,000, got {text!r}")
    return sizes


def time_calls(fn: Callable[[], object], seconds: float) -> list[float]:
    """Per-call wall times of ``fn`` repeated for about ``seconds`` (at least 3 calls)."""
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def interleaved_times(engines: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, list[float]]:
    """Per engine, its call times over ``rounds`` rounds in which the engines take turns, the
    order alternating, so that load from other processes hits them all alike."""
    times: dict[str, list[float]] = {name: [] for name in engines}
    names = list(engines)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name] += time_calls(engines[name], seconds)
    return times


def eager_int8(model: Any) -> Any:
    """A copy of ``model`` with PyTorch's dynamic int8 in the layers ``--precision int8``
    quantizes (the cross and hidden layers; the one-logit layer and the projections stay float)."""
    import copy

    import torch

    linears = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)
               and name.split(".")[0] in ("cross", "mlp")]
    layers = linears[:-1]  # the last is the MLP's one-logit layer
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(),
                                                      dict.fromkeys(layers, qconfig), dtype=torch.qint8)


def run_scoring_bench(config: ScoringBenchConfig, log: Callable[[str], None] = print,
                      command: str = "streamrec bench scoring") -> dict[str, Any]:
    """Measure and write ``scoring.json``, ``scoring.md`` and ``scoring.png`` under ``config.out``."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from export.ranker_export import (
        INT8_TOLERANCE,
        export_one_graph_onnx,
        export_onnx,
        item_model_path,
        quantize_pair_scorer,
        random_inputs,
        validate_parity,
    )
    from export.training import load_checkpoint
    from models.onnx_ranker import OnnxRanker
    from models.onnx_session import CPU_PROVIDER, create_session
    from models.ranker import Ranker
    from models.ranker_features import (
        INPUT_NAMES,
        ITEM_OUTPUT_NAME,
        OUTPUT_NAME,
        RankerInputs,
    )
    from streams.bench.machine import load_average, machine_facts, source_revision
    from streams.bench.scoring_profile import matrix_flops, profile_calls, profile_row

    torch.manual_seed(config.seed)
    if config.checkpoint is not None:
        model, _ = load_checkpoint(config.checkpoint)
        model_desc = f"checkpoint {config.checkpoint}"
    else:
        model = Ranker(dim=512, text_dim=384, **config.shape).eval()
        c = model.config
        model_desc = (f"untrained ranker of {'the default shape' if not config.shape else 'shape'} rank {c.rank}, "
                      f"hidden {','.join(map(str, c.hidden))}, {c.cross_layers} cross layer(s) "
                      "(512-d items, 384 text + 128 image)")
    config.out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="streamrec-bench-") as tmp:
            onnx_path, whole_path = Path(tmp) / "ranker.onnx", Path(tmp) / "one-graph.onnx"
            export_onnx(model, onnx_path)
            parity = validate_parity(model, onnx_path)
            export_one_graph_onnx(model, whole_path)
            int8_path = Path(tmp) / "int8" / "ranker.onnx"  # the same export, its pair scorer quantized
            int8_path.parent.mkdir()
            for path in (onnx_path, item_model_path(onnx_path)):
                shutil.copy(path, int8_path.parent / path.name)
            quantize_pair_scorer(model, int8_path)
            int8_parity = validate_parity(model, int8_path, tolerance=INT8_TOLERANCE)
            model_int8 = eager_int8(model)
            cpu = create_session(onnx_path, [CPU_PROVIDER], intra_op_threads=config.threads)
            cpu_int8 = create_session(int8_path, [CPU_PROVIDER], intra_op_threads=config.threads)
            cpu_items = create_session(item_model_path(onnx_path), [CPU_PROVIDER], intra_op_threads=config.threads)
            cpu_whole = create_session(whole_path, [CPU_PROVIDER], intra_op_threads=config.threads)
            gpu = OnnxRanker(onnx_path, "bench", [CUDA], io_binding=True) \
                if CUDA in ort.get_available_providers() else None
            if gpu is not None and gpu.provider != CUDA:
                gpu = None
            pair_layers = [(x.in_features, x.out_features) for x in [*model.cross, *model.mlp]
                           if isinstance(x, torch.nn.Linear)]
            user_layers = [(model.text_dim, model.config.rank)] * 3 + \
                ([(model.image_dim, model.config.rank)] * 2 if model.image_proj is not None else [])
            catalog = random_inputs(model, pairs=1, items=config.items, seed=config.seed)["item_vectors"]
            catalog_t = torch.from_numpy(catalog)

            def ort_item_pass() -> Any:
                return cpu_items.run([ITEM_OUTPUT_NAME], {"item_vectors": catalog})[0]

            def eager_item_pass() -> torch.Tensor:
                with torch.inference_mode():
                    return model.item_features(catalog_t)

            ort_features, eager_features = ort_item_pass(), eager_item_pass()
            item_pass = {"items": config.items,
                         "onnxruntime_ms": round(statistics.median(time_calls(ort_item_pass, 1.0)) * 1e3, 3),
                         "eager_ms": round(statistics.median(time_calls(eager_item_pass, 1.0)) * 1e3, 3)}
            log(f"item features of {config.items:,} items (once per catalog change): "
                f"onnxruntime {item_pass['onnxruntime_ms']:.2f} ms, eager {item_pass['eager_ms']:.2f} ms")
            int8_diffs = {"onnxruntime-cpu-int8": 0.0, "pytorch-eager-cpu-int8": 0.0}
            for n in config.batch_sizes:
                users = max(1, math.ceil(n / config.per_user))
                feeds = random_inputs(model, pairs=n, users=users, items=config.items, seed=config.seed + n)
                feeds["item_vectors"] = catalog
                tensors = [catalog_t if name == "item_vectors" else torch.from_numpy(feeds[name])
                           for name in INPUT_NAMES]
                pair_feeds = {**{k: v for k, v in feeds.items() if k != "item_vectors"}, "item_features": ort_features}
                pair_tensors = [eager_features if name == "item_vectors" else t
                                for name, t in zip(INPUT_NAMES, tensors, strict=True)]

                def run_ort(pair_feeds: dict[str, Any] = pair_feeds) -> object:
                    return cpu.run([OUTPUT_NAME], pair_feeds)

                def run_ort_int8(pair_feeds: dict[str, Any] = pair_feeds) -> object:
                    return cpu_int8.run([OUTPUT_NAME], pair_feeds)

                def run_eager(pair_tensors: list[torch.Tensor] = pair_tensors) -> object:
                    with torch.inference_mode():
                        return model.score_pairs(*pair_tensors)

                def run_eager_int8(pair_tensors: list[torch.Tensor] = pair_tensors) -> object:
                    with torch.inference_mode():
                        return model_int8.score_pairs(*pair_tensors)

                def run_ort_whole(feeds: dict[str, Any] = feeds) -> object:
                    return cpu_whole.run([OUTPUT_NAME], feeds)

                def run_eager_whole(tensors: list[torch.Tensor] = tensors) -> object:
                    with torch.inference_mode():
                        return model(*tensors)

                engines: dict[str, Callable[[], object]] = {
                    "onnxruntime-cpu": run_ort, "pytorch-eager-cpu": run_eager, "onnxruntime-cpu-int8": run_ort_int8,
                    "pytorch-eager-cpu-int8": run_eager_int8,
                    "onnxruntime-cpu-one-graph": run_ort_whole, "pytorch-eager-cpu-one-graph": run_eager_whole,
                }
                if gpu is not None:
                    inputs = RankerInputs(feeds["user_vectors"], feeds["user_index"], feeds["item_rows"], feeds["dense"])

                    def run_gpu(inputs: RankerInputs = inputs) -> object:
                        return gpu.run(inputs, catalog, key=(0, 0, config.items))

                    engines["onnxruntime-cuda-iobinding"] = run_gpu
                for fn in engines.values():
                    fn()  # warm-up (allocations, kernel selection)
                with torch.inference_mode():
                    want = model.score_pairs(*pair_tensors).numpy()
                    got = {"onnxruntime-cpu-int8": cpu_int8.run([OUTPUT_NAME], pair_feeds)[0],
                           "pytorch-eager-cpu-int8": model_int8.score_pairs(*pair_tensors).numpy()}
                for key, logits in got.items():
                    int8_diffs[key] = max(int8_diffs[key], float(np.max(np.abs(logits - want))))
                times = interleaved_times(engines, config.rounds, config.seconds)
                row: dict[str, Any] = {"batch": n, "users": users}
                for name, ts in times.items():
                    median = statistics.median(ts)
                    row[name] = {"calls": len(ts), "median_ms": round(median * 1e3, 4),
                                 "candidates_per_s": round(n / median, 1)}
                row["ort_over_eager"] = round(row["pytorch-eager-cpu"]["median_ms"] / row["onnxruntime-cpu"]["median_ms"], 3)
                row["int8_over_eager"] = round(
                    row["pytorch-eager-cpu"]["median_ms"] / row["onnxruntime-cpu-int8"]["median_ms"], 3)
                row["int8_over_eager_int8"] = round(
                    row["pytorch-eager-cpu-int8"]["median_ms"] / row["onnxruntime-cpu-int8"]["median_ms"], 3)
                row["ort_over_eager_one_graph"] = round(
                    row["pytorch-eager-cpu-one-graph"]["median_ms"] / row["onnxruntime-cpu-one-graph"]["median_ms"], 3)
                row["ort_split_over_one_graph"] = round(
                    row["onnxruntime-cpu-one-graph"]["median_ms"] / row["onnxruntime-cpu"]["median_ms"], 3)
                if config.profile_calls:
                    calls, by_op = profile_calls(onnx_path, pair_feeds, OUTPUT_NAME, config.profile_calls,
                                                 config.threads)
                    flops = matrix_flops(pair_layers, n, user_layers, users)
                    row["profile"] = profile_row(by_op, calls, flops, row["onnxruntime-cpu"]["median_ms"],
                                                 row["pytorch-eager-cpu"]["median_ms"])
                rows.append(row)
                gpu_note = (f", GPU {row['onnxruntime-cuda-iobinding']['candidates_per_s']:,.0f}/s" if gpu else "")
                log(f"batch {n:>6}: onnxruntime {row['onnxruntime-cpu']['candidates_per_s']:>12,.0f}/s, "
                    f"eager {row['pytorch-eager-cpu']['candidates_per_s']:>12,.0f}/s, "
                    f"ratio {row['ort_over_eager']:.2f}x (one graph: {row['ort_over_eager_one_graph']:.2f}x, "
                    f"int8: {row['int8_over_eager']:.2f}x, {row['int8_over_eager_int8']:.2f}x eager int8){gpu_note}")
    finally:
        torch.set_num_threads(torch_threads)
    results = {
        "command": command,
        "config": {**asdict(config), "out": str(config.out),
                   "checkpoint": None if config.checkpoint is None else str(config.checkpoint)},
        "model": model_desc,
        "source": source_revision(),
        "parity_max_abs_diff": parity.max_abs_diff,
        "int8_parity_max_abs_diff": int8_parity.max_abs_diff,
        "int8_max_abs_diff_on_bench_inputs": int8_diffs,
        "eager_mode": "torch.inference_mode()",
        "item_features_pass": item_pass,
        "machine": {**machine_facts(), "torch": torch.__version__, "onnxruntime": ort.__version__,
                    "onnxruntime_providers": ort.get_available_providers()},
        "load_average_start": load_before,
        "load_average_end": load_average(),
        "gpu": "measured" if gpu is not None else NO_GPU,
        "rows": rows,
    }
    (config.out / "scoring.json").write_text(json.dumps(results, indent=2))
    (config.out / "scoring.md").write_text(markdown(results))
    try:
        _plot(results, config.out / "scoring.png")
    except ImportError as exc:
        log(f"no plot ({exc}): pip install -e '.[bench]'")
    return results


def markdown(results: dict[str, Any]) -> str:
    """The Markdown table of a scoring run."""
    gpu = any("onnxruntime-cuda-iobinding" in r for r in results["rows"])
    head = ["batch (candidates)", "onnxruntime CPU cand/s", "PyTorch eager CPU cand/s", "ORT ÷ eager",
            "ORT ms/call", "eager ms/call", "ORT int8 cand/s", "int8 ÷ eager", "eager int8 cand/s",
            "ORT int8 ÷ eager int8", "one graph: ORT cand/s",
            "one graph: eager cand/s", "one graph: ORT ÷ eager"]
    if gpu:
        head.append("onnxruntime CUDA (I/O binding) cand/s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in results["rows"]:
        o, e = r["onnxruntime-cpu"], r["pytorch-eager-cpu"]
        cells = [f"{r['batch']:,}", f"{o['candidates_per_s']:,.0f}", f"{e['candidates_per_s']:,.0f}",
                 f"{r['ort_over_eager']:.2f}×", f"{o['median_ms']:.3f}", f"{e['median_ms']:.3f}",
                 f"{r['onnxruntime-cpu-int8']['candidates_per_s']:,.0f}", f"{r['int8_over_eager']:.2f}×",
                 f"{r['pytorch-eager-cpu-int8']['candidates_per_s']:,.0f}", f"{r['int8_over_eager_int8']:.2f}×",
                 f"{r['onnxruntime-cpu-one-graph']['candidates_per_s']:,.0f}",
                 f"{r['pytorch-eager-cpu-one-graph']['candidates_per_s']:,.0f}", f"{r['ort_over_eager_one_graph']:.2f}×"]
        if gpu:
            cells.append(f"{r['onnxruntime-cuda-iobinding']['candidates_per_s']:,.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    cfg = results["config"]
    ip = results["item_features_pass"]
    note = (f"{cfg['threads']} CPU thread(s) per engine, {cfg['items']:,} items, ~{cfg['per_user']} candidates "
            f"per user; medians over {cfg['rounds']} interleaved rounds; eager in {results['eager_mode']}. "
            f"Item features precomputed once per catalog version ({ip['items']:,} items: onnxruntime "
            f"{ip['onnxruntime_ms']:.2f} ms, eager {ip['eager_ms']:.2f} ms); the one-graph columns gather and project "
            f"each pair's item vector in every call. int8: the pair scorer's dense layers quantized "
            f"(max |int8 - PyTorch| {results['int8_parity_max_abs_diff']:.2e} on the export's random inputs, "
            f"float {results['parity_max_abs_diff']:.1e}); eager int8: PyTorch's dynamic int8 of the same layers "
            f"(on this run's inputs, max |int8 - PyTorch float|: onnxruntime "
            f"{results['int8_max_abs_diff_on_bench_inputs']['onnxruntime-cpu-int8']:.2e}, eager "
            f"{results['int8_max_abs_diff_on_bench_inputs']['pytorch-eager-cpu-int8']:.2e}). GPU: {results['gpu']}.")
    lines += ["", note]
    if any("profile" in r for r in results["rows"]):
        from streams.bench.scoring_profile import markdown as profile_markdown

        lines += ["", "onnxruntime's pair scorer under its profiler (kernel time per call, by operator type):", "",
                  profile_markdown(results["rows"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def _plot(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("onnxruntime-cpu", "onnxruntime (CPU)"), ("pytorch-eager-cpu", "PyTorch eager (CPU)"),
                       ("onnxruntime-cuda-iobinding", "onnxruntime (CUDA, I/O binding)")):
        pts = [(r["batch"], r[key]["candidates_per_s"]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("candidates per call")
    ax.set_ylabel("candidates scored per second")
    ax.set_title(f"ranker scoring, {results['config']['threads']} thread(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
