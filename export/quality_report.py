"""Writing a prequential evaluation's figures: JSON, a Markdown table and a PNG plot.

>>> figures = {"popularity": {"hr": 0.1, "mrr": 0.05, "ndcg": 0.06, "n": 10, "repeats": 0, "seconds": 0.1,
...                           "curve": [[5, 0.0], [10, 0.2]]}}
>>> print(markdown_table(figures, k=10))
| recommender | HR@10 | MRR@10 | NDCG@10 | scored | seconds |
|---|---|---|---|---|---|
| popularity | 0.1000 | 0.0500 | 0.0600 | 10 | 0.1 |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Figures = Mapping[str, Mapping[str, Any]]


def markdown_table(figures: Figures, k: int) -> str:
    """One row per recommender, in the order given."""
    lines = [
        f"| recommender | HR@{k} | MRR@{k} | NDCG@{k} | scored | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        lines.append(
            f"| {name} | {f['hr']:.4f} | {f['mrr']:.4f} | {f['ndcg']:.4f} | {f['n']} | {f['seconds']:.1f} |"
        )
    return "\n".join(lines)


def best_baseline(figures: Figures, baseline_names: tuple[str, ...]) -> tuple[str, float]:
    """The baseline with the highest HR (name, HR).

    >>> best_baseline({"a": {"hr": 0.1}, "b": {"hr": 0.3}, "product": {"hr": 0.9}}, ("a", "b"))
    ('b', 0.3)
    """
    present = [(n, float(figures[n]["hr"])) for n in baseline_names if n in figures]
    if not present:
        raise ValueError("no baseline in the figures")
    return max(present, key=lambda p: p[1])


def plot_hit_rate(figures: Figures, k: int, title: str, path: Path) -> Path:
    """HR@k over the event stream, one line per recommender, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name, f in figures.items():
        curve = f.get("curve") or []
        if curve:
            xs, ys = zip(*curve, strict=True)
            ax.plot(xs, ys, label=f"{name} ({f['hr']:.3f})", linewidth=1.6)
    ax.set_xlabel("events replayed")
    ax.set_ylabel(f"HR@{k} (window of scored events)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(result: Mapping[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    """``{stem}.json`` (everything) and ``{stem}.png`` (HR over the stream) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(result, indent=2))
    title = f"{result['dataset']}: prequential HR@{result['k']}, batch {result['batch']}"
    png = plot_hit_rate(result["figures"], int(result["k"]), title, out_dir / f"{stem}.png")
    return json_path, png
