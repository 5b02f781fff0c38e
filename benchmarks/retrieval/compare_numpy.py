"""Numpy candidate generation of another commit against this checkout's, in one process.

    .venv/bin/python benchmarks/retrieval/compare_numpy.py a5c91e5 benchmarks/retrieval/numpy-before-after.json

Loads ``models/candidates.py`` as it was at the given revision next to the current one
and times ``generate_candidates`` (numpy retrieval, 1 BLAS thread) for both, in 4
rounds that alternate which goes first, on the catalogs and users of
``streamrec bench retrieval``; prints and writes each size's medians in ms.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from models import candidates as current
from models.covisitation import CoVisitation
from models.trending import Trending
from streams.bench.retrieval import build_catalog, build_users


def main(revision: str, out: Path) -> None:
    source = subprocess.run(["git", "show", f"{revision}:models/candidates.py"], check=True,
                            capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "candidates_before.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("candidates_before", path)
        assert spec is not None and spec.loader is not None
        before = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = before  # its dataclasses look their module up
        spec.loader.exec_module(before)
    engines = {"before": before.generate_candidates, "after": current.generate_candidates}
    covisitation, trending, rows = CoVisitation(), Trending(), []
    with threadpool_limits(limits=1):
        for items in (10_000, 100_000):
            index = build_catalog(items, 512)
            for n in (1, 8, 64, 512):
                users = build_users(n, 512, n)
                times: dict[str, list[float]] = {name: [] for name in engines}
                for r in range(4):
                    for name in list(engines) if r % 2 == 0 else list(engines)[::-1]:
                        end, calls = time.perf_counter() + 0.5, 0
                        while calls < 2 or time.perf_counter() < end:
                            t0 = time.perf_counter()
                            engines[name](users, index, covisitation, trending, per_source=100)
                            times[name].append(time.perf_counter() - t0)
                            calls += 1
                row = {"items": items, "users": n, "revision": revision,
                       **{f"{k}_ms": round(statistics.median(v) * 1e3, 3) for k, v in times.items()},
                       "calls": {k: len(v) for k, v in times.items()}}
                print(row, flush=True)
                rows.append(row)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
