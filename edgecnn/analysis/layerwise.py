"""Where int8 goes wrong: SQNR and cosine of every quantized tensor of a QDQ model against its fp32 twin."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import mean_cosine, sqnr_db
from edgecnn.runtime.outputs import Inputs, as_float, batch_size, padded, take

SQNR_CAP_DB = 100.0  # an exact tensor's SQNR is infinite; cap it so differences stay finite


@dataclass(frozen=True)
class LayerError:
    """One layer, ending at a quantized activation: how far it is from fp32, and how much this layer added.

    A layer is the quantized tensor's producer plus the float-only nodes
    between it and the previous quantized tensors (a Conv and the Relu the
    quantizer fused with it, say): keeping a layer in float keeps all of them.
    """

    tensor: str
    node: str
    op_type: str
    sqnr_db: float
    cosine: float
    added_noise_db: float  # SQNR of its quantized inputs minus SQNR of its output
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else v) for k, v in asdict(self).items()}


def quantized_activations(qdq_model: Any) -> dict[str, str]:
    """Map each quantized activation (by its fp32 name) to the output of its DequantizeLinear."""
    initializers = {i.name for i in qdq_model.graph.initializer}
    dequant_of = {n.input[0]: n.output[0] for n in qdq_model.graph.node if n.op_type == "DequantizeLinear"}
    mapping = {}
    for node in qdq_model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in initializers and node.output[0] in dequant_of:
            mapping[node.input[0]] = dequant_of[node.output[0]]
    return mapping


def _with_outputs(model: Any, names: list[str], path: Path) -> Path:
    import onnx

    existing = {o.name for o in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    onnx.save_model(model, str(path))
    return path


def _feed(session: Any, images: Inputs) -> dict[str, np.ndarray]:
    """The samples by the session's input names (one array: its first input)."""
    return dict(images) if isinstance(images, dict) else {session.get_inputs()[0].name: images}


def _batches(path: Path, names: list[str], images: Inputs) -> Iterator[dict[str, np.ndarray]]:
    """The tensors ``names`` (graph outputs of the model at ``path``) batch by batch over every sample — the
    model's static batch, else one at a time, the last one without its padding — with optimizations off."""
    from edgecnn.runtime.loader import ort_session

    session = ort_session(path, optimization="disable")
    feed = _feed(session, as_float(images))
    first = session.get_inputs()[0].shape[0]
    size = first if isinstance(first, int) and first > 0 else 1
    count = batch_size(images)
    for i in range(0, count, size):
        outs = session.run(names, padded(take(feed, slice(i, i + size)), size))
        yield {name: value[: count - i] for name, value in zip(names, outs, strict=True)}


def _run_all(path: Path, names: list[str], images: Inputs) -> dict[str, np.ndarray]:
    """The tensors ``names`` (graph outputs of the model at ``path``) on every sample, with optimizations off."""
    collected: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for batch in _batches(path, names, images):
        for name, value in batch.items():
            collected[name].append(value)
    return {n: np.concatenate(v) for n, v in collected.items()}


def tensor_batches(model_path: Path, names: list[str], images: Inputs) -> Iterator[dict[str, np.ndarray]]:
    """Any tensors ``names`` of the ONNX model at ``model_path``, batch by batch over every sample (graph
    optimizations off): for figures that stream over the samples rather than hold every activation."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="edgecnn-tensors-") as tmp:
        yield from _batches(_with_outputs(onnx.load(str(model_path)), names, Path(tmp) / "m.onnx"), names, images)


def layer_errors(fp32_path: Path, int8_path: Path, images: Inputs) -> list[LayerError]:
    """Every quantized activation of ``int8_path`` against the same tensor of ``fp32_path``, worst SQNR first.

    Runs the exact QDQ arithmetic (graph optimizations off): the error the
    quantization itself makes, not this host's kernels.
    """
    import onnx

    fp32, int8 = onnx.load(str(fp32_path)), onnx.load(str(int8_path))
    producers = {o: n for n in fp32.graph.node for o in n.output}
    graph_inputs = dict(images) if isinstance(images, dict) else {fp32.graph.input[0].name: images}
    mapping = {t: d for t, d in quantized_activations(int8).items() if t in producers or t in graph_inputs}
    tensors = sorted(mapping)
    with tempfile.TemporaryDirectory(prefix="edgecnn-layers-") as tmp:
        ref = _run_all(
            _with_outputs(fp32, [t for t in tensors if t in producers], Path(tmp) / "f.onnx"),
            [t for t in tensors if t in producers],
            images,
        )
        got = _run_all(
            _with_outputs(int8, [mapping[t] for t in tensors], Path(tmp) / "q.onnx"),
            [mapping[t] for t in tensors],
            images,
        )
    ref.update({name: values for name, values in graph_inputs.items() if name in mapping})
    sqnr = {t: min(SQNR_CAP_DB, sqnr_db(ref[t], got[mapping[t]])) for t in tensors if t in ref}
    initializers = {i.name for i in fp32.graph.initializer}
    errors = []
    for tensor in tensors:
        node = producers.get(tensor)
        if node is None:
            continue
        chain, upstream = _layer(node, producers, sqnr, initializers)
        added = (min(upstream) if upstream else SQNR_CAP_DB) - sqnr[tensor]
        errors.append(
            LayerError(
                tensor,
                node.name,
                node.op_type,
                float(sqnr[tensor]),
                mean_cosine(ref[tensor], got[mapping[tensor]]),
                float(added),
                chain,
            )
        )
    return sorted(errors, key=lambda e: e.sqnr_db)


def _layer(
    node: Any, producers: dict[str, Any], sqnr: dict[str, float], initializers: set[str]
) -> tuple[tuple[str, ...], list[float]]:
    """The nodes from ``node`` back to the previous quantized tensors, and those tensors' SQNRs."""
    chain, upstream, stack, seen = [], [], [node], set()
    while stack:
        current = stack.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        chain.append(current.name)
        for name in current.input:
            if not name or name in initializers:
                continue
            if name in sqnr:
                upstream.append(sqnr[name])
            elif name in producers:
                stack.append(producers[name])
    return tuple(chain), upstream


def rank_for_float(errors: list[LayerError]) -> list[LayerError]:
    """Layers in the order to keep them in float: the ones that add the most noise first."""
    return sorted(errors, key=lambda e: -e.added_noise_db)
