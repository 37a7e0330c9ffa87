"""Static int8 quantization with ONNX Runtime: QDQ, per-channel int8 weights, uint8 activations.

Calibration runs here rather than inside ``quantize_static``: that function
does not pass the histogram size to its calibrator, so its 'entropy' method
silently yields the MinMax scales (128 bins). We run ORT's calibrator with the
recipe's bin count, then hand the ranges to ``quantize_static`` through its
calibration cache. For 'entropy' ORT's calibrator collects the histograms and
edgecnn's vectorised search (``analysis.entropy_range``) finds ORT's thresholds
in them, far faster than ORT's Python loops (benchmarks/entropy_search.py). Method ``auto`` merges
the three caches tensor by tensor, each activation taking the range whose uint8
quantization has the best SQNR on the calibration samples
(``analysis.calibration_choice``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecnn.analysis.calibration_choice import Choice, choose_ranges
from edgecnn.analysis.entropy_range import entropy_ranges
from edgecnn.config.recipes import AUTO, AUTO_CANDIDATES, CALIBRATION_METHODS, MEAN_MINMAX
from edgecnn.data.calibration import samples_within
from edgecnn.errors import CheckFailedError, UsageError, first_line
from edgecnn.pipeline.float_outputs import float_outputs
from edgecnn.pipeline.unshare import unshare_file
from edgecnn.pipeline.weight_spread import channel_axis
from edgecnn.runtime.outputs import Inputs, as_float, batch_size, padded, take

if TYPE_CHECKING:
    from edgecnn.pipeline.range_choice import FlipJudge

METHODS = CALIBRATION_METHODS  # what --method and the recipes take (one list, kept with the recipe schema)
CALIBRATED = AUTO_CANDIDATES  # the methods auto picks among, tensor by tensor
# Op types ORT's QDQ quantizer wraps in Q/DQ although ONNX Runtime has no int8 kernel for them: the op runs in float
# between a DequantizeLinear and a QuantizeLinear, and its parameters (a BatchNormalization's scale, bias, mean and
# variance) are stored in int8 and dequantized on every run, which costs time and rounds them for nothing. Measured
# on the digits DenseNet (62 BatchNormalizations after Concats): 0.503 → 0.422 ms a run, ORT, 1 thread
# (benchmarks/quant_peers.py). They stay float; their inputs and outputs are quantized as their neighbours need.
NO_INT8_KERNEL = ("BatchNormalization",)
NOTHING = "edgecnn:nothing"  # an op type no graph has: quantize_static quantizes no op of it


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    try:
        return {
            "minmax": CalibrationMethod.MinMax,
            MEAN_MINMAX: CalibrationMethod.MinMax,  # ORT's min-max calibrator with its moving_average option
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
            AUTO: CalibrationMethod.MinMax,  # the merged cache is tagged MinMax: its ranges are used as stored
        }[name]
    except KeyError:
        raise UsageError(f"unknown calibration method '{name}' (known: {', '.join(METHODS)})") from None


def calibrator_options(method: str, bins: int = 2048, percentile: float = 99.999) -> dict[str, Any]:
    """The calibrator's options: real histograms for entropy (``bins`` bins) and percentile; auto's are those of
    each method it chooses among."""
    if method == AUTO:
        return {m: calibrator_options(m, bins, percentile) for m in CALIBRATED}
    if method == "entropy":
        return {"num_bins": bins, "num_quantized_bins": 128}
    if method == "percentile":
        return {"num_bins": bins, "percentile": percentile, "symmetric": True}
    if (
        method == MEAN_MINMAX
    ):  # ORT averages each batch's min and max (a batch is one sample unless the graph's is fixed)
        return {"moving_average": True}
    return {}


def _entropy_data(calibrator: Any) -> Any:
    """What ``calibrator.compute_data()`` returns for ORT's entropy calibrator — per tensor the range, histogram and
    edges as ``TensorData(lowest, highest, hist, bins)`` — from the histograms it collected, with edgecnn's
    vectorised search for ORT's thresholds (``analysis.entropy_range``; ORT's own loops take ~0.5 s a tensor)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    collector = calibrator.collector
    if collector is None or not collector.histogram_dict:
        return calibrator.compute_data()  # ORT's own error for "nothing collected"
    return TensorsData(
        CalibrationMethod.Entropy, entropy_ranges(collector.histogram_dict, collector.num_quantized_bins)
    )


class _Captured(logging.Handler):
    """Collects the quantizer's log warnings (it logs to the root logger) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _capture_root_warnings() -> Iterator[_Captured]:
    root = logging.getLogger()
    handler, saved = _Captured(), root.handlers[:]
    root.handlers = [handler]
    try:
        yield handler
    finally:
        root.handlers = saved


class _Reader:
    """Feeds calibration samples in the model's static batch (1 when it is free; a short last batch is padded with
    copies of its last sample), reporting progress; one array per input name for a model with several inputs.
    With ``one_per_batch`` each batch is one sample and its copies, so that a batch's extremes are that sample's."""

    def __init__(
        self,
        input_names: list[str],
        images: Inputs,
        on_sample: Callable[[], None] | None = None,
        batch: int = 1,
        one_per_batch: bool = False,
    ):
        self.images = images if isinstance(images, dict) else {input_names[0]: images}
        if set(self.images) != set(input_names):
            raise UsageError(
                f"calibration samples are for inputs {', '.join(self.images)}; the model takes {', '.join(input_names)}"
            )
        self.on_sample, self.index, self.batch, self.step = on_sample, 0, batch, 1 if one_per_batch else batch

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self):
            return None
        part = take(as_float(self.images), slice(self.index, self.index + self.step))
        for _ in range(batch_size(part)):
            self.index += 1
            if self.on_sample:
                self.on_sample()
        return padded(part, self.batch)

    def rewind(self) -> None:
        self.index = 0

    def __len__(self) -> int:
        return batch_size(self.images)


def _preprocess(src: Path, dst: Path) -> str:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst))
        return "full"
    except Exception:  # symbolic shape inference fails on some graphs; ONNX shape inference is enough
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        return "without symbolic shapes"


def quantize_for_target(
    quantizer: Quantizer,
    dst: Path,
    method: str,
    recipe: Any,
    profile: Any,
    keep_float_nodes: tuple[str, ...],
    work: Path,
    judge: Callable[[Path], dict[str, Any]] | None = None,
    bar: Callable[[str, int], Callable[[], None]] | None = None,
    flips: FlipJudge | None = None,
    choose_ranges: bool = True,
) -> tuple[dict[str, Any], tuple[str, ...], Quantizer]:
    """Quantize as the export does for ``profile``, structure first and the numbers last: its reduce_range, the
    recipe's float op types and nodes, and of the op types the profile runs slower in int8 those that make the graph
    faster (``float_choice``: timed here when the target's kernels are this host's); with ``judge`` (the drift verdict
    of an int8 model) and such a per-channel target, per-tensor (or mixed: ``weight_spread``) weights when they are
    faster and as good at ``method``'s ranges (``granularity_choice``; ``bar`` makes the progress bar of the twins'
    calibration; with ``flips``, a ``range_choice.FlipJudge``, it also counts the moved images' top-1 changes); then,
    with ``flips``, ``choose_ranges`` (False when the method is pinned, as by ``--method``) and method minmax, the
    min-max, mean-of-extremes or auto ranges of that very graph, whichever keeps the most top-1 decisions
    (``range_choice``) — a twin whose chosen ranges are not min-max ships only if at them it changes no more of the
    moved images' top-1 than the per-channel graph does, else that graph ships with its own range choice. The
    shipped graph's record (``keep_float.slower_in_int8``, ``weights_choice`` and ``range_choice`` the choices), the
    op types kept float, and the quantizer that made it (``quantizer`` or its equalized twin, which makes that graph
    again; the other one is closed)."""
    from edgecnn.analysis.drift import HOST_KERNELS, int8_basis
    from edgecnn.pipeline.float_choice import choose_float_op_types

    base = tuple(recipe.keep_float_op_types)
    candidates = tuple(t for t in profile.int8_slower_op_types if t in quantizer.op_types and t not in base)
    made: dict[tuple[str, ...], tuple[Path, dict[str, Any]]] = {}  # the variants timed: the chosen one is not redone
    # Neither a variant's biases nor its weights' rounding or bit width (7 or 8) change its speed: a timed variant is
    # made without them, and the chosen one is shipped as made only when the export would make it that way.
    widened = profile.reduce_range and quantizer.widen_weights
    as_made = not (quantizer.bias_correct or quantizer.round_weights or widened)

    def timed(path: Path, op_types: tuple[str, ...]) -> None:
        info = quantizer.quantize(
            path, method, profile.reduce_range, op_types, keep_float_nodes,
            bias_correct=False, round_weights=False, widen_weights=False,
        )  # fmt: skip
        made[op_types] = (path, info)

    measure = int8_basis(profile.arch, profile.features) == HOST_KERNELS
    op_types, choice = choose_float_op_types(timed, base, candidates, work, measure)
    if op_types in made and as_made:
        shutil.copyfile(made[op_types][0], dst)
        info = made[op_types][1]
    else:
        info = quantizer.quantize(dst, method, profile.reduce_range, op_types, keep_float_nodes)
    choosing_ranges = flips is not None and choose_ranges and method == "minmax"
    weights, channel = None, None  # channel: the per-channel quantizer while its twin is on trial
    if judge is not None and weighs_weights(profile) and quantizer.per_channel:
        advance = bar("calibrating a per-tensor twin", batch_size(quantizer.images)) if bar else None
        kept = work / "per-channel.onnx"  # the per-channel graph, should the twin fail at the ranges chosen for it
        if choosing_ranges:  # only a range choice puts a twin on trial
            work.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dst, kept)
        twin_info, weights, twin = _per_tensor_twin(
            quantizer, dst, method, profile, op_types, keep_float_nodes, work, judge, advance, flips
        )
        if "tries" in weights:
            weights["ranges"] = method  # the ranges the graphs were judged at
        if twin is not None:
            channel, channel_info = quantizer, info
            info, quantizer = twin_info, twin
    range_record = None
    try:
        if choosing_ranges:
            info, range_record = _ranges_of_shipped(
                quantizer, dst, info, profile, op_types, keep_float_nodes, flips, work
            )
            ranges = range_record["chosen"]
            beaten = None
            if channel is not None and ranges != method:
                beaten = _twin_beaten_at(
                    channel, dst, ranges, weights, profile, op_types, keep_float_nodes, flips, work
                )
            if beaten is not None:  # the per-channel graph ships, with its own range choice
                quantizer.close()
                quantizer, channel = channel, None
                shutil.copyfile(kept, dst)
                info, range_record = _ranges_of_shipped(
                    quantizer, dst, channel_info, profile, op_types, keep_float_nodes, flips, work, {ranges: beaten}
                )
            if "not_chosen_because" not in range_record:
                range_record["judged_on"] = (
                    f"the graph that ships: {_granularity(quantizer, weights)} weights, float op types "
                    f"{', '.join(op_types) or 'none'}"
                )
    except BaseException:  # the twin on trial is closed here; the caller closes the quantizer it gave
        if channel is not None:
            quantizer.close()
        raise
    if channel is not None:
        channel.close()
    info["range_choice"] = range_record
    info["keep_float"]["slower_in_int8"] = choice
    if weights is not None:
        info["weights_choice"] = weights
    return info, op_types, quantizer


def _twin_beaten_at(
    channel: Quantizer,
    twin_graph: Path,
    method: str,
    weights: dict[str, Any],
    profile: Any,
    op_types: tuple[str, ...],
    keep_float_nodes: tuple[str, ...],
    flips: FlipJudge,
    work: Path,
) -> tuple[Path, dict[str, Any]] | None:
    """Try the twin at ``twin_graph`` against the per-channel graph at the same ``method``'s ranges (made by
    ``channel``), the moved images' top-1 changes counted into the weights choice's record (``at_chosen_ranges``).
    When the twin changes more, the record says it gives way and the per-channel graph made is returned (its path
    and info); else None."""
    path = work / f"per-channel-{method}.onnx"
    info = channel.quantize(path, method, profile.reduce_range, op_types, keep_float_nodes)
    twin_wrong, channel_wrong = len(flips(twin_graph)), len(flips(path))
    weights["at_chosen_ranges"] = {"ranges": method, "twin_wrong": twin_wrong, "per_channel_wrong": channel_wrong}
    if twin_wrong <= channel_wrong:
        return None
    weights["kept_per_channel_because"] = (
        f"{weights['chosen'].replace('_', ' ')}: at the {method} ranges the range choice took for it, more moved "
        f"images' top-1 changed ({twin_wrong} against {channel_wrong})"
    )
    weights["chosen"] = "per_channel"
    return path, info


def _granularity(quantizer: Quantizer, weights: dict[str, Any] | None) -> str:
    """The shipped graph's weights: per-channel, per-tensor or mixed."""
    if weights is not None:
        return weights["chosen"].replace("_", "-")
    return "per-channel" if quantizer.per_channel else "per-tensor"


def _ranges_of_shipped(
    quantizer: Quantizer,
    dst: Path,
    info: dict[str, Any],
    profile: Any,
    op_types: tuple[str, ...],
    keep_float_nodes: tuple[str, ...],
    flips: FlipJudge,
    work: Path,
    also_made: dict[str, tuple[Path, dict[str, Any]]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The range choice made on the graph at ``dst`` (made by ``quantizer`` with ``info``'s method, ``op_types`` float
    and its weights): that graph and those of ``also_made`` (by method: path and info) as they are, the others made
    like it; the chosen one is written over ``dst``. Its info and the choice's record — on failure the graph as it is,
    and why no choice was made."""
    from edgecnn.pipeline.range_choice import choose_range_estimator

    made = {info["method"]: (dst, info), **(also_made or {})}  # judged as they are
    infos: dict[str, dict[str, Any]] = {}

    def ranged(estimator: str, path: Path) -> None:
        if estimator in made:
            shutil.copyfile(made[estimator][0], path)
            infos[estimator] = made[estimator][1]
        else:
            infos[estimator] = quantizer.quantize(path, estimator, profile.reduce_range, op_types, keep_float_nodes)

    try:
        chosen, record, paths = choose_range_estimator(ranged, flips, work / "range-choice")
    except Exception as error:  # an optional choice: a graph it cannot judge keeps its ranges, and says why
        return info, {"chosen": info["method"], "not_chosen_because": f"range choice failed: {first_line(error)}"}
    if chosen != info["method"]:
        shutil.copyfile(paths[chosen], dst)
    return infos[chosen], record


def weighs_weights(profile: Any) -> bool:
    """Whether the export for ``profile`` weighs per-tensor weights against its per-channel ones (the weights
    choice: a per-channel target whose int8 kernels are this host's, so the twin is timed where it runs)."""
    from edgecnn.analysis.drift import HOST_KERNELS, int8_basis

    return bool(profile.per_channel) and int8_basis(profile.arch, profile.features) == HOST_KERNELS


def _per_tensor_twin(
    quantizer: Quantizer,
    dst: Path,
    method: str,
    profile: Any,
    op_types: tuple[str, ...],
    keep_float_nodes: tuple[str, ...],
    work: Path,
    judge: Callable[[Path], dict[str, Any]],
    on_sample: Callable[[], None] | None,
    flips: FlipJudge | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Quantizer | None]:
    """The equalized twins of the per-channel graph at ``dst`` — per tensor, and mixed (per channel in the layers
    whose spread is wide, ``weight_spread``) when some are: when one is chosen,
    it is written over ``dst`` and returned with its record and quantizer (which makes it again); else the choice's
    record and None (the twin closed)."""
    from edgecnn.pipeline.granularity_choice import choose_weight_granularity
    from edgecnn.pipeline.weight_spread import wide_spread_weights

    twin = None
    try:
        twin = Quantizer(
            quantizer.source, quantizer.images, quantizer.bins, quantizer.percentile, on_sample,
            per_channel=False, equalize=True, bias_correct=quantizer.bias_correct,
            share_concat_ranges=quantizer.share_concat_ranges, widen_weights=quantizer.widen_weights,
            round_weights=quantizer.round_weights,
        )  # fmt: skip
        work.mkdir(parents=True, exist_ok=True)
        paths = {"per_tensor": work / "per-tensor.onnx"}
        infos = {
            "per_tensor": twin.quantize(paths["per_tensor"], method, profile.reduce_range, op_types, keep_float_nodes)
        }
        wide = wide_spread_weights(twin.preprocessed)
        mixed = tuple(wide)  # the weights the mixed twin keeps per channel
        if mixed:
            paths["mixed"] = work / "mixed.onnx"
            infos["mixed"] = twin.quantize(
                paths["mixed"], method, profile.reduce_range, op_types, keep_float_nodes, per_channel_weights=mixed
            )
        chosen, record = choose_weight_granularity(dst, paths, judge, flips)
        if mixed:
            record["mixed_per_channel_spread_db"] = wide
    except Exception as error:  # an optional twin: a graph it cannot be made of keeps its per-channel one, and says why
        if twin is not None:
            twin.close()
        reason = first_line(error)
        return {}, {"chosen": "per_channel", "kept_per_channel_because": f"no per-tensor twin: {reason}"}, None
    except BaseException:
        if twin is not None:
            twin.close()
        raise
    if chosen == "per_channel":
        twin.close()
        return {}, record, None
    twin.per_channel_weights = mixed if chosen == "mixed" else ()
    shutil.copyfile(paths[chosen], dst)
    return infos[chosen], record, twin


def _op_types(present: set[str], keep_float_op_types: tuple[str, ...]) -> list[str] | None:
    """``op_types_to_quantize`` for ``quantize_static``: None (ORT's default, every op type it has a quantizer for)
    when nothing is kept float, else those of the graph's op types (``present``) less the kept ones."""
    if not keep_float_op_types:
        return None
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    chosen = (present & (set(QDQRegistry) | set(QLinearOpsRegistry))) - set(keep_float_op_types)
    return sorted(chosen) or [NOTHING]  # ORT takes an empty list for "every op type"


class Quantizer:
    """Pre-processes an fp32 model once, calibrates once per method, then quantizes as often as asked.

    The mixed-precision search re-quantizes with different layers kept in float;
    reusing the pre-processed graph and the calibrated ranges makes each try cost
    only the quantizer itself.
    """

    suffix = ".onnx"
    remedy_methods: tuple[str, ...] = METHODS  # what the drift repair tries (the baseline's own is skipped)
    remedy_techniques: tuple[str, ...] = ("bias_correct", "round_weights")  # quantize()'s switches the repair tries

    def __init__(
        self,
        fp32_path: Path,
        images: np.ndarray,
        bins: int = 2048,
        percentile: float = 99.999,
        on_sample: Callable[[], None] | None = None,
        per_channel: bool = True,
        equalize: bool = False,
        bias_correct: bool = False,
        share_concat_ranges: bool = True,
        widen_weights: bool = True,
        round_weights: bool = False,
    ):
        import onnx

        if batch_size(images) == 0:
            raise UsageError("no calibration samples")
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecnn-quant-")
        self.work = Path(self._tmp.name)
        self.source = fp32_path
        self.images, self.bins, self.percentile, self.on_sample = images, bins, percentile, on_sample
        self.preprocessed = self.work / "preprocessed.onnx"
        with _capture_root_warnings() as log:
            self.preprocessing = _preprocess(fp32_path, self.preprocessed)
        self.warnings = list(log.messages)
        self.unshared = unshare_file(self.preprocessed)  # float readers of a merged constant keep a float copy
        self.per_channel, self.bias_correct, self.round_weights = per_channel, bias_correct, round_weights
        self.per_channel_weights: tuple[str, ...] = ()  # with per-tensor weights, those kept per channel (mixed)
        self._moments: Any = None  # weight_rounding.Moments, measured once (or the reason it could not be)
        self._rounded: dict[tuple[bool, bool, tuple[str, ...]], Any] = {}  # a weight_rounding.Rounding per grid
        self.share_concat_ranges = share_concat_ranges  # one range per Concat group (``concat_ranges``)
        self.widen_weights = widen_weights  # with reduce_range: 8-bit weights where u8s8 does not saturate
        self._shared: dict[str, tuple[Path, dict[str, Any]]] = {}
        self.equalization: dict[str, Any] | None = None
        if equalize:  # before calibration: the ranges are the equalized graph's
            from edgecnn.pipeline.equalize import equalize_file

            self.equalization = equalize_file(self.preprocessed, images)
        model = onnx.load(str(self.preprocessed))
        initializers = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        self.input_names = [i.name for i in inputs]
        first = inputs[0].type.tensor_type.shape.dim
        self.batch = first[0].dim_value if first and first[0].HasField("dim_value") and first[0].dim_value > 0 else 1
        self.node_names = [n.name for n in model.graph.node]
        self.op_types = {n.op_type for n in model.graph.node}
        self._weights = [(n.name, n.op_type, n.input[1]) for n in model.graph.node if len(n.input) > 1]
        axes = {n.input[1]: channel_axis(n) for n in model.graph.node if len(n.input) > 1}
        self._channel_axes = {weight: axis for weight, axis in axes.items() if axis is not None}  # per-channel-able
        self.no_int8_kernel = tuple(n.name for n in model.graph.node if n.op_type in NO_INT8_KERNEL and n.name)
        self._ranges: dict[str, Path] = {}
        self.choice: Choice | None = None  # auto's per-tensor choice, once made

    def ranges(self, method: str) -> Path:
        """The calibration cache (tensor ranges) for ``method``, computed on first use."""
        from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

        from edgecnn.runtime.loader import ort_session

        if method == AUTO:
            return self._auto_ranges()
        if method not in self._ranges:
            calibrator = create_calibrator(
                self.preprocessed,
                None,
                augmented_model_path=str(self.work / f"augmented-{method}.onnx"),
                calibrate_method=_method(method),
                extra_options=calibrator_options(method, self.bins, self.percentile),
            )
            # ORT's calibrator runs on every core and spins while it waits: on a busy host that takes four times
            # as long as one thread. The same session (no graph optimization) on one thread computes the same.
            calibrator.infer_session = ort_session(calibrator.augmented_model_path, threads=1, optimization="disable")
            # The histogram calibrators print their progress: stdout is for --json, so it goes nowhere.
            with _capture_root_warnings() as log, contextlib.redirect_stdout(io.StringIO()):
                try:
                    # mean-of-extremes averages each batch's: a static batch above 1 gets one sample a batch
                    per_sample = method == MEAN_MINMAX
                    reader = _Reader(self.input_names, self.images, self.on_sample, self.batch, per_sample)
                    calibrator.collect_data(reader)
                    ranges = _entropy_data(calibrator) if method == "entropy" else calibrator.compute_data()
                except (ValueError, RuntimeError) as error:  # numpy's histogram, ORT's session: deep inside
                    reason = first_line(error)
                    raise CheckFailedError(f"int8 calibration by {method} failed: {reason}") from None
            self.warnings += log.messages
            del calibrator
            self.on_sample = None  # the progress bar is for the first calibration
            if method == MEAN_MINMAX:
                ranges = self._inputs_by_minmax(ranges)
            self._ranges[method] = self.work / f"ranges-{method}.json"
            save_tensors_data(ranges, self._ranges[method])
        return self._ranges[method]

    def _inputs_by_minmax(self, ranges: Any) -> Any:
        """``ranges`` with each graph input's range replaced by its min-max one: an input's range is the data's
        own (normalised pixels), which an average of extremes would clip."""
        from onnxruntime.quantization.calibrate import load_tensors_data

        minmax = load_tensors_data(self.ranges("minmax"))
        for name in self.input_names:
            if name in ranges and name in minmax:
                ranges[name] = minmax[name]
        return ranges

    def _auto_ranges(self) -> Path:
        """The cache of method auto: per tensor, the range of the calibrated method with the best SQNR."""
        from onnxruntime.quantization.calibrate import TensorData, TensorsData, load_tensors_data, save_tensors_data

        if AUTO not in self._ranges:
            caches = {m: load_tensors_data(self.ranges(m)) for m in CALIBRATED}
            candidates = {m: {t: d.range_value for t, d in cache.items()} for m, cache in caches.items()}
            self.choice = choose_ranges(self.preprocessed, candidates, self.images)
            first = caches[CALIBRATED[0]]  # a tensor without every method's range keeps the first's
            merged = {t: caches[self.choice.chosen.get(t, CALIBRATED[0])][t].range_value for t in first}
            self._ranges[AUTO] = self.work / f"ranges-{AUTO}.json"
            data = {t: TensorData(lowest=low, highest=high) for t, (low, high) in merged.items()}
            save_tensors_data(TensorsData(_method(AUTO), data), self._ranges[AUTO])
        return self._ranges[AUTO]

    def _quantize_ranges(self, method: str) -> tuple[Path, dict[str, Any] | None]:
        """The cache ``quantize`` uses for ``method`` — its ranges, with one per alike Concat group unless
        ``share_concat_ranges`` is off — and what was shared (None: nothing was tried)."""
        if not self.share_concat_ranges:
            return self.ranges(method), None
        if method not in self._shared:
            from edgecnn.pipeline.concat_ranges import share_concat_ranges

            path = self.work / f"ranges-{method}-concat-shared.json"
            self._shared[method] = path, share_concat_ranges(self.preprocessed, self.ranges(method), path)
        return self._shared[method]

    def calibration(self, method: str) -> dict[str, Any] | None:
        """How ``method`` calibrated per tensor: for auto (once made) the tensors per method, the mean SQNRs and
        every tensor's method; None for a single method."""
        return self.choice.to_dict(CALIBRATED) if method == AUTO and self.choice is not None else None

    def quantize(
        self,
        dst: Path,
        method: str = "minmax",
        reduce_range: bool = False,
        keep_float_op_types: tuple[str, ...] = (),
        keep_float_nodes: tuple[str, ...] = (),
        per_channel: bool | None = None,
        bias_correct: bool | None = None,
        round_weights: bool | None = None,
        per_channel_weights: tuple[str, ...] | None = None,
        widen_weights: bool | None = None,
    ) -> dict[str, Any]:
        """Write the QDQ int8 model to ``dst`` (int8 weights per output channel, or per tensor without
        ``per_channel`` — but for the weight initializers ``per_channel_weights`` names, kept per channel (a mixed
        graph); uint8 activations; biases corrected with ``bias_correct``: all by
        default the quantizer's). With ``reduce_range`` the weights are 7-bit only in the layers whose u8s8 pair
        sums saturate on the first calibration samples, 8-bit elsewhere (``weight_bits``; unless ``widen_weights``
        is off: 7-bit in every layer)."""
        per_channel = self.per_channel if per_channel is None else per_channel
        bias_correct = self.bias_correct if bias_correct is None else bias_correct
        round_weights = self.round_weights if round_weights is None else round_weights
        widen_weights = self.widen_weights if widen_weights is None else widen_weights
        mixed = () if per_channel else self.per_channel_weights if per_channel_weights is None else per_channel_weights
        import onnx
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        missing = [n for n in keep_float_nodes if n not in self.node_names]
        if missing:
            raise UsageError(f"nodes to keep in float not in the graph: {', '.join(missing)}")
        op_types = _op_types(self.op_types, keep_float_op_types)
        cache, shared = self._quantize_ranges(method)
        overrides = {w: [{"axis": self._channel_axes[w]}] for w in mixed if w in self._channel_axes}
        extra = {"TensorQuantOverrides": overrides} if overrides else {}
        floated: list[str] = []  # the outputs the last run left float

        def run(source: Path) -> list[str]:
            with _capture_root_warnings() as log:
                try:
                    quantize_static(
                        str(source),
                        str(dst),
                        calibration_data_reader=None,
                        quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=op_types,
                        per_channel=per_channel,
                        reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        nodes_to_exclude=[*keep_float_nodes, *self.no_int8_kernel] or None,
                        calibrate_method=_method(method),
                        calibration_cache_path=str(cache),
                        extra_options=extra or None,
                    )
                except Exception as error:  # ORT's quantizer raises bare exceptions for graphs it cannot handle
                    message = str(error).strip().splitlines()[0][:300]
                    raise CheckFailedError(f"int8 quantization failed: {message}") from None
            model = onnx.load(str(dst))
            floated[:] = float_outputs(model)  # logits from a Gemm: int8 product, float result, no 8-bit rounding
            if floated:
                onnx.save_model(model, str(dst))
            return log.messages

        excluded = {*keep_float_nodes, *self.no_int8_kernel}
        source, rounding = self.preprocessed, None
        if round_weights:
            try:
                source, rounding = self._weights_rounded(
                    per_channel, reduce_range, keep_float_op_types, excluded, mixed
                )
            except Exception as error:  # a graph it cannot measure keeps the nearest rounding, and says so
                rounding = {"layers": 0, "skipped": f"weight rounding failed: {first_line(error)}"}
        messages = run(source)
        correction = None
        if bias_correct:  # the shift each layer adds, measured on the calibration samples, out of its bias
            from edgecnn.lowering.linear_mean import CORRECTION_PIXELS
            from edgecnn.pipeline.bias_correction import correct_biases, layer_shifts

            corrected = self.work / "bias-corrected.onnx"
            measured = take(self.images, slice(0, samples_within(self.images, CORRECTION_PIXELS)))
            try:
                shifts = layer_shifts(self.preprocessed, dst, measured)
                correction = correct_biases(source, shifts, corrected, batch_size(measured))
            except Exception as error:  # a graph the correction cannot measure keeps the uncorrected int8, and says so
                correction = {"layers": 0, "skipped": f"bias correction failed: {first_line(error)}"}
            else:
                messages += run(corrected)
        weight_bits = None
        if reduce_range and widen_weights:  # 7-bit weights only in the layers whose u8s8 sums saturate
            from edgecnn.pipeline.weight_bits import widen_where_safe

            def eight_bit(path: Path) -> None:
                self.quantize(
                    path, method, False, keep_float_op_types, keep_float_nodes, per_channel, bias_correct,
                    round_weights, mixed,
                )  # fmt: skip

            try:
                weight_bits = widen_where_safe(dst, eight_bit, self.work, self.images)
            except Exception as error:  # optional: the 7-bit graph at dst stands, and the record says why
                reason = first_line(error)
                weight_bits = {"seven_bit": "all", "kept_because": f"8-bit weights not checked: {reason}"}
        quantized = onnx.load(str(dst))
        return {
            "method": method,
            "calibrator_options": calibrator_options(method, self.bins, self.percentile),
            "calibration": self.calibration(method),
            "samples": batch_size(self.images),
            "reduce_range": reduce_range,
            "weight_bits": weight_bits,
            "per_channel": per_channel,
            **({"per_channel_weights": list(mixed)} if mixed else {}),
            "format": "QDQ",
            "weights": "int8",
            "activations": "uint8",
            "preprocessing": self.preprocessing,
            "equalization": self.equalization,
            "concat_shared_ranges": shared,
            "keep_float": {"op_types": list(keep_float_op_types), "nodes": list(keep_float_nodes)},
            "float_without_int8_kernel": len(self.no_int8_kernel),
            "constants_unshared": self.unshared,
            "quantize_linear_nodes": sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node),
            "float_outputs": floated,
            "bias_correction": correction,
            "weight_rounding": rounding,
            "quantizer_warnings": sorted(set(self.warnings + messages))[:20],
        }

    def _weights_rounded(
        self,
        per_channel: bool,
        reduce_range: bool,
        keep_float_op_types: tuple[str, ...],
        excluded: set[str],
        mixed: tuple[str, ...] = (),
    ) -> tuple[Path, dict[str, Any]]:
        """The pre-processed graph with the weights of the layers this quantization makes int8 rounded with error
        compensation (``weight_rounding``; computed once per grid — ``mixed``: the weights on a per-channel one in a
        per-tensor graph), and what the rounding did."""
        from edgecnn.lowering.linear_mean import CORRECTION_PIXELS
        from edgecnn.pipeline.weight_rounding import measure_moments, round_on_grid, with_weights

        if self._moments is None:  # the same for every grid; a failure is not tried again
            measured = take(self.images, slice(0, samples_within(self.images, CORRECTION_PIXELS)))
            try:
                self._moments = measure_moments(self.preprocessed, measured)
            except Exception as error:
                self._moments = f"weight rounding failed: {first_line(error)}"
        if isinstance(self._moments, str):
            return self.preprocessed, {"layers": 0, "skipped": self._moments}
        key = (per_channel, reduce_range, mixed)
        if key not in self._rounded:
            self._rounded[key] = round_on_grid(self._moments, per_channel, 64 if reduce_range else 127, set(mixed))
        rounding = self._rounded[key]
        chosen = {
            weight: rounding.weights[weight]
            for name, op_type, weight in self._weights
            if weight in rounding.weights and op_type not in keep_float_op_types and name not in excluded
        }
        if not chosen:
            return self.preprocessed, rounding.record(set())
        path = self.work / "weights-rounded.onnx"
        with_weights(self.preprocessed, chosen, path)
        return path, rounding.record(set(chosen))

    def close(self) -> None:
        """Remove the working files."""
        self._tmp.cleanup()

    def __enter__(self) -> Quantizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quantize(
    fp32_path: Path,
    dst: Path,
    images: np.ndarray,
    method: str = "minmax",
    reduce_range: bool = False,
    keep_float_op_types: tuple[str, ...] = (),
    keep_float_nodes: tuple[str, ...] = (),
    bins: int = 2048,
    percentile: float = 99.999,
    on_sample: Callable[[], None] | None = None,
    per_channel: bool = True,
    equalize: bool = False,
) -> dict[str, Any]:
    """Calibrate on ``images`` (float32 N×C×H×W) and write the QDQ int8 model to ``dst``."""
    _method(method)
    with Quantizer(fp32_path, images, bins, percentile, on_sample, per_channel, equalize) as quantizer:
        return quantizer.quantize(dst, method, reduce_range, keep_float_op_types, keep_float_nodes)
