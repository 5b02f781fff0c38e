"""Small vector helpers: normalisation, exponential decay and compact encoding.

>>> v = np.array([3.0, 4.0], dtype=np.float32)
>>> l2_normalize(v).tolist()
[0.6000000238418579, 0.800000011920929]
>>> decode_vector(encode_vector(v)).tolist()
[3.0, 4.0]
>>> round(decay(3600.0, half_life=3600.0), 3)
0.5
"""

from __future__ import annotations

import base64

import numpy as np

from models.types import Matrix, Vector

_EPS = 1e-12


def l2_normalize(x: Vector | Matrix) -> Vector | Matrix:
    """Unit-length rows (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, _EPS)).astype(np.float32)


def decay(elapsed_s: float, half_life: float) -> float:
    """Weight left after ``elapsed_s`` seconds of exponential decay with ``half_life``."""
    return float(2.0 ** (-max(elapsed_s, 0.0) / half_life))


def encode_vector(v: Vector) -> str:
    """float32 vector to base64 text (4 bytes a dimension, JSON-safe)."""
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(s: str) -> Vector:
    """Inverse of :func:`encode_vector`."""
    return np.frombuffer(base64.b64decode(s), dtype="<f4").astype(np.float32)
