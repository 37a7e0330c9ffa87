"""Rewrite ONNX ``DeformConv`` into a row gather plus a MatMul, with standard ops only.

The input is laid out as a table of contiguous rows, ``[N·H·W·G + 1, C/G]``
(``G`` offset groups, the last row all zeros). For every output position,
kernel tap and offset group the four bilinear corners become row indices into
that table (the zero row when a corner is outside the image), are gathered
along axis 0, weighted and summed into im2col columns ``[N·oH·oW, taps·C]``,
which one (batched, per conv group) MatMul with the reshaped weights turns
into the output. The semantics are those of ``torchvision.ops.deform_conv2d``.

Every node and tensor created is named ``<DeformConv node name>/...``; the
nodes that compute the sampled columns (indices, bilinear weights, gathers)
are returned per node, so a quantizer can keep them in float and quantize only
the final MatMul.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.errors import UsageError

_FLOAT_EXACT = 2**24  # float32 holds every integer row index below this exactly
_BRANCH_DEPTH = 6  # how far back from a DeformConv the offset branch is searched for its Conv


@dataclass(frozen=True)
class _Conv:
    """The static geometry of one DeformConv node."""

    n: int
    c: int
    h: int
    w: int
    out_c: int
    kh: int
    kw: int
    out_h: int
    out_w: int
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    group: int
    offset_group: int

    @property
    def taps(self) -> int:
        """Kernel taps per channel."""
        return self.kh * self.kw


@dataclass
class _Builder:
    """Collects the nodes and initializers of one rewrite, every name under ``prefix``."""

    prefix: str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def const(self, name: str, value: np.ndarray) -> str:
        """Add an initializer; return its name."""
        full = f"{self.prefix}/{name}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), full))
        return full

    def op(self, op_type: str, inputs: list[str], name: str, output: str | None = None, **attrs: object) -> str:
        """Add a one-output node named ``<prefix>/<name>``; return its output name."""
        full = f"{self.prefix}/{name}"
        out = output or f"{full}:0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=full, **attrs))
        return out

    def reshape(self, x: str, shape: list[int], name: str) -> str:
        """Reshape ``x`` to a static ``shape``."""
        return self.op("Reshape", [x, self.const(f"{name}/shape", np.array(shape, np.int64))], name)

    def scalar(self, name: str, value: float) -> str:
        """A float32 scalar initializer."""
        return self.const(name, np.array(value, np.float32))


def _static_shape(shapes: dict[str, list[int | None]], tensor: str, node: str) -> list[int]:
    """The static shape of ``tensor``, or a UsageError naming the DeformConv ``node``."""
    shape = shapes.get(tensor)
    if shape is None or any(d is None for d in shape):
        raise UsageError(f"DeformConv node '{node}': input '{tensor}' needs a static shape, got {shape}")
    return [int(d) for d in shape if d is not None]


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Tensor name → shape (None for a symbolic or unknown dim), after ONNX shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    shapes: dict[str, list[int | None]] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.type.tensor_type.HasField("shape"):
            dims = info.type.tensor_type.shape.dim
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _geometry(node: onnx.NodeProto, name: str, shapes: dict[str, list[int | None]]) -> _Conv:
    """Read the attributes and static shapes of a DeformConv node."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    n, c, h, w = _static_shape(shapes, node.input[0], name)
    out_c, _, kh, kw = _static_shape(shapes, node.input[1], name)
    kh, kw = (int(k) for k in attrs.get("kernel_shape", (kh, kw)))
    strides = tuple(int(s) for s in attrs.get("strides", (1, 1)))
    pads = tuple(int(p) for p in attrs.get("pads", (0, 0, 0, 0)))
    dilations = tuple(int(d) for d in attrs.get("dilations", (1, 1)))
    out_h = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    out_w = (w + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    group, offset_group = int(attrs.get("group", 1)), int(attrs.get("offset_group", 1))
    if c % offset_group or c % group or out_c % group:
        raise UsageError(f"DeformConv node '{name}': channels {c}→{out_c} not divisible by its groups")
    if n * h * w * offset_group + 1 >= _FLOAT_EXACT:
        raise UsageError(f"DeformConv node '{name}': input too large for float row indices")
    return _Conv(n, c, h, w, out_c, kh, kw, out_h, out_w, strides, pads, dilations, group, offset_group)  # type: ignore[arg-type]


def _table(b: _Builder, x: str, g: _Conv) -> str:
    """X as ``[N·H·W·G + 1, C/G]`` rows, the last one zeros."""
    nhwc = b.op("Transpose", [x], "table/transpose", perm=[0, 2, 3, 1])
    rows = b.reshape(nhwc, [g.n * g.h * g.w * g.offset_group, g.c // g.offset_group], "table/rows")
    zero = b.const("table/zero_row", np.zeros((1, g.c // g.offset_group), np.float32))
    return b.op("Concat", [rows, zero], "table/concat", axis=0)


def _sample_coords(b: _Builder, offset: str, g: _Conv) -> tuple[str, str]:
    """Sampling y, x as ``[N, P]`` floats, P = oH·oW·taps·G in that order (offsets: group, tap, y before x).

    Flat with a long last axis: ONNX Runtime's broadcasting is slow when the last axis is short.
    """
    split = b.reshape(offset, [g.n, g.offset_group, g.taps, 2, g.out_h, g.out_w], "coords/split")
    moved = b.op("Transpose", [split], "coords/transpose", perm=[3, 0, 4, 5, 2, 1])  # [2, N, oH, oW, taps, G]
    flat = b.reshape(moved, [2, g.n, g.out_h * g.out_w * g.taps * g.offset_group], "coords/flat")
    ki, kj = np.divmod(np.arange(g.taps), g.kw)
    base_y = np.arange(g.out_h)[:, None, None] * g.strides[0] - g.pads[0] + ki[None, None, :] * g.dilations[0]
    base_x = np.arange(g.out_w)[None, :, None] * g.strides[1] - g.pads[1] + kj[None, None, :] * g.dilations[1]
    full = (g.out_h, g.out_w, g.taps, g.offset_group)
    coords = []
    for axis, base in (("y", base_y), ("x", base_x)):
        index = b.const(f"coords/{axis}/index", np.array(len(coords), np.int64))
        delta = b.op("Gather", [flat, index], f"coords/{axis}/delta", axis=0)
        grid = np.broadcast_to(base[..., None], full).reshape(-1).astype(np.float32)
        coords.append(b.op("Add", [delta, b.const(f"coords/{axis}/base", grid)], f"coords/{axis}/add"))
    return coords[0], coords[1]


def _in_range(b: _Builder, v: str, low: int, high: int, name: str) -> str:
    """Bool: ``low <= v <= high``."""
    above = b.op("GreaterOrEqual", [v, b.scalar(f"{name}/low", low)], f"{name}/ge")
    below = b.op("LessOrEqual", [v, b.scalar(f"{name}/high", high)], f"{name}/le")
    return b.op("And", [above, below], f"{name}/and")


def _axis_terms(b: _Builder, v: str, size: int, step: int, axis: str) -> tuple[list[str], list[str], list[str]]:
    """For one axis: the low/high corners' row contributions, validities and bilinear weights."""
    low = b.op("Floor", [v], f"{axis}/floor")
    frac = b.op("Sub", [v, low], f"{axis}/frac")
    rest = b.op("Sub", [b.scalar(f"{axis}/one", 1.0), frac], f"{axis}/rest")
    row_low = b.op("Mul", [low, b.scalar(f"{axis}/step", step)], f"{axis}/row_low")
    row_high = b.op("Add", [row_low, b.scalar(f"{axis}/step_high", step)], f"{axis}/row_high")
    valid = [_in_range(b, low, 0, size - 1, f"{axis}/valid_low"), _in_range(b, low, -1, size - 2, f"{axis}/valid_high")]
    return [row_low, row_high], valid, [rest, frac]


def _modulate(b: _Builder, weights: list[str], mask: str, g: _Conv) -> list[str]:
    """Multiply the y bilinear weights by the mask, laid out ``[N, oH, oW, taps, G]``."""
    split = b.reshape(mask, [g.n, g.offset_group, g.taps, g.out_h, g.out_w], "mask/split")
    moved = b.op("Transpose", [split], "mask/transpose", perm=[0, 3, 4, 2, 1])
    moved = b.reshape(moved, [g.n, g.out_h * g.out_w * g.taps * g.offset_group], "mask/flat")
    return [b.op("Mul", [wy, moved], f"mask/mul{i}") for i, wy in enumerate(weights)]


def _sampled_columns(b: _Builder, x: str, offset: str, mask: str | None, g: _Conv) -> str:
    """Bilinearly sampled inputs, ``[N, oH·oW·taps·G, C/G]``."""
    table = _table(b, x, g)
    y, x_coord = _sample_coords(b, offset, g)
    rows_y, valid_y, weight_y = _axis_terms(b, y, g.h, g.w * g.offset_group, "y")
    rows_x, valid_x, weight_x = _axis_terms(b, x_coord, g.w, g.offset_group, "x")
    if mask is not None:
        weight_y = _modulate(b, weight_y, mask, g)
    image = np.arange(g.n)[:, None, None] * (g.h * g.w * g.offset_group)
    image_base = np.broadcast_to(image + np.arange(g.offset_group), (g.n, g.out_h * g.out_w * g.taps, g.offset_group))
    base = b.const("corner/image_base", image_base.reshape(g.n, -1).astype(np.float32))
    zero_row = b.scalar("corner/zero_row", g.n * g.h * g.w * g.offset_group)
    shape = b.const("corner/weight_shape", np.array([g.n, -1, 1], np.int64))
    parts = []
    for i, (ry, vy, wy) in enumerate(zip(rows_y, valid_y, weight_y, strict=True)):
        ry_base = b.op("Add", [ry, base], f"corner/y{i}/row")
        for j, (rx, vx, wx) in enumerate(zip(rows_x, valid_x, weight_x, strict=True)):
            name = f"corner/{i}{j}"
            flat = b.op("Add", [ry_base, rx], f"{name}/flat")
            valid = b.op("And", [vy, vx], f"{name}/valid")
            index = b.op("Where", [valid, flat, zero_row], f"{name}/where")
            index = b.op("Cast", [index], f"{name}/index", to=TensorProto.INT64)
            gathered = b.op("Gather", [table, index], f"{name}/gather", axis=0)  # [N, P, C/G]
            weight = b.op("Reshape", [b.op("Mul", [wy, wx], f"{name}/weight"), shape], f"{name}/weight_col")
            parts.append(b.op("Mul", [gathered, weight], f"{name}/mul"))
    total = parts[0]
    for k, part in enumerate(parts[1:], 1):
        total = b.op("Add", [total, part], f"corner/sum{k}")
    return total


def _weight_matrix(b: _Builder, weight: str, init: onnx.TensorProto | None, g: _Conv) -> str:
    """The conv weights as ``[group, taps·C/group, oC/group]`` (rows tap-major, as the columns)."""
    cpg, opg = g.c // g.group, g.out_c // g.group
    if init is not None:
        array = numpy_helper.to_array(init).reshape(g.group, opg, cpg, g.taps).transpose(0, 3, 2, 1)
        return b.const("matmul/weight", array.reshape(g.group, g.taps * cpg, opg).astype(np.float32))
    split = b.reshape(weight, [g.group, opg, cpg, g.taps], "matmul/weight/split")
    moved = b.op("Transpose", [split], "matmul/weight/transpose", perm=[0, 3, 2, 1])
    return b.reshape(moved, [g.group, g.taps * cpg, opg], "matmul/weight/matrix")


def _convolve(b: _Builder, columns: str, weight: str, bias: str | None, output: str, g: _Conv) -> None:
    """Columns × weights (+ bias), back to ``[N, oC, oH, oW]`` under the DeformConv's output name."""
    cpg, opg, m = g.c // g.group, g.out_c // g.group, g.n * g.out_h * g.out_w
    if g.group == 1:
        lhs = b.reshape(columns, [1, m, g.taps * g.c], "matmul/columns")
    else:
        split = b.reshape(columns, [m, g.taps, g.group, cpg], "matmul/columns/split")
        moved = b.op("Transpose", [split], "matmul/columns/transpose", perm=[2, 0, 1, 3])
        lhs = b.reshape(moved, [g.group, m, g.taps * cpg], "matmul/columns")
    result = b.op("MatMul", [lhs, weight], "matmul")  # [group, M, oC/group]
    if bias is not None:
        bias_3d = b.reshape(bias, [g.group, 1, opg], "bias/shape")
        result = b.op("Add", [result, bias_3d], "bias/add")
    if g.group == 1:  # a plain 3-D transpose is much faster in ONNX Runtime
        per_image = b.reshape(result, [g.n, g.out_h * g.out_w, opg], "output/split")
        moved = b.op("Transpose", [per_image], "output/transpose", perm=[0, 2, 1])
    else:
        per_image = b.reshape(result, [g.group, g.n, g.out_h * g.out_w, opg], "output/split")
        moved = b.op("Transpose", [per_image], "output/transpose", perm=[1, 0, 3, 2])
    b.op(
        "Reshape",
        [moved, b.const("output/shape", np.array([g.n, g.out_c, g.out_h, g.out_w], np.int64))],
        "output/reshape",
        output=output,
    )


def _lower_node(
    node: onnx.NodeProto, name: str, shapes: dict[str, list[int | None]], inits: dict[str, onnx.TensorProto]
) -> tuple[_Builder, list[str]]:
    """The replacement of one DeformConv node, and the names of its float-only sampling nodes."""
    g = _geometry(node, name, shapes)
    inputs = [*node.input, "", "", ""]
    x, weight, offset, bias, mask = inputs[:5]
    b = _Builder(name)
    columns = _sampled_columns(b, x, offset, mask or None, g)
    sampling = [n.name for n in b.nodes]
    matrix = _weight_matrix(b, weight, inits.get(weight), g)
    _convolve(b, columns, matrix, bias or None, node.output[0], g)
    return b, sampling


def _offset_branch(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> list[str]:
    """The nodes from the Conv that predicts ``node``'s offsets (and mask) to the DeformConv: that Conv and
    the Slice/Sigmoid/Mul… between. Empty when no Conv is found within a few nodes (offsets given as input)."""
    branch: list[str] = []
    frontier = [t for t in (node.input[2], *node.input[4:5]) if t]
    for _ in range(_BRANCH_DEPTH):
        parents = [producers[t] for t in frontier if t in producers]
        if not parents:
            break
        branch += [p.name for p in parents if p.name not in branch]
        frontier = [t for p in parents if p.op_type != "Conv" for t in p.input if t in producers]
        if not frontier:
            return branch
    return []


def rewrite_deform_conv(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, list[str]]]:
    """Replace every standard ``DeformConv`` with Gather/MatMul and other standard ops.

    Returns the new (checked) model and, per rewritten node name, the names of the nodes
    that should stay in float in an int8 model: the offset branch (the Conv predicting the
    offsets and mask, and what lies between) and the nodes computing the bilinear samples.
    The input and weight shapes must be static; raises UsageError otherwise.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    shapes = _known_shapes(model)
    inits = {t.name: t for t in graph.initializer}
    new_nodes: list[onnx.NodeProto] = []
    sampling: dict[str, list[str]] = {}
    folded: set[str] = set()
    producers = {out: n for n in graph.node for out in n.output}
    for index, node in enumerate(graph.node):
        if node.op_type != "DeformConv" or node.domain not in ("", "ai.onnx"):
            new_nodes.append(node)
            continue
        name = node.name or f"DeformConv_{index}"
        folded.add(node.input[1])
        built, samples = _lower_node(node, name, shapes, inits)
        sampling[name] = _offset_branch(node, producers) + samples
        new_nodes.extend(built.nodes)
        graph.initializer.extend(built.initializers)
    del graph.node[:]
    graph.node.extend(new_nodes)
    read = {i for n in new_nodes for i in n.input}
    _drop_unused_initializers(graph, folded - read)
    onnx.checker.check_model(model, full_check=True)
    return model, sampling


def _drop_unused_initializers(graph: onnx.GraphProto, unused: set[str]) -> None:
    """Remove the initializers the rewrite left unread (the folded DeformConv weights)."""
    folded = unused - {o.name for o in graph.output} - {i.name for i in graph.input}
    kept = [t for t in graph.initializer if t.name not in folded]
    del graph.initializer[:]
    graph.initializer.extend(kept)
