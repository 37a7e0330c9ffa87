"""Op costs of a PyTorch module, read on the meta device with the rules of :mod:`edgecnn.costs.op_costs`.

The forward pass runs under a dispatch mode that sees every aten operator with its shapes and computes
nothing, so a planner can cost dozens of EfficientNet candidates in a second without exporting them.
``tests/analysis/test_op_costs.py`` checks that this reading matches the exported ONNX graph's.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from edgecnn.costs.op_costs import DTYPES, ELEMENT_BYTES, OpCost, boundary_costs, conv_class

aten = torch.ops.aten

_FUSIBLE = {aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default}
_FUSIBLE |= {aten.leaky_relu.default, aten.leaky_relu_.default, aten.clamp.default, aten.clamp_.default}
# Activations whose output is their input's shape: on the meta device a new (or, in place, the same) tensor
# stands for it, instead of torch's Python reference kernels (most of a MobileNet's costing time).
_SAME_SHAPE = {aten.relu.default, aten.hardtanh.default, aten.leaky_relu.default, aten.clamp.default}
_IN_PLACE = {aten.relu_.default, aten.hardtanh_.default, aten.leaky_relu_.default, aten.clamp_.default}
_BATCH_NORM = {aten._native_batch_norm_legit_no_training.default, aten.native_batch_norm.default}
_POOL = {
    aten.mean.dim,
    aten.adaptive_avg_pool2d.default,
    aten._adaptive_avg_pool2d.default,
    aten.avg_pool2d.default,
    aten.max_pool2d_with_indices.default,
    aten.max_pool2d.default,
    aten.amax.default,
}
_DATA = {aten.cat.default, aten.permute.default, aten.constant_pad_nd.default, aten.slice.Tensor}
_FREE_NAMES = (
    "view",
    "reshape",
    "_unsafe_view",
    "t",
    "expand",
    "clone",
    "detach",
    "alias",
    "squeeze",
    "unsqueeze",
    "flatten",
    "dropout",
    "_to_copy",
    "empty",
    "zeros",
    "ones",
    "copy_",
    "lift_fresh",
    "split",
    "unbind",
)
_SILU = {aten.silu.default, aten.silu_.default}


def _numel(value: Any) -> int:
    return value.numel() if isinstance(value, torch.Tensor) else 0


def _first(value: Any) -> torch.Tensor | None:
    tensors = _tensors(value)
    return tensors[0] if tensors else None


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


class _Recorder(TorchDispatchMode):
    """Records one :class:`OpCost` per executed operator, fusing as a runtime would."""

    def __init__(self, dtype: str, weights: set[int]):
        super().__init__()
        self.dtype, self.size, self.weights = dtype, ELEMENT_BYTES[dtype], weights
        self.costs: list[OpCost] = []
        self.fused: set[int] = set()  # ids of tensors produced by a conv/fc (or a BN/activation fused into one)
        self._alive: list[Any] = []  # keeps every output alive, so that no id is reused during the pass

    def _add(
        self,
        name: str,
        op_class: str,
        work: float,
        inputs: list[torch.Tensor],
        out: Any,
        shape: tuple[int, int] = (0, 0),
    ) -> None:
        """Record an operator; only its first output counts (max-pool indices, BN statistics are not kept).
        ``shape`` is a MAC operator's (output channels, reduction depth)."""
        weight = sum(t.numel() for t in inputs if id(t) in self.weights)
        activations = sum(t.numel() for t in inputs if id(t) not in self.weights)
        moved = (activations + weight + _numel(_first(out))) * self.size
        self.costs.append(
            OpCost(name, op_class, self.dtype, float(work), float(moved), float(weight * self.size), *shape)
        )

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        meta = bool(args) and isinstance(args[0], torch.Tensor) and args[0].is_meta
        if meta and func in _SAME_SHAPE:
            out = torch.empty_like(args[0])
        elif meta and func in _IN_PLACE:
            out = args[0]
        else:
            out = func(*args, **kwargs)
        self._alive.append(out)
        name = func.__name__
        inputs = [t for a in args for t in _tensors(a)]
        first = inputs[0] if inputs else None
        if func is aten.convolution.default:
            x, w, groups = args[0], args[1], args[8]
            op_class = conv_class(tuple(w.shape[2:]), groups, x.shape[1])
            depth = math.prod(w.shape[1:])
            self._add(name, op_class, out.numel() * depth, inputs, out, (w.shape[0], depth))
            self.fused.add(id(out))
        elif func in (aten.addmm.default, aten.mm.default, aten.linear.default):
            a = args[1] if func is aten.addmm.default else args[0]
            self._add(name, "fc", out.numel() * a.shape[-1], inputs, out, (out.shape[-1], a.shape[-1]))
            self.fused.add(id(out))
        elif (func in _FUSIBLE or func in _BATCH_NORM) and first is not None and id(first) in self.fused:
            self.fused.update(id(t) for t in _tensors(out))
        elif func in _POOL:
            self._add(name, "pool", _numel(first), [first] if first is not None else [], out)
        elif func in _DATA:
            self._add(name, "data", _numel(_first(out)), inputs, out)
        elif any(name.startswith(f"{free}.") for free in _FREE_NAMES) or not _tensors(out):
            for group in (self.weights, self.fused):  # a view of a weight is a weight (linear's transpose)
                if any(id(t) in group for t in inputs):
                    group.update(id(t) for t in _tensors(out))
        elif func.name() == "torchvision::deform_conv2d":  # by name: torchvision may not be imported
            weight = args[1]
            depth = math.prod(weight.shape[1:])
            op_class = conv_class(tuple(weight.shape[2:]), 1, 0)
            self._add(name, op_class, out.numel() * depth, inputs, out, (weight.shape[0], depth))
        elif func in _SILU:  # ONNX before opset 24 has no Swish: Sigmoid(x), then Mul(x, sigmoid)
            self._add(name, "elementwise", _numel(out), inputs, out)
            self._add(name, "elementwise", _numel(out), [*inputs, out], out)
        else:
            self._add(name, "elementwise", _numel(_first(out)), inputs, out)
        return out


def torch_op_costs(module: torch.nn.Module, input_size: tuple[int, ...], dtype: str = "fp32") -> list[OpCost]:
    """Op costs of ``module`` for a batch-1 input of ``input_size`` (C, H, W), every operator at ``dtype``.

    The module is evaluated on the meta device (a copy is moved there if it holds real weights)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not '{dtype}'")
    if any(p.device.type != "meta" for p in module.parameters()):
        module = copy.deepcopy(module).to("meta")
    module.eval()
    weights = {id(t) for t in [*module.parameters(), *module.buffers()]}
    recorder = _Recorder(dtype, weights)
    with torch.no_grad(), recorder:
        out = module(torch.empty(1, *input_size, device="meta"))
    if dtype == "int8":
        return recorder.costs + boundary_costs([math.prod(input_size)], [t.numel() for t in _tensors(out)])
    return recorder.costs


def zoo_op_costs(name: str, dtype: str = "fp32", **scaling: Any) -> tuple[list[OpCost], torch.nn.Module]:
    """Op costs of a zoo model built on the meta device (no weights), and the model (its ``input_size``)."""
    from edgecnn.models import create_model

    with torch.device("meta"):
        network = create_model(name, **scaling)
    return torch_op_costs(network, network.input_size, dtype), network
