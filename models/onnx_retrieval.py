"""Nearest-item retrieval over the whole catalog as one onnxruntime call per micro-batch.

Candidate generation (:func:`models.candidates.generate_candidates`) needs, for every
user of a micro-batch, the items nearest to their interest (long- plus short-term
vector, weighted by how much each counts now) and to their latest search. On the CPU
numpy does this with matrix products over the catalog. On a GPU, :class:`OnnxRetrieval`
multiplies the catalog by each user's interest vector (the long- and short-term vectors
weighted: the score is linear in them) and query, and runs the two top-k's, in one ONNX
graph (:func:`retrieval_graph`) on the device: the item matrix and its row mask are
copied there once per catalog version and stay resident (I/O binding), only the users'
vectors travel in, and only ``k`` rows and scores per user and source travel back.

The graph's inputs are ``user_vectors`` ``(U, 3, D)`` (long, short, query), ``weights``
``(U, 2)`` (the long and short vectors' weights), ``item_matrix`` ``(M, D)``,
``item_bias`` ``(M,)`` (0 for a row retrieval may return, -inf for a dead row or one with a
zero vector: :attr:`ItemIndex.has_vector <models.item_index.ItemIndex.has_vector>`) and
``k``; its outputs the ``interest`` and ``search`` rows and scores, ``(U, k)`` each, best
first. A masked row scores -inf, so it can only come back when fewer than ``k`` rows are
left, and candidate generation drops it.

>>> import numpy as np
>>> from models.item_index import ItemIndex
>>> idx = ItemIndex(dim=2)
>>> for item, v in {"a": [1, 0], "b": [0, 1], "c": [0.7, 0.7]}.items():
...     idx.upsert(item, np.array(v, np.float32))
>>> r = OnnxRetrieval()
>>> users = np.array([[[1, 0], [0, 0], [0, 1]]], np.float32)  # long, short, query
>>> found = r.top_rows(idx, users, np.array([[1.0, 0.0]], np.float32), k=2)
>>> idx.item_ids(found.interest_rows[0]), idx.item_ids(found.search_rows[0])
(['a', 'c'], ['b', 'c'])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import TensorProto, helper

from models.candidates import Retrieved
from models.item_index import ItemIndex
from models.onnx_session import CPU_PROVIDER, active_provider, create_session, device_type

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]

OPSET = 17
OUTPUT_NAMES: tuple[str, ...] = ("interest_rows", "interest_scores", "search_rows", "search_scores")


def retrieval_graph() -> bytes:
    """The serialised ONNX model described in the module docstring."""
    f, i64 = TensorProto.FLOAT, TensorProto.INT64

    def const(name: str, values: list[int], dims: list[int]) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, i64, dims, values))

    nodes = [  # in dependency order (the checker below insists)
        const("zero", [0], [1]), const("one", [1], [1]), const("two", [2], [1]), const("minus_one", [-1], [1]),
        const("zero_scalar", [0], []), const("one_scalar", [1], []), const("two_scalar", [2], []),
        # The interest score is linear in the vectors: one product with the weighted sum of long and short.
        helper.make_node("Slice", ["user_vectors", "zero", "two", "one"], ["long_short"]),  # (U, 2, D)
        helper.make_node("Unsqueeze", ["weights", "minus_one"], ["w3"]),  # (U, 2, 1)
        helper.make_node("Mul", ["long_short", "w3"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "one"], ["interest_vector"], keepdims=0),  # (U, D)
        helper.make_node("Gather", ["user_vectors", "two_scalar"], ["query"], axis=1),  # (U, D)
        helper.make_node("Concat", ["interest_vector", "query"], ["both"], axis=0),  # (2U, D)
        helper.make_node("Gemm", ["both", "item_matrix"], ["sims_flat"], transB=1),  # (2U, M)
        helper.make_node("Shape", ["item_matrix"], ["matrix_shape"]),
        helper.make_node("Slice", ["matrix_shape", "zero", "one"], ["n_items"]),
        helper.make_node("Concat", ["two", "minus_one", "n_items"], ["sims_shape"], axis=0),
        helper.make_node("Reshape", ["sims_flat", "sims_shape"], ["sims"]),  # (2, U, M): interest, search
        helper.make_node("Add", ["sims", "item_bias"], ["scored"]),
        helper.make_node("TopK", ["scored", "k"], ["top_scores", "top_rows"], axis=2, largest=1, sorted=1),
        helper.make_node("Gather", ["top_scores", "zero_scalar"], ["interest_scores"], axis=0),
        helper.make_node("Gather", ["top_rows", "zero_scalar"], ["interest_rows"], axis=0),
        helper.make_node("Gather", ["top_scores", "one_scalar"], ["search_scores"], axis=0),
        helper.make_node("Gather", ["top_rows", "one_scalar"], ["search_rows"], axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "streamrec_retrieval",
        [
            helper.make_tensor_value_info("user_vectors", f, ["users", 3, "dim"]),
            helper.make_tensor_value_info("weights", f, ["users", 2]),
            helper.make_tensor_value_info("item_matrix", f, ["items", "dim"]),
            helper.make_tensor_value_info("item_bias", f, ["items"]),
            helper.make_tensor_value_info("k", i64, [1]),
        ],
        [
            helper.make_tensor_value_info("interest_rows", i64, ["users", "k"]),
            helper.make_tensor_value_info("interest_scores", f, ["users", "k"]),
            helper.make_tensor_value_info("search_rows", i64, ["users", "k"]),
            helper.make_tensor_value_info("search_scores", f, ["users", "k"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="streamrec")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


class OnnxRetrieval:
    """A :class:`~models.candidates.Retrieval`: interest and search top-k over the item index in one
    onnxruntime call (see the module docstring).

    Parameters
    ----------
    providers
        onnxruntime providers in order of preference (CPU is always appended).
    io_binding
        None: bind on GPU providers only (the item matrix stays on the device); True/False: always/never.
    min_items
        Catalogs with fewer rows are left to numpy by candidate generation (on a CPU numpy is
        faster for small catalogs; BENCHMARKS.md).
    """

    def __init__(self, providers: Sequence[str] = (CPU_PROVIDER,), *, intra_op_threads: int | None = None,
                 io_binding: bool | None = None, min_items: int = 0) -> None:
        if min_items < 0:
            raise ValueError("min_items must be >= 0")
        self.min_items = int(min_items)
        self.session = create_session(retrieval_graph(), providers, intra_op_threads=intra_op_threads)
        self.provider = active_provider(self.session)
        self.device_type = device_type(self.provider)
        self.io_binding = self.device_type != "cpu" if io_binding is None else io_binding
        self._key: tuple[int, int, int] | None = None
        self._resident: tuple[Any, Any] | None = None
        log.info("nearest-item retrieval runs on %s (I/O binding %s)", self.provider, "on" if self.io_binding else "off")

    def top_rows(self, index: ItemIndex, user_vectors: FloatArray, weights: FloatArray, k: int) -> Retrieved:
        """The ``k`` (at most the index's size) nearest rows per user for interest and for search."""
        k = min(int(k), index.size)
        n = user_vectors.shape[0]
        if k <= 0 or n == 0:
            empty_rows, empty_scores = np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
            return Retrieved(empty_rows, empty_scores, empty_rows, empty_scores)
        feeds = {"user_vectors": np.ascontiguousarray(user_vectors, np.float32),
                 "weights": np.ascontiguousarray(weights, np.float32), "k": np.array([k], np.int64)}
        if not self.io_binding:
            matrix, bias = self._catalog(index)
            out = self.session.run(list(OUTPUT_NAMES), {**feeds, "item_matrix": matrix, "item_bias": bias})
        else:
            binding = self.session.io_binding()
            matrix_value, bias_value = self._on_device(index)
            binding.bind_ortvalue_input("item_matrix", matrix_value)
            binding.bind_ortvalue_input("item_bias", bias_value)
            for name, value in feeds.items():
                binding.bind_cpu_input(name, value)
            for name in OUTPUT_NAMES:
                binding.bind_output(name, self.device_type)
            self.session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()
        i_rows, i_scores, s_rows, s_scores = out
        return Retrieved(np.asarray(i_rows, np.int64), np.asarray(i_scores, np.float32),
                         np.asarray(s_rows, np.int64), np.asarray(s_scores, np.float32))

    @staticmethod
    def _catalog(index: ItemIndex) -> tuple[FloatArray, FloatArray]:
        matrix = np.ascontiguousarray(index.matrix, np.float32)
        bias = np.where(index.has_vector, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)
        return matrix, bias

    def _on_device(self, index: ItemIndex) -> tuple[Any, Any]:
        """The item matrix and its row mask on the session's device, copied again only when
        the catalog changed."""
        key = (id(index), index.version, index.size)
        if self._resident is None or key != self._key:
            matrix, bias = self._catalog(index)
            self._resident = (ort.OrtValue.ortvalue_from_numpy(matrix, self.device_type, 0),
                              ort.OrtValue.ortvalue_from_numpy(bias, self.device_type, 0))
            self._key = key
        return self._resident
