"""Does a pair's int8 score depend on the other pairs in its call? Another commit's int8
export against this checkout's, on one trained checkpoint, in one process.

    .venv/bin/python benchmarks/scoring/int8_batch_coupling.py f6198c6 ml.pt benchmarks/ranker-int8/batch-coupling.json

Exports the checkpoint with ``export/ranker_export.py`` (and its ``export/quantize.py``)
as it was at the given revision and as it is now, each to its int8 form, and for each:

* ``real``: the checkpoint's real validation pairs in one call, against PyTorch (largest
  difference of a logit, share of each user's top 10 kept);
* ``alone_vs_batch``: every user of a call scored alone, against the same pairs scored in
  the whole call (largest difference, and how many users' top 10 changed), on the real
  pairs and on a micro-batch shaped like serving (16 users, 4,096 candidates, 10,000
  items: ``streamrec bench scoring``'s inputs);
* ``one_outlier``: that micro-batch again with every dense feature of its first pair
  multiplied by 50 (a bad price, say): how far the *other* pairs' scores move;
* the median µs of a call at 1,024 candidates, both int8 graphs and the float one, on 1
  thread, interleaved in 5 rounds.
"""

from __future__ import annotations

import inspect
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from revision import export_at  # benchmarks/scoring/revision.py, beside this script

from export import ranker_export as current
from export.training import load_checkpoint
from models.onnx_session import CPU_PROVIDER, create_session
from models.ranker_features import INPUT_NAMES, ITEM_OUTPUT_NAME, OUTPUT_NAME
from streams.bench.scoring import interleaved_times

Feeds = dict[str, np.ndarray]


def _top10_changes(user_index: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
    changed = 0
    for user in np.unique(user_index):
        rows = np.flatnonzero(user_index == user)
        if rows.size > 10:
            changed += set(rows[np.argsort(-a[rows])[:10]]) != set(rows[np.argsort(-b[rows])[:10]])
    return changed


def main(revision: str, checkpoint: Path, out: Path) -> None:
    torch.set_num_threads(1)
    model, ckpt = load_checkpoint(checkpoint)
    sample = {k: v.numpy() for k, v in ckpt["sample"].items()}
    serving = current.random_inputs(model, pairs=4096, users=16, items=10_000, seed=1)
    timed = current.random_inputs(model, pairs=1024, users=4, items=10_000, seed=1024)
    report: dict[str, Any] = {"revision_before": revision, "checkpoint": checkpoint.name}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        float_path = tmp / "float" / "ranker.onnx"
        float_path.parent.mkdir()
        current.export_onnx(model, float_path)
        items = create_session(current.item_model_path(float_path), [CPU_PROVIDER], intra_op_threads=1)
        sessions = {"float": create_session(float_path, [CPU_PROVIDER], intra_op_threads=1)}
        for label, module in (("before", export_at(revision, tmp)), ("after", current)):
            path = tmp / label / "ranker.onnx"
            path.parent.mkdir()
            module.export_onnx(model, path)
            if "sample" in inspect.signature(module.quantize_pair_scorer).parameters:
                module.quantize_pair_scorer(model, path, sample)
            else:
                module.quantize_pair_scorer(model, path)
            sessions[f"int8 {label}"] = create_session(path, [CPU_PROVIDER], intra_op_threads=1)

    def pair_feeds(feeds: Feeds, rows: np.ndarray | None = None) -> Feeds:
        (features,) = items.run([ITEM_OUTPUT_NAME], {"item_vectors": feeds["item_vectors"]})
        out = {"user_vectors": feeds["user_vectors"], "item_features": features}
        for k in ("user_index", "item_rows", "dense"):
            out[k] = feeds[k] if rows is None else feeds[k][rows]
        return out

    def alone_vs_batch(session: Any, feeds: Feeds) -> dict[str, float | int]:
        batch = session.run([OUTPUT_NAME], pair_feeds(feeds))[0]
        alone = np.empty_like(batch)
        for user in np.unique(feeds["user_index"]):
            rows = np.flatnonzero(feeds["user_index"] == user)
            alone[rows] = session.run([OUTPUT_NAME], pair_feeds(feeds, rows))[0]
        return {"max_abs_diff": float(np.abs(alone - batch).max()),
                "users_whose_top10_changed": _top10_changes(feeds["user_index"], alone, batch),
                "users": int(np.unique(feeds["user_index"]).size)}

    with torch.no_grad():
        want = model(*(torch.from_numpy(sample[n]) for n in INPUT_NAMES)).numpy()
    for label in ("int8 before", "int8 after"):
        session = sessions[label]
        got = session.run([OUTPUT_NAME], pair_feeds(sample))[0]
        batch = session.run([OUTPUT_NAME], pair_feeds(serving))[0]
        outlying = {**serving, "dense": serving["dense"].copy()}
        outlying["dense"][0] *= 50.0
        moved = session.run([OUTPUT_NAME], pair_feeds(outlying))[0]
        report[label] = {
            "real": {"pairs": int(want.size), "max_abs_diff_vs_pytorch": float(np.abs(got - want).max()),
                     "top10_agreement": current.top_k_agreement(sample["user_index"], want, got, 10)},
            "alone_vs_batch": {"real": alone_vs_batch(session, sample),
                               "serving_batch": alone_vs_batch(session, serving)},
            "one_outlier": {"others_max_abs_change": float(np.abs(moved[1:] - batch[1:]).max()),
                            "users_whose_top10_changed": _top10_changes(serving["user_index"][1:], moved[1:],
                                                                        batch[1:])},
        }
    feeds = pair_feeds(timed)
    engines = {name: (lambda s=s: s.run([OUTPUT_NAME], feeds)) for name, s in sessions.items()}
    times = interleaved_times(engines, rounds=5, seconds=0.5)
    report["median_us_at_1024"] = {k: round(statistics.median(v) * 1e6, 1) for k, v in times.items()}
    text = json.dumps(report, indent=1)
    print(text)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
