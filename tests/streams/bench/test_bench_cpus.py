"""CPU sets for ``bench rank --serving-cpus``: parsing, the split, and inheritance by child processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from streams.bench.cpus import CpuSetError, on_cpus, parse_cpus, split_cpus
from streams.cli import main


def test_parse_cpus_reads_lists_and_ranges() -> None:
    assert parse_cpus("3") == {3}
    assert parse_cpus("0, 2-4,7") == {0, 2, 3, 4, 7}
    for bad in ("", "1-", "3-1", "-1", "a,b", "1;2"):
        with pytest.raises(CpuSetError, match="is not a CPU list"):
            parse_cpus(bad)


def test_split_leaves_the_other_cpus_to_the_stream() -> None:
    assert split_cpus(frozenset({2, 3}), frozenset(range(4))) == ({2, 3}, {0, 1})
    with pytest.raises(CpuSetError, match="not all usable"):
        split_cpus(frozenset({9}), frozenset({0, 1}))
    with pytest.raises(CpuSetError, match="none of 0,1 for the stream"):
        split_cpus(frozenset({0, 1}), frozenset({0, 1}))


def test_a_process_started_on_a_cpu_set_inherits_it_and_the_thread_gets_its_own_back() -> None:
    before = os.sched_getaffinity(0)
    one = frozenset({min(before)})
    probe = [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"]
    with on_cpus(one):
        assert os.sched_getaffinity(0) == one
        child = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    assert child == str(sorted(one))
    assert os.sched_getaffinity(0) == before
    with on_cpus(None):
        assert os.sched_getaffinity(0) == before


def test_bench_rank_refuses_a_bad_cpu_list_before_starting_anything() -> None:
    result = CliRunner().invoke(main, ["bench", "rank", "--serving-cpus", "one"])
    assert result.exit_code == 2
    assert "--serving-cpus" in result.output and "such as 1 or 0,2-3" in result.output
    every = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    result = CliRunner().invoke(main, ["bench", "rank", "--serving-cpus", every])
    assert result.exit_code == 2 and "for the stream" in result.output
