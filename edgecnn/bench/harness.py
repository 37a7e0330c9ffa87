#!/usr/bin/env python3
"""Time a model on this machine and print JSON: ``python harness.py MODEL [MODEL ...] [options]``.

A standalone file: Python >= 3.8, numpy and one runtime (``ai_edge_litert`` or ``tflite_runtime`` for
``.tflite``, ``onnxruntime`` for ``.onnx``/``.ort``). It imports nothing else, so it can be copied to a
device and run there. It loads the artifact, feeds random inputs of the right shape and dtype (int8/uint8
TFLite inputs are quantized with the tensor's scale and zero point) or a ``.npy``, warms up, times
``--runs`` runs or ``--budget-s`` seconds, and prints the latency percentiles, the load time, the peak
RSS and a description of the device. A failure prints ``{"error": "..."}`` and exits 1.
"""

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

try:
    import numpy as np
except ImportError:  # reported as a clean error by measure()
    np = None  # type: ignore[assignment]

HARNESS_VERSION = 2  # 2: a .tflite result says how XNNPACK split it ("xnnpack")
FORMATS = {".onnx": "onnx", ".ort": "ort", ".tflite": "tflite"}
DEFAULT_RUNS = 100
DEFAULT_WARMUP = 10

# ONNX Runtime's input type strings → numpy dtypes.
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


class HarnessError(Exception):
    """A failure the harness reports as one line of JSON."""


# --- the device -------------------------------------------------------------------------------------


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read().strip("\x00\n ")
    except OSError:
        return None


def cpuinfo(text: Optional[str] = None) -> Dict[str, str]:
    """The first value of every key of /proc/cpuinfo (``text``, read when None; empty off Linux)."""
    fields: Dict[str, str] = {}
    for line in ((_read("/proc/cpuinfo") or "") if text is None else text).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _cpu_model(info: Dict[str, str]) -> str:
    for key in ("model name", "hardware", "cpu model"):
        if info.get(key):
            return info[key]
    if info.get("cpu implementer"):
        return "Arm implementer {} part {}".format(info["cpu implementer"], info.get("cpu part", "?"))
    return platform.processor() or platform.machine() or "unknown"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _khz_to_mhz(text: Optional[str]) -> Optional[float]:
    try:
        return round(int(text or "") / 1000.0, 1)
    except ValueError:
        return None


def device_info() -> Dict[str, Any]:
    """CPU model, cores, machine, OS, board, CPU governor and frequencies (None where unreadable), Python."""
    info = cpuinfo()
    board = info.get("model")  # a board name on a Raspberry Pi, a model number on x86
    cpufreq = "/sys/devices/system/cpu/cpu0/cpufreq/"
    cur_mhz = _khz_to_mhz(_read(cpufreq + "scaling_cur_freq"))
    if cur_mhz is None and info.get("cpu mhz"):
        try:
            cur_mhz = round(float(info["cpu mhz"]), 1)
        except ValueError:
            cur_mhz = None
    return {
        "cpu": _cpu_model(info),
        "board": _read("/proc/device-tree/model") or (board if board and not board.isdigit() else None),
        "cores": _cores(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "hostname": platform.node(),
        "governor": _read(cpufreq + "scaling_governor"),
        "freq_mhz": cur_mhz,
        "max_freq_mhz": _khz_to_mhz(_read(cpufreq + "cpuinfo_max_freq")),
        "python": platform.python_version(),
        "numpy": getattr(np, "__version__", None),
    }


def peak_rss_mb() -> Optional[float]:
    """Peak resident set size of this process in MiB, or None where the platform does not say.

    Linux: VmHWM of /proc/self/status, which starts afresh at exec (``ru_maxrss`` keeps the parent's peak
    across fork and exec, so a harness started by a big process would report the parent's memory).
    """
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            try:
                return round(int(line.split()[1]) / 1024.0, 1)
            except (IndexError, ValueError):
                break
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0), 1)


def _dist_version(*names: str) -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:
        return "unknown"
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


# --- inputs ----------------------------------------------------------------------------------------


MAX_INPUT_BYTES = 2**31  # 2 GiB for one input tensor: beyond any edge model's image


def _static_shape(shape: Any) -> List[int]:
    """A concrete shape: dynamic dimensions (None, names, -1) become 1."""
    return [int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else 1 for d in shape]


def _quantize(x: Any, dtype: Any, scale: float, zero_point: int) -> Any:
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def _random_input(shape: List[int], dtype: Any, quantization: Tuple[float, int], rng: Any) -> Any:
    """A random tensor; float data is N(0, 1), quantized integer data is that normal sample quantized."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    scale, zero_point = quantization
    if dtype.kind in "iu" and scale:
        return _quantize(rng.standard_normal(shape).astype(np.float32), dtype, scale, zero_point)
    if dtype == np.int8 or dtype == np.uint8:
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    return rng.integers(0, 2, size=shape).astype(dtype)  # ids, indices: small values stay in range


def _from_file(
    data: Any, name: str, shape: List[int], dtype: Any, quantization: Tuple[float, int]
) -> Tuple[Any, Optional[str]]:
    """Fit a user array to an input: add a batch axis, NCHW → NHWC, quantize floats for integer inputs."""
    note = None
    if data.ndim == len(shape) - 1:  # one sample without its batch axis
        data = data[None]
    if list(data.shape) != shape and data.ndim == 4 and list(data.transpose(0, 2, 3, 1).shape) == shape:
        data, note = data.transpose(0, 2, 3, 1), "transposed NCHW to NHWC"
    if list(data.shape) != shape:
        raise HarnessError(f"input '{name}' has shape {shape}; the file holds {list(data.shape)}")
    dtype = np.dtype(dtype)
    if data.dtype.kind not in "biuf":
        raise HarnessError(f"input '{name}' is {dtype}; the file holds {data.dtype}, not numbers")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise HarnessError(f"input '{name}': the file holds NaN or infinite values; time the model on real numbers")
    if dtype.kind == "f" and data.dtype.kind != "f":  # int64 pixels fed as float: cast silently, a wrong input
        raise HarnessError(f"input '{name}' is {dtype}; the file holds {data.dtype}: save it as {dtype}")
    scale, zero_point = quantization
    if dtype.kind in "iu" and data.dtype.kind == "f":
        if not scale:
            raise HarnessError(f"input '{name}' is {dtype} without quantization; the file holds floats")
        data = _quantize(data, dtype, scale, zero_point)
        note = (note + ", " if note else "") + f"quantized (scale {scale:g}, zero point {zero_point})"
    return np.ascontiguousarray(data.astype(dtype, copy=False)), note


def _build_inputs(specs: List[Dict[str, Any]], input_file: Optional[str], seed: int) -> List[Any]:
    """One array per input spec: from ``input_file`` for the first input, random otherwise."""
    rng = np.random.default_rng(seed)
    arrays = []
    for i, spec in enumerate(specs):
        quantization = spec.get("quantization") or (0.0, 0)
        if input_file and i == 0:
            try:
                data = np.load(input_file, allow_pickle=False)
            except (OSError, ValueError, EOFError) as error:  # EOFError: an empty or cut file
                raise HarnessError(
                    f"cannot read input {input_file}: {_first_line(error)}; give an array saved with numpy.save"
                ) from None
            if spec.get("free") and data.ndim == len(spec["shape"]):  # the file gives the free sizes
                spec["shape"] = [data.shape[j] if j in spec["free"] else d for j, d in enumerate(spec["shape"])]
            array, note = _from_file(data, spec["name"], spec["shape"], spec["dtype"], quantization)
            spec["source"] = os.path.basename(input_file) + (f" ({note})" if note else "")
        else:
            if spec.get("free"):
                axes = ", ".join("axis " + str(j) for j in spec["free"])
                raise HarnessError(
                    f"input '{spec['name']}' has free dimensions ({axes}): give --input FILE.npy of the size to time"
                )
            size = int(np.prod(spec["shape"])) * np.dtype(spec["dtype"]).itemsize
            if size > MAX_INPUT_BYTES:
                raise HarnessError(
                    f"input '{spec['name']}' of shape {spec['shape']} needs {size / 2**30:.0f} GiB: "
                    "no device runs that; check the model's input size"
                )
            array = _random_input(spec["shape"], spec["dtype"], quantization, rng)
            spec["source"] = "random"
        arrays.append(array)
    return arrays


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return (lines[0] if lines else f"{type(error).__name__} without a message (not a valid model?)")[:400]


# --- runtimes --------------------------------------------------------------------------------------


class Loaded:
    """A loaded model: its runtime, delegate, input specs, and a function that runs it once."""

    def __init__(self, runtime: str, version: str, delegate: str, specs: List[Dict[str, Any]]) -> None:
        self.runtime, self.version, self.delegate, self.specs = runtime, version, delegate, specs
        self.prepare: Callable[[List[Any]], None] = lambda arrays: None
        self.run: Callable[[], Any] = lambda: None
        self.xnnpack: Optional[Dict[str, Any]] = None  # a .tflite's XNNPACK split (xnnpack_delegation)


def _load_ort(path: str, label: str, threads: int) -> Loaded:
    try:
        import onnxruntime as ort
    except ImportError:
        raise HarnessError(f"onnxruntime is not installed for {sys.executable}; fix: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own exception types for corrupt or unsupported models
        raise HarnessError(f"ONNX Runtime {ort.__version__} cannot load {label}: {_first_line(error)}") from None
    specs = []
    for node in session.get_inputs():
        if node.type not in ORT_DTYPES:
            raise HarnessError(f"input '{node.name}' of {label} has type {node.type}, which the harness cannot feed")
        free = [i for i, d in enumerate(node.shape) if i > 0 and not (isinstance(d, int) and d > 0)]
        spec = {"name": node.name, "shape": _static_shape(node.shape), "dtype": ORT_DTYPES[node.type]}
        specs.append(dict(spec, free=free) if free else spec)
    loaded = Loaded("onnxruntime", ort.__version__, "none", specs)
    feeds: Dict[str, Any] = {}

    def prepare(arrays: List[Any]) -> None:
        feeds.update({spec["name"]: array for spec, array in zip(specs, arrays)})

    loaded.prepare = prepare
    loaded.run = lambda: session.run(None, feeds)
    return loaded


def _tflite_interpreter() -> Tuple[Any, Any, str, str]:
    """The Interpreter class, OpResolverType (or None), the runtime name and its version."""
    try:
        from ai_edge_litert import interpreter as module

        name, version = "ai_edge_litert", _dist_version("ai-edge-litert", "ai_edge_litert")
    except ImportError:  # older devices have tflite-runtime
        try:
            from tflite_runtime import interpreter as module  # type: ignore[no-redef]

            name, version = "tflite_runtime", _dist_version("tflite-runtime", "tflite_runtime")
        except ImportError:
            raise HarnessError(
                f"no TFLite runtime is installed for {sys.executable}; fix: pip install ai-edge-litert "
                "(or tflite-runtime on older devices)"
            ) from None
    return module.Interpreter, getattr(module, "OpResolverType", None), name, version


def xnnpack_delegation(interpreter: Any) -> Optional[Dict[str, Any]]:
    """How XNNPACK split the allocated LiteRT ``interpreter``'s graph: ``partitions``, ``nodes`` and the op types
    (with counts) of the nodes it ``undelegated`` (left to LiteRT's kernels); None when the runtime does not list
    its nodes.

    LiteRT lists a delegated partition as one DELEGATE node beside the nodes it replaced, and does not say which
    those are. A node is left to LiteRT when no output of it is a partition's output and an output of it that is
    read at all (a graph output, or an input of a node or partition) is a graph output, read by a partition or read
    by another node left to LiteRT; a node none of whose outputs is read is left when it reads a partition's
    output. Nodes are in execution order, so one pass from the last decides each node after every node that reads
    it. Only the main subgraph is seen (a control-flow node counts, its body not).
    """
    try:
        ops = interpreter._get_ops_details()  # private, but the only view of the delegated graph
        partitions = [op for op in ops if op["op_name"] == "DELEGATE"]
        nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
        made_by_partition = {t for op in partitions for t in op["outputs"]}
        read_by_partition = {t for op in partitions for t in op["inputs"]}
        graph_outputs = {detail["index"] for detail in interpreter.get_output_details()}
        readers: Dict[int, List[int]] = {}
        for op in nodes:
            for tensor in op["inputs"]:
                readers.setdefault(tensor, []).append(op["index"])
        left = set()
        for op in reversed(nodes):
            outputs = [t for t in op["outputs"] if t >= 0]
            if any(t in made_by_partition for t in outputs):
                continue
            read = [t for t in outputs if t in graph_outputs or t in read_by_partition or t in readers]
            if not read:  # unread (a dead node, or a SPLIT's unused outputs only): outside if it reads a partition
                if any(t in made_by_partition for t in op["inputs"]):
                    left.add(op["index"])
            elif any(
                t in graph_outputs or t in read_by_partition or left.intersection(readers.get(t, ())) for t in read
            ):
                left.add(op["index"])
        undelegated: Dict[str, int] = {}
        for op in nodes:
            if op["index"] in left:
                undelegated[op["op_name"]] = undelegated.get(op["op_name"], 0) + 1
    except Exception:  # an old tflite_runtime without the node list, or with other keys
        return None
    return {"partitions": len(partitions), "nodes": len(nodes), "undelegated": dict(sorted(undelegated.items()))}


def _load_tflite(path: str, label: str, threads: int, xnnpack: bool) -> Loaded:
    interpreter_class, resolvers, name, version = _tflite_interpreter()
    kwargs: Dict[str, Any] = {"model_path": path, "num_threads": threads}
    if resolvers is not None:
        kwargs["experimental_op_resolver_type"] = (
            resolvers.AUTO if xnnpack else resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        delegate = "xnnpack" if xnnpack else "none"
    else:  # very old tflite_runtime: no choice, its default
        delegate = "runtime default"
    try:
        interpreter = interpreter_class(**kwargs)
        details = interpreter.get_input_details()
        for detail in details:  # dynamic dimensions (-1 in the signature) run at 1
            signature = detail.get("shape_signature", detail["shape"])
            if any(int(d) < 0 for d in signature):
                interpreter.resize_tensor_input(detail["index"], _static_shape(signature))
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()
    except Exception as error:  # ValueError/RuntimeError for corrupt files and unsupported ops
        raise HarnessError(f"{name} {version} cannot load {label}: {_first_line(error)}") from None
    specs = []
    for detail in details:
        scale, zero_point = detail.get("quantization") or (0.0, 0)
        spec = {
            "name": detail["name"],
            "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name,
        }
        if scale:
            spec["quantization"] = (float(scale), int(zero_point))
        specs.append(spec)
    loaded = Loaded(name, version, delegate, specs)
    if delegate == "xnnpack":
        loaded.xnnpack = xnnpack_delegation(interpreter)

    def prepare(arrays: List[Any]) -> None:
        for detail, array in zip(details, arrays):
            interpreter.set_tensor(detail["index"], array)

    loaded.prepare = prepare
    loaded.run = interpreter.invoke
    return loaded


def artifact_format(path: str) -> str:
    """'onnx', 'ort' or 'tflite' from the file name; an error for anything else."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise HarnessError(
            f"cannot run {os.path.basename(path)}: unknown artifact format '{suffix}' (known: .onnx, .ort, .tflite)"
        )
    return FORMATS[suffix]


# --- measuring -------------------------------------------------------------------------------------


def summarize(times_ms: List[float]) -> Dict[str, Any]:
    """runs, min, p50/p90/p99, mean and (population) std of a list of latencies in ms."""
    times = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {
        "runs": int(times.size),
        "min_ms": round(float(times.min()), 4),
        "p50_ms": round(float(p50), 4),
        "p90_ms": round(float(p90), 4),
        "p99_ms": round(float(p99), 4),
        "mean_ms": round(float(times.mean()), 4),
        "std_ms": round(float(times.std()), 4),
    }


def measure(
    path: str,
    threads: int = 1,
    runs: Optional[int] = None,
    warmup: int = DEFAULT_WARMUP,
    budget_s: Optional[float] = None,
    inputs: Optional[str] = None,
    xnnpack: bool = True,
    label: Optional[str] = None,
    seed: int = 0,
) -> Dict[str, Any]:
    """Load ``path``, warm up, time it and return the figures (see the module docstring).

    Timing stops after ``runs`` runs or ``budget_s`` seconds of timed runs, whichever comes first
    (``runs`` defaults to 100 when neither is given); at least one run is timed. ``inputs`` is a
    ``.npy`` for the first input; ``label`` is the name errors and the result use for the file.
    """
    if np is None:
        raise HarnessError(f"numpy is not installed for {sys.executable}; fix: pip install numpy")
    label = label or os.path.basename(path)
    fmt = artifact_format(path)
    if not os.path.isfile(path):
        raise HarnessError(f"artifact {label} does not exist")
    if threads < 1 or warmup < 0 or (runs is not None and runs < 1) or (budget_s is not None and budget_s <= 0):
        raise HarnessError("threads and runs must be >= 1, warmup >= 0, budget > 0")
    if runs is None and budget_s is None:
        runs = DEFAULT_RUNS
    started = time.perf_counter()
    loaded = _load_tflite(path, label, threads, xnnpack) if fmt == "tflite" else _load_ort(path, label, threads)
    load_ms = (time.perf_counter() - started) * 1e3
    arrays = _build_inputs(loaded.specs, inputs, seed)
    loaded.prepare(arrays)
    try:
        for _ in range(warmup):
            loaded.run()
        times: List[float] = []
        spent = 0.0
        clock = time.perf_counter
        while (runs is None or len(times) < runs) and (budget_s is None or spent < budget_s):
            start = clock()
            loaded.run()
            elapsed = clock() - start
            times.append(elapsed * 1e3)
            spent += elapsed
    except Exception as error:
        raise HarnessError(f"{loaded.runtime} failed running {label}: {_first_line(error)}") from None
    result: Dict[str, Any] = {
        "artifact": label,
        "format": fmt,
        "runtime": {"name": loaded.runtime, "version": loaded.version},
        "delegate": loaded.delegate,
        "xnnpack": loaded.xnnpack,
        "threads": threads,
        "warmup": warmup,
        "budget_s": budget_s,
    }
    result.update(summarize(times))
    result.update(
        {
            "total_s": round(spent, 4),
            "load_ms": round(load_ms, 3),
            "peak_rss_mb": peak_rss_mb(),
            "inputs": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items()} for spec in loaded.specs],
            "device": device_info(),
            "harness_version": HARNESS_VERSION,
        }
    )
    return result


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="harness.py", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help=".onnx, .ort or .tflite file")
    parser.add_argument("--threads", type=int, default=1, help="intra-op / interpreter threads (default 1)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs (default 100, or unbounded with --budget-s)")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed runs first (default 10)")
    parser.add_argument("--budget-s", type=float, default=None, help="stop timing after this many seconds")
    parser.add_argument("--input", default=None, help=".npy for the first input (default: random)")
    parser.add_argument("--no-xnnpack", action="store_true", help="TFLite: builtin kernels, no XNNPACK delegate")
    parser.add_argument("--label", action="append", default=None, help="name to report for each MODEL")
    parser.add_argument("--compact", action="store_true", help="one line of JSON")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Measure each MODEL; print a JSON object (one model) or list; on failure print {"error": ...}, exit 1."""
    args = parse_args(argv)
    labels = args.label or []
    if labels and len(labels) != len(args.models):
        labels = []
    indent = None if args.compact else 2
    results = []
    try:
        for i, path in enumerate(args.models):
            results.append(
                measure(
                    path,
                    threads=args.threads,
                    runs=args.runs,
                    warmup=args.warmup,
                    budget_s=args.budget_s,
                    inputs=args.input,
                    xnnpack=not args.no_xnnpack,
                    label=labels[i] if labels else None,
                )
            )
    except HarnessError as error:
        print(json.dumps({"error": str(error)}))
        return 1
    except Exception as error:  # a bug or an unexpected runtime failure: still one line for the parent
        print(json.dumps({"error": f"{type(error).__name__}: {_first_line(error)}", "bug": True}))
        return 70
    print(json.dumps(results[0] if len(results) == 1 else results, indent=indent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
