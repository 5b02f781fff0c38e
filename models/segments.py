"""Vectorised per-group operations on flat arrays ("segments").

A micro-batch keeps all users' candidates in flat arrays with a group (user) index
per entry, so per-user maxima and per-user top-k are computed without a Python
loop over users.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def ragged_gather(
    indptr: IntArray, pick: IntArray
) -> tuple[IntArray, IntArray]:
    """Positions of the concatenated slices ``indptr[p]:indptr[p+1]`` for each ``p`` in ``pick``.

    Returns ``(positions, owner)``: ``owner[j]`` is the index into ``pick`` that
    ``positions[j]`` came from.

    >>> ragged_gather(np.array([0, 2, 2, 5]), np.array([2, 0])).__repr__()
    '(array([2, 3, 4, 0, 1]), array([0, 0, 0, 1, 1]))'
    """
    starts = indptr[pick]
    lengths = indptr[pick + 1] - starts
    total = int(lengths.sum())
    owner = np.repeat(np.arange(pick.shape[0], dtype=np.int64), lengths)
    if total == 0:
        return np.zeros(0, np.int64), owner
    offsets = np.cumsum(lengths) - lengths  # where each slice starts in the output
    positions = np.arange(total, dtype=np.int64) - np.repeat(offsets, lengths) + np.repeat(starts, lengths)
    return positions, owner


def group_starts(group: IntArray) -> IntArray:
    """Start positions of the runs of equal values in a grouped (sorted) array.

    >>> group_starts(np.array([0, 0, 3, 3, 3, 5])).tolist()
    [0, 2, 5]
    """
    if group.shape[0] == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, group[1:] != group[:-1]]).astype(np.int64)


def group_max(group: IntArray, values: FloatArray) -> FloatArray:
    """Each entry's group maximum (``group`` must be grouped, e.g. sorted).

    >>> group_max(np.array([0, 0, 1]), np.array([1.0, 3.0, 2.0])).tolist()
    [3.0, 3.0, 2.0]
    """
    if group.shape[0] == 0:
        return np.zeros(0, values.dtype)
    starts = group_starts(group)
    counts = np.diff(np.r_[starts, group.shape[0]])
    return np.repeat(np.maximum.reduceat(values, starts), counts)
