"""The Faust-floor reference runs end to end on a tiny backlog and reports its figures."""

from __future__ import annotations

import re
import subprocess
import sys


def test_faust_floor_drains_a_tiny_backlog() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streams.bench.faust_floor", "--events", "300", "--users", "30"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"no work: 300 events in [\d.]+ s = ([\d,]+) events/s, (\d+) us CPU per event", out.stdout)
    assert m, out.stdout
    assert int(m.group(1).replace(",", "")) > 0 and int(m.group(2)) > 0
