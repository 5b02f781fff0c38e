"""The benchmark's figure: latency and throughput against offered load, and the catch-up rate.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_STYLES = {"pipeline": "-", "echo": "--"}
_COLOURS = {"p50": "tab:blue", "p95": "tab:orange", "p99": "tab:red"}


def _ran(rows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [r for r in rows or [] if not r.get("skipped")]


def plot(results: dict[str, Any], path: Path) -> Path:
    """Write a PNG of ``results`` to ``path``; returns it."""
    from matplotlib.figure import Figure

    live = results.get("live") or {}
    catchup = results.get("catchup") or {}
    has_live = bool(_ran(live.get("pipeline")) or _ran(live.get("echo")))
    has_catchup = bool(catchup.get("pipeline") or catchup.get("echo"))
    panels = (["latency", "throughput"] if has_live else []) + (["catchup"] if has_catchup else [])
    fig = Figure(figsize=(5.2 * max(1, len(panels)), 4.4))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=False):  # one empty panel when there are none
        if panel == "latency":
            _latency(ax, live)
        elif panel == "throughput":
            _throughput(ax, live)
        else:
            _catchup(ax, catchup)
    if not panels:
        axes[0].text(0.5, 0.5, "no figures", ha="center", va="center")
    m = results.get("machine", {})
    fig.suptitle(f"streamrec bench: {m.get('cpu', '?')}, {m.get('usable_cores', '?')} cores "
                 f"(solid: pipeline, dashed: echo)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _latency(ax: Any, live: dict[str, Any]) -> None:
    for system, style in _STYLES.items():
        rows = [r for r in _ran(live.get(system)) if r.get("latency_ms")]
        for q, colour in _COLOURS.items():
            xs = [r["offered_rate"] for r in rows if q in r["latency_ms"]]
            ys = [r["latency_ms"][q] for r in rows if q in r["latency_ms"]]
            if xs:
                ax.plot(xs, ys, style, marker="o", color=colour, label=f"{system} {q}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("event → Redis latency (ms)")
    ax.set_title("latency vs offered load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _throughput(ax: Any, live: dict[str, Any]) -> None:
    top = 0.0
    for system, style in _STYLES.items():
        rows = _ran(live.get(system))
        if rows:
            xs = [r["offered_rate"] for r in rows]
            ax.plot(xs, [r.get("processed_rate") or 0 for r in rows], style, marker="o", color="tab:green",
                    label=f"{system} processed/s")
            ax.plot(xs, [r.get("refreshes_rate") or 0 for r in rows], style, marker="s", color="tab:purple",
                    label=f"{system} refreshes/s")
            top = max(top, *xs)
    if top:
        ax.plot([0, top], [0, top], ":", color="grey", label="offered")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("per second, while offered")
    ax.set_title("throughput vs offered load")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def _catchup(ax: Any, catchup: dict[str, Any]) -> None:
    systems = [s for s in ("pipeline", "echo") if catchup.get(s)]
    values = [catchup[s].get("events_per_s") or 0 for s in systems]
    bars = ax.bar(systems, values, color=["tab:blue", "tab:grey"][: len(systems)])
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:,.0f}/s", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    first = catchup.get(systems[0], {}) if systems else {}
    ax.set_ylabel("events/s, first to last event")
    ax.set_title(f"catch-up of {first.get('events', 0):,} events")
    ax.grid(True, axis="y", alpha=0.3)
