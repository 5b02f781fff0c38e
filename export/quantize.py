"""int8 weights and calibrated input ranges for the pair scorer's dense layers (CPU serving).

The pair scorer spends most of its time in its dense layers (the cross layer and the
MLP's hidden layers: :mod:`models.ranker`). :func:`quantize_dense_layers` rewrites each
of them, an ONNX ``Gemm`` with constant weights, as a ``QuantizeLinear`` of its input
followed by onnxruntime's ``MatMulIntegerToFloat``: the weights stored as int8 with one
scale per output column (symmetric, zero point 0), the input quantized to uint8 with a
**fixed** scale and zero point, the product accumulated in integers (AVX-512 VNNI / AVX2
kernels) and rescaled to float with the bias. Layers with fewer than ``min_outputs``
outputs (the final one-logit layer) stay float: quantizing them costs more than it saves.

The input scales are calibrated once, at export, from each layer's inputs on
representative pairs (:func:`input_ranges`). A fixed scale makes a pair's score depend
on that pair alone. A scale computed in every call from the call's own range (what
``DynamicQuantizeMatMul`` does) would let one outlying pair in a micro-batch coarsen
the inputs of every other pair in it, so a user's ranking would depend on whom they
were batched with. An input beyond its calibrated range saturates at the range's end,
which moves that pair's score only.

The rewritten graph has the same inputs and outputs; only scores move, by the rounding
of weights and inputs. The export checks it against PyTorch within its own, looser
tolerance (:data:`INT8_TOLERANCE` in :mod:`export.ranker_export`).
The int8 kernels this is made for are onnxruntime's CPU ones: a GPU serves float bundles.

>>> import numpy as np
>>> from onnx import TensorProto, helper, numpy_helper
>>> w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
>>> b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
>>> graph = helper.make_graph(
...     [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "g",
...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [w, b])
>>> model, layers = quantize_dense_layers(helper.make_model(graph), {"x": (-1.0, 1.0)})
>>> layers, [n.op_type for n in model.graph.node]
(1, ['QuantizeLinear', 'MatMulIntegerToFloat'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

from models.onnx_session import CPU_PROVIDER, create_session

__all__ = ["QuantizeError", "Range", "dense_layers", "input_quantization", "input_ranges", "quantize_dense_layers",
           "quantized_weights"]

_MS_DOMAIN = "com.microsoft"

#: A layer's calibrated input range: (lowest, highest) value seen.
Range = tuple[float, float]


class QuantizeError(ValueError):
    """The graph cannot be quantized as asked; the message says why."""


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


def input_quantization(low: float, high: float) -> tuple[np.float32, np.uint8]:
    """uint8 scale and zero point covering ``[low, high]`` (widened to hold 0, which then
    quantizes exactly: a ReLU's zeros stay zeros).

    >>> scale, zero = input_quantization(-1.0, 3.0)
    >>> round(float(scale) * 255, 6), int(zero)
    (4.0, 64)
    """
    if not (np.isfinite(low) and np.isfinite(high)):
        raise QuantizeError(f"an input range must be finite, got ({low}, {high})")
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = (high - low) / 255.0 if high > low else 1.0
    zero = int(np.clip(np.rint(-low / scale), 0, 255))
    return np.float32(scale), np.uint8(zero)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def dense_layers(model: onnx.ModelProto, min_outputs: int = 2) -> list[onnx.NodeProto]:
    """The ``Gemm`` nodes :func:`quantize_dense_layers` rewrites: constant weights (and bias),
    no transposed or scaled input, at least ``min_outputs`` outputs."""
    inits = {t.name: t for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        a = _attrs(node)
        if (node.op_type != "Gemm" or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0
                or a.get("beta", 1.0) != 1.0 or node.input[1] not in inits):
            continue
        shape = inits[node.input[1]].dims
        outputs = shape[0] if a.get("transB", 0) else shape[1]
        has_bias = len(node.input) > 2 and node.input[2] != ""
        if outputs >= min_outputs and not (has_bias and node.input[2] not in inits):
            found.append(node)
    return found


def input_ranges(model: onnx.ModelProto, feeds: Iterable[Mapping[str, NDArray[Any]]],
                 min_outputs: int = 2) -> dict[str, Range]:
    """The lowest and highest value each :func:`dense_layers` input takes when onnxruntime
    (CPU) runs ``model`` on ``feeds`` (each one call's inputs): the calibration of the
    layers' fixed input scales."""
    names = list(dict.fromkeys(node.input[0] for node in dense_layers(model, min_outputs)))
    if not names:
        raise QuantizeError(f"no Gemm layer with constant weights and >= {min_outputs} outputs to calibrate")
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names if n not in outputs)
    session = create_session(probe.SerializeToString(), [CPU_PROVIDER], intra_op_threads=1)
    low = dict.fromkeys(names, np.inf)
    high = dict.fromkeys(names, -np.inf)
    for call in feeds:
        for name, value in zip(names, session.run(names, dict(call)), strict=True):
            if value.size:
                low[name] = min(low[name], float(value.min()))
                high[name] = max(high[name], float(value.max()))
    missing = [n for n in names if not np.isfinite(low[n]) or not np.isfinite(high[n])]
    if missing:
        raise QuantizeError(f"the calibration inputs gave no finite value for {', '.join(missing)}: "
                            "calibrate on at least one pair with finite features")
    return {n: (low[n], high[n]) for n in names}


def quantize_dense_layers(model: onnx.ModelProto, ranges: Mapping[str, Range],
                          min_outputs: int = 2) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with every :func:`dense_layers` ``Gemm`` as int8 weights times its
    input quantized to uint8 over its calibrated range in ``ranges`` (:func:`input_ranges`);
    returns it and how many layers changed."""
    layers = dense_layers(model, min_outputs)
    if not layers:
        raise QuantizeError(f"no Gemm layer with constant weights and >= {min_outputs} outputs to quantize")
    uncalibrated = sorted({n.input[0] for n in layers} - set(ranges))
    if uncalibrated:
        raise QuantizeError(f"no calibrated input range for {', '.join(uncalibrated)}; see input_ranges()")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    rewritten = {n.name or n.output[0] for n in layers}
    nodes: list[onnx.NodeProto] = []
    dropped: set[str] = set()
    for node in graph.node:
        if (node.name or node.output[0]) not in rewritten:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        if _attrs(node).get("transB", 0):
            weight = weight.T  # (in, out)
        q, w_scale = quantized_weights(weight)
        x_scale, x_zero = input_quantization(*ranges[node.input[0]])
        base = node.name or node.output[0]
        names = {k: f"{base}_int8_{k}" for k in ("weight", "weight_scale", "weight_zero_point", "input_scale",
                                                 "input_zero_point", "input", "bias")}
        graph.initializer.extend([
            numpy_helper.from_array(q, names["weight"]),
            numpy_helper.from_array(w_scale, names["weight_scale"]),
            numpy_helper.from_array(np.zeros_like(q[0]), names["weight_zero_point"]),
            numpy_helper.from_array(np.array(x_scale, np.float32), names["input_scale"]),
            numpy_helper.from_array(np.array(x_zero, np.uint8), names["input_zero_point"]),
        ])
        matmul_inputs = [names["input"], names["weight"], names["input_scale"], names["weight_scale"],
                         names["input_zero_point"], names["weight_zero_point"]]
        if len(node.input) > 2 and node.input[2] != "":
            bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            bias = np.broadcast_to(bias, (weight.shape[1],)).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(bias, names["bias"]))
            matmul_inputs.append(names["bias"])
            dropped.add(node.input[2])
        nodes.append(helper.make_node("QuantizeLinear", [node.input[0], names["input_scale"],
                                                         names["input_zero_point"]], [names["input"]],
                                      name=f"{base}_int8_quantize"))
        nodes.append(helper.make_node("MatMulIntegerToFloat", matmul_inputs, list(node.output), name=f"{base}_int8",
                                      domain=_MS_DOMAIN))
        dropped.add(node.input[1])
    del graph.node[:]
    graph.node.extend(nodes)
    still_used = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name not in dropped or t.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == _MS_DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(_MS_DOMAIN, 1))
    return out, len(layers)
