"""Which partition a keyed record goes to: Kafka's default (murmur2) key partitioner.

Producers key click and search events by user id with this partitioner (the Java
client's and kafka-python's default), so a user's events, state and table partition
line up; the workers compute it to find the partition of a user they did not read an
event of (routing a rank request, erasing a user).
"""

from __future__ import annotations

from kafka.partitioner.default import murmur2


def partition_of_key(key: bytes, partitions: int) -> int:
    """The partition the default (murmur2) partitioner gives ``key`` among ``partitions``.

    >>> partition_of_key(b"u-1", 8) == partition_of_key(b"u-1", 8) < 8
    True
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions
