"""int8 weights for the pair scorer's dense layers, for serving on a CPU.

The pair scorer spends most of its time in its dense layers (the cross layer and the
MLP's hidden layers: :mod:`models.ranker`). :func:`quantize_dense_layers` rewrites each
of them, an ONNX ``Gemm`` with constant weights, as onnxruntime's
``DynamicQuantizeMatMul``: the weights stored as int8 with one scale per output column
(symmetric, zero point 0), the layer's input quantized to uint8 in every call from its
own range, the product accumulated in integers (AVX-512 VNNI / AVX2 kernels) and
rescaled to float before the bias. Layers with fewer than ``min_outputs`` outputs (the
final one-logit layer) stay float: quantizing them costs more than it saves.

The rewritten graph has the same inputs and outputs; only scores move, by the rounding
of weights and inputs. The export checks it against PyTorch within its own, looser
tolerance (:data:`INT8_TOLERANCE` in :mod:`export.ranker_export`).
``DynamicQuantizeMatMul`` runs on onnxruntime's CPU provider: a GPU serves float bundles.

>>> import numpy as np
>>> from onnx import TensorProto, helper, numpy_helper
>>> w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
>>> b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
>>> graph = helper.make_graph(
...     [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "g",
...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [w, b])
>>> model, layers = quantize_dense_layers(helper.make_model(graph))
>>> layers, [n.op_type for n in model.graph.node]
(1, ['DynamicQuantizeMatMul'])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

__all__ = ["QuantizeError", "quantize_dense_layers", "quantized_weights"]

_MS_DOMAIN = "com.microsoft"


class QuantizeError(ValueError):
    """The graph has no dense layer that can be quantized; the message says why."""


def quantized_weights(weight: NDArray[np.float32]) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """``weight`` ``(in, out)`` as int8 with one symmetric scale per output column.

    >>> q, s = quantized_weights(np.array([[1.0, -0.5], [-2.0, 0.25]], np.float32))
    >>> q.tolist(), [round(float(x), 5) for x in s]
    ([[64, -127], [-127, 64]], [0.01575, 0.00394])
    """
    peak = np.abs(weight).max(axis=0)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
    return q, scale


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def quantize_dense_layers(model: onnx.ModelProto, min_outputs: int = 2) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with every constant-weight ``Gemm`` of at least ``min_outputs``
    outputs as an int8 ``DynamicQuantizeMatMul``; returns it and how many layers changed."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    changed, dropped = 0, set()
    for node in graph.node:
        a = _attrs(node)
        if (node.op_type != "Gemm" or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0
                or a.get("beta", 1.0) != 1.0 or node.input[1] not in inits):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        if a.get("transB", 0):
            weight = weight.T  # (in, out)
        has_bias = len(node.input) > 2 and node.input[2] != ""
        if weight.shape[1] < min_outputs or (has_bias and node.input[2] not in inits):
            nodes.append(node)
            continue
        q, scale = quantized_weights(weight)
        base = node.name or node.output[0]
        names = [f"{base}_int8_weight", f"{base}_int8_scale", f"{base}_int8_zero_point"]
        graph.initializer.extend([numpy_helper.from_array(q, names[0]), numpy_helper.from_array(scale, names[1]),
                                  numpy_helper.from_array(np.zeros_like(q[0]), names[2])])
        inputs = [node.input[0], *names]
        if has_bias:
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            if bias.shape != (weight.shape[1],):
                bias = np.broadcast_to(bias, (weight.shape[1],)).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(bias, f"{base}_int8_bias"))
            inputs.append(f"{base}_int8_bias")
            dropped.add(node.input[2])
        nodes.append(helper.make_node("DynamicQuantizeMatMul", inputs, list(node.output), name=f"{base}_int8",
                                      domain=_MS_DOMAIN))
        dropped.add(node.input[1])
        changed += 1
    if not changed:
        raise QuantizeError(f"no Gemm layer with constant weights and >= {min_outputs} outputs to quantize")
    del graph.node[:]
    graph.node.extend(nodes)
    still_used = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name not in dropped or t.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == _MS_DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(_MS_DOMAIN, 1))
    return out, changed
