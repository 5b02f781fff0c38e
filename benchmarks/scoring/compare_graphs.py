"""The exported ranker graphs of another commit against this checkout's, in one process.

    .venv/bin/python benchmarks/scoring/compare_graphs.py f88de98 benchmarks/scoring/graphs-before-after.json

Loads ``export/ranker_export.py`` (with its ``export/quantize.py``) as it was at the given
revision next to the current one, exports the same untrained ranker of the default shape
with both (float, then its int8 form), and times each pair scorer on 1 thread over the
item features of its own item model (10,000 items), in 5 rounds that alternate the
order, on the inputs of ``streamrec bench scoring``; eager PyTorch (``score_pairs``)
runs in the same rounds as the reference. Prints and writes each batch size's median
call times in µs.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from revision import export_at  # benchmarks/scoring/revision.py, beside this script

from export import ranker_export as current
from models.onnx_session import CPU_PROVIDER, create_session
from models.ranker import Ranker
from models.ranker_features import ITEM_OUTPUT_NAME, OUTPUT_NAME, PAIR_INPUT_NAMES
from streams.bench.scoring import interleaved_times


def main(revision: str, out: Path, batches: tuple[int, ...] = (1, 64, 256, 1024, 4096)) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Ranker(dim=512, text_dim=384).eval()
    catalog = current.random_inputs(model, pairs=1, items=10_000, seed=0)["item_vectors"]
    sessions: dict[str, Any] = {}
    features: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for label, module in (("before", export_at(revision, tmp)), ("after", current)):
            path = tmp / label / "ranker.onnx"
            path.parent.mkdir()
            module.export_onnx(model, path)
            int8 = tmp / f"{label}-int8" / "ranker.onnx"
            int8.parent.mkdir()
            for p in (path, module.item_model_path(path)):
                shutil.copy(p, int8.parent / p.name)
            module.quantize_pair_scorer(model, int8)
            items = create_session(module.item_model_path(path), [CPU_PROVIDER], intra_op_threads=1)
            features[label] = items.run([ITEM_OUTPUT_NAME], {"item_vectors": catalog})[0]
            sessions[label] = create_session(path, [CPU_PROVIDER], intra_op_threads=1)
            sessions[f"{label} int8"] = create_session(int8, [CPU_PROVIDER], intra_op_threads=1)
    with torch.inference_mode():
        eager_features = model.item_features(torch.from_numpy(catalog))
    rows = []
    for n in batches:
        feeds = current.random_inputs(model, pairs=n, users=max(1, -(-n // 256)), items=10_000, seed=n)
        base = {k: v for k, v in feeds.items() if k != "item_vectors"}
        tensors = [eager_features if k == "item_features" else torch.from_numpy(base[k]) for k in PAIR_INPUT_NAMES]

        def eager(tensors: list[torch.Tensor] = tensors) -> object:
            with torch.inference_mode():
                return model.score_pairs(*tensors)

        engines: dict[str, Any] = {"eager": eager}
        scores = {}
        for name, session in sessions.items():
            pair_feeds = {**base, "item_features": features[name.split()[0]]}
            engines[name] = lambda s=session, f=pair_feeds: s.run([OUTPUT_NAME], f)
            scores[name] = session.run([OUTPUT_NAME], pair_feeds)[0]
        times = interleaved_times(engines, rounds=5, seconds=0.4)
        row = {"batch": n, "revision": revision,
               **{f"{k} µs": round(statistics.median(v) * 1e6, 1) for k, v in times.items()},
               "max |after - before| float": float(np.abs(scores["after"] - scores["before"]).max())}
        print(row, flush=True)
        rows.append(row)
    out.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
