"""The key partitioner the workers compute must be the one producers use."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.partitioning import partition_of_key


@pytest.mark.parametrize(("key", "expected"), [
    (b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742),
])
def test_matches_the_java_clients_partitions(key: bytes, expected: int) -> None:
    # The Java client's DefaultPartitioner over 1,000 partitions gives these (as kafka-python's own tests record).
    assert partition_of_key(key, 1000) == expected


def test_matches_aiokafkas_partitioner_for_user_ids() -> None:
    partitioner = DefaultPartitioner()
    for n in (1, 3, 8, 12):
        for i in range(200):
            key = f"user-{i}".encode()
            assert partition_of_key(key, n) == partitioner(key, list(range(n)), list(range(n)))
