"""Make an fp32 ONNX graph quantize into onnxruntime's fast int8 kernels (and lose less).

Profiled on lipnet_rt (onnxruntime 1.32, 2-core AVX512-VNNI CPU, 473x473, batch 1; totals of the
session's node times) before static QDQ quantization:

* **Squeeze-excitation means** are exported by torch as ``ReduceMean(axes=[2, 3])``, which has
  no int8 kernel: each SE block dequantized its whole feature map to float and reduced it there
  (12 blocks: about 4 ms of 27). The same mean as ``GlobalAveragePool`` becomes
  ``QLinearGlobalAveragePool`` on the uint8 map (0.3 ms for all 12). The rewrite is exact.
* **The graph outputs stay float.** Quantizing the logits put a QuantizeLinear + DequantizeLinear
  pair on the full-size [B, 20, H, W] output after the float upsampling (2.1 ms, and logits
  rounded to 256 levels for nothing): the node that makes an output is left in float.
* **Pooling of the raw image stays float** (LIP-Net's ``image_pooling: input`` branch, a 32x32
  max-pool of the input): onnxruntime's uint8 MaxPool of that window took 0.64 ms, the float one
  0.27 ms.

Together, timed interleaved (40 rounds, raw sessions): lipnet_rt int8 26.9 -> 20.9 ms per
image, LIP-Net 94.1 -> 79.1 ms (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

POOL_OPS = ("MaxPool", "AveragePool")


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]
            if attr.name == "value":
                values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _spatial_mean_axes(node, constants: dict[str, np.ndarray]) -> list[int] | None:
    """The reduced axes of a ReduceMean (input tensor or, before opset 18, attribute)."""
    if len(node.input) > 1 and node.input[1]:
        axes = constants.get(node.input[1])
        return None if axes is None else [int(a) for a in np.ravel(axes)]
    for attr in node.attribute:
        if attr.name == "axes":
            return list(attr.ints)
    return None


def _keepdims(node) -> bool:
    return next((bool(a.i) for a in node.attribute if a.name == "keepdims"), True)


def _rank(graph, name: str) -> int | None:
    for value in [*graph.value_info, *graph.input, *graph.output]:
        if value.name == name and value.type.tensor_type.HasField("shape"):
            return len(value.type.tensor_type.shape.dim)
    return None


def spatial_means_to_global_pool(model) -> int:
    """Replace ``ReduceMean(x, axes=[2, 3], keepdims=1)`` of 4-D ``x`` by
    ``GlobalAveragePool(x)`` in place (the same values); returns how many were replaced.
    Axes that became unused are dropped."""
    from onnx import helper, shape_inference

    graph = model.graph
    constants = _constants(graph)
    shapes = shape_inference.infer_shapes(model).graph  # ranks, also without value_info
    replaced, nodes = 0, []
    for node in graph.node:
        axes = _spatial_mean_axes(node, constants) if node.op_type == "ReduceMean" else None
        rank = _rank(shapes, node.input[0]) if axes is not None else None
        if (
            axes is not None
            and rank == 4
            and _keepdims(node)
            and sorted(a % 4 for a in axes) == [2, 3]
        ):
            nodes.append(
                helper.make_node(
                    "GlobalAveragePool", [node.input[0]], list(node.output), name=node.name
                )
            )
            replaced += 1
        else:
            nodes.append(node)
    if replaced:
        del graph.node[:]
        graph.node.extend(nodes)
        _drop_unused_initializers(graph)
    return replaced


def _drop_unused_initializers(graph) -> None:
    used = {name for node in graph.node for name in node.input}
    used |= {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def float_nodes(model) -> list[str]:
    """Names of the nodes to leave in float: those that write a graph output, and pooling
    nodes that read a graph input (the image)."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    inputs = {i.name for i in graph.input}
    names = []
    for node in graph.node:
        writes_output = bool(outputs.intersection(node.output))
        pools_input = node.op_type in POOL_OPS and bool(inputs.intersection(node.input))
        if (writes_output or pools_input) and node.name:
            names.append(node.name)
    return names


def prepare_for_int8(model, keep_float: Iterable[str] = ()) -> list[str]:
    """Rewrite ``model`` in place for int8 (:func:`spatial_means_to_global_pool`) and return
    the node names to exclude from quantization: :func:`float_nodes` plus ``keep_float``.
    Unnamed nodes get a name (onnxruntime's quantizer excludes nodes by name)."""
    spatial_means_to_global_pool(model)
    taken = {node.name for node in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = next(
                n for k in range(len(taken) + 1) if (n := f"{node.op_type}_{i}_{k}") not in taken
            )
            taken.add(node.name)
    return list(dict.fromkeys([*float_nodes(model), *keep_float]))
