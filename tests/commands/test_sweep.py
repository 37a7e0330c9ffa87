"""`edgecnn sweep` on a real local Ray (2 CPUs): resume after SIGINT, a worker killed mid-cell, failure isolation,
the device pool on the test sshd, and SPEC errors as one line. Tiny models: MobileNetV1 ×0.25 at 32², a one-conv
ONNX classifier, digits as calibration data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.bench.conftest import sshd  # noqa: F401  (the real sshd on 127.0.0.1, reused)
from tests.reliability.conftest import default_signals

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}


def tiny_onnx(path: Path, seed: int = 0) -> Path:
    """Conv(1→8) → Relu → GlobalAveragePool → Gemm(8→10) on 1×1×32×32: a classifier for digits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32) * 0.5, "w"),
        numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    """A folder with tiny.onnx, bad.onnx (not ONNX), digits.npz (64 normalised digits with labels) and mv1.pt (a
    MobileNetV1 α 0.25 checkpoint for 1 channel and 10 classes: weights make its drift check judged, so that a
    threshold applies to it)."""
    import torch

    from edgecnn.models import create_model
    from tests.fixtures.digits import MEAN, STD, digits, normalise

    folder = tmp_path_factory.mktemp("sweep_inputs")
    torch.manual_seed(0)
    model = create_model("mobilenet_v1", width=0.25, resolution=32, in_chans=1, num_classes=10)
    torch.save(model.state_dict(), folder / "mv1.pt")
    tiny_onnx(folder / "tiny.onnx")
    (folder / "bad.onnx").write_bytes(b"this is not an ONNX model")
    _, _, x, y = digits()
    np.savez(folder / "digits.npz", images=normalise(x[:64], MEAN, STD), labels=y[:64])
    return folder


EXPORT = "export: {formats: onnx, calib: digits.npz, calib_size: 8, holdout: 4}\n"
GRID = """
models:
  - name: mobilenet_v1
    width: [0.25, 0.5]
    resolution: 32
    in_chans: 1
    num_classes: 10
  - name: tiny.onnx
profiles: [x86-avx2, raspberrypi4]
export: {formats: onnx, method: minmax, calib: digits.npz, calib_size: 8, holdout: 4}
"""


def spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def cli(*args: str, cwd: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "edgecnn", "sweep", *args]
    return subprocess.Popen(
        argv, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals
    )


def records(out: Path) -> list[dict]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def grid_run(inputs) -> dict:
    """The 6-cell grid: interrupted by SIGINT after its first record, resumed, then run a third time."""
    spec(inputs, GRID)
    out = inputs / "grid"
    first = cli("spec.yaml", "--out", "grid", "--workers", "2", cwd=inputs)
    wait_for(lambda: (out / "results.jsonl").is_file() and records(out), 120, "the first record")
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=60)
    before = records(out)
    second = cli("spec.yaml", "--out", "grid", "--workers", "2", cwd=inputs)
    _, second_err = second.communicate(timeout=240)
    after_second = records(out)
    third = cli("spec.yaml", "--out", "grid", "--workers", "2", "--json", cwd=inputs)
    third_out, third_err = third.communicate(timeout=60)
    return {
        "out": out,
        "first": (first.returncode, first_err, before),
        "second": (second.returncode, second_err, after_second),
        "third": (third.returncode, third_err, third_out),
    }


def test_sigint_keeps_the_records_and_the_rerun_runs_only_the_missing_cells(grid_run):
    code, stderr, before = grid_run["first"]
    assert code == 130, stderr
    assert stderr.rstrip().endswith("edgecnn: aborted")
    assert 1 <= len(before) < 6
    code, stderr, after = grid_run["second"]
    assert code == 0, stderr
    assert f"6 cells: {len(before)} recorded already, {6 - len(before)} to run" in stderr
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)) == 6  # no cell ran twice
    assert all(r["status"] == "ok" for r in after), [r["message"] for r in after]
    assert stderr.count("[") >= 6 - len(before) and "done" in stderr and "running" in stderr


def test_a_third_run_reruns_nothing_and_returns_the_table(grid_run):
    code, stderr, stdout = grid_run["third"]
    assert code == 0, stderr
    assert "6 cells: 6 recorded already, 0 to run" in stderr
    assert len(records(grid_run["out"])) == 6
    table = json.loads(stdout)
    assert len(table) == 6 and {r["profile"] for r in table} == {"x86-avx2", "raspberrypi4"}


def test_summary_tables_csv_and_charts(grid_run):
    out = grid_run["out"]
    table = records(out)
    for record in table:
        cell = out / record["cell_dir"]
        assert (cell / "manifest.json").is_file() and (cell / "model.int8.onnx").is_file()
        assert record["predicted_ms"] > 0 and record["size_mb"] > 0 and record["int8_agreement"] is not None
    pi4 = {r["label"]: r["predicted_ms"] for r in table if r["profile"] == "raspberrypi4"}
    assert (
        pi4["mobilenet_v1 width=0.5 resolution=32 raspberrypi4"]
        > pi4["mobilenet_v1 width=0.25 resolution=32 raspberrypi4"]
    )
    summary = (out / "summary.md").read_text()
    assert "6 cells: 6 ok, 0 failed." in summary
    for profile in ("x86-avx2", "raspberrypi4"):
        section = summary.split(f"## {profile}")[1].split("## ")[0]
        assert section.count("| ok |") == 3
        assert (out / f"pareto-{profile}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("key,label,profile,status") and len(rows) == 7


def ray_cell_workers(root: int) -> list[int]:
    """The pids of the Ray workers under process ``root`` that are running a cell's export right now."""
    parents, found = {}, []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if (entry / "cmdline").read_bytes().startswith(b"ray::run_cell"):
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue

    def under(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    return [pid for pid in found if under(pid)]


FAILURES = """
models:
  - {name: mobilenet_v1, width: 0.25, resolution: 32, in_chans: 1, num_classes: 10, weights: mv1.pt}
  - {name: bad.onnx}
  - {name: tiny.onnx}
profiles: [x86-avx2]
export: {formats: onnx, calib: digits.npz, calib_size: 8, holdout: 4, min_cosine: [0.5, 0.99999999]}
exclude:
  - {model: [mobilenet_v1, bad.onnx], min_cosine: 0.99999999}
  - {model: tiny.onnx, min_cosine: 0.5}
"""


def test_killed_worker_is_retried_and_failing_cells_are_records(inputs):
    spec(inputs, FAILURES, "failures.yaml")
    out = inputs / "failures"
    proc = cli("failures.yaml", "--out", "failures", "--workers", "2", "--strict", cwd=inputs)
    killed = []
    deadline = time.monotonic() + 120
    while not killed and time.monotonic() < deadline and proc.poll() is None:
        for pid in ray_cell_workers(proc.pid):
            # the slow cell (MobileNet) is the one still running once the quick ones are recorded
            if (out / "results.jsonl").is_file() and len(records(out)) >= 2:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.1)
    _, stderr = proc.communicate(timeout=180)
    assert killed, f"no Ray worker ran a cell to kill: {stderr}"
    by_model = {Path(r["model"]).name: r for r in records(out)}
    assert len(by_model) == 3
    assert by_model["mobilenet_v1"]["status"] == "ok" and by_model["mobilenet_v1"]["worker_pid"] not in killed
    bad, drift = by_model["bad.onnx"], by_model["tiny.onnx"]
    assert bad["status"] == "error" and bad["exit_code"] == 1 and "bad.onnx" in bad["message"]
    assert drift["status"] == "drift" and drift["exit_code"] == 3 and "cosine" in drift["message"]
    assert drift["int8_agreement"] is not None and (out / drift["cell_dir"] / "manifest.json").is_file()
    assert proc.returncode == 3, stderr  # --strict: the highest exit code of the failed cells
    assert "edgecnn: error: 2 of 3 cells failed" in stderr.splitlines()[-1]
    summary = (out / "summary.md").read_text()
    assert "1 ok, 2 failed" in summary and bad["message"] in summary


def test_a_worker_that_keeps_dying_is_recorded_as_lost_and_rerun_next_time(inputs):
    spec(inputs, "models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\n" + EXPORT, "dying.yaml")
    proc = cli("dying.yaml", "--out", "dying", "--workers", "1", "--strict", cwd=inputs)
    killed: set[int] = set()
    deadline = time.monotonic() + 240
    while proc.poll() is None:  # every worker that starts the cell dies: the first run and Ray's retries
        assert time.monotonic() < deadline, "the sweep did not end after its retries"
        for pid in set(ray_cell_workers(proc.pid)) - killed:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.05)
    _, stderr = proc.communicate()
    assert len(killed) == 3, stderr  # MAX_RETRIES = 2
    (record,) = records(inputs / "dying")
    assert (
        record["status"] == "worker-lost" and record["exit_code"] == 70 and "worker lost 3 times" in record["message"]
    )
    assert proc.returncode == 70, stderr
    again = cli("dying.yaml", "--out", "dying", "--workers", "1", cwd=inputs)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0 and "1 cell: 0 recorded already, 1 to run" in stderr
    assert records(inputs / "dying")[-1]["status"] == "ok"


def test_bench_cells_on_the_device_pool(inputs, sshd, tmp_path):  # noqa: F811
    import edgecnn

    host = {k: str(sshd[k]) for k in ("host", "identity", "known_hosts", "python")} | {"port": sshd["port"]}
    grid = {
        "models": [{"name": str(inputs / "tiny.onnx")}],
        "profiles": ["x86-avx2", "raspberrypi4"],
        "export": {"formats": "onnx", "calib": str(inputs / "digits.npz"), "calib_size": 8, "holdout": 4},
        "bench": {"artifacts": ["int8_onnx"], "hosts": [host], "runs": 5, "warmup": 1},
    }
    states: list[dict[str, int]] = []
    table = edgecnn.sweep(grid, out=tmp_path / "bench", workers=2, counts=states.append)
    assert [r["status"] for r in table] == ["ok", "ok"], [r["message"] for r in table]
    # the bar's counts: one device runs one bench at a time, the other cell waits for it; all done at the end
    assert any(s["benching"] == 1 for s in states) and all(s["benching"] <= 1 for s in states)
    assert all(
        s["done"] + s["failed"] + s["exporting"] + s["queued"] + s["benching"] + s["waiting"] == 2 for s in states
    )
    assert states[-1] == {"total": 2, "done": 2, "failed": 0, "exporting": 0, "queued": 0, "benching": 0, "waiting": 0}
    for record in table:
        assert record["bench_host"] == sshd["host"] and record["bench_p50_ms"] > 0
        assert record["bench"]["results"][0]["runs"] == 5
    summary = (tmp_path / "bench" / "summary.csv").read_text()
    assert sshd["host"] in summary


def test_a_failed_bench_is_benched_again_without_exporting_again(inputs, sshd, tmp_path):  # noqa: F811
    import socket

    import edgecnn

    with socket.socket() as closed:  # a port nobody listens on: the device is unreachable
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    host = {k: str(sshd[k]) for k in ("host", "identity", "known_hosts", "python")}
    grid = {
        "models": [{"name": str(inputs / "tiny.onnx")}],
        "profiles": ["x86-avx2"],
        "export": {"formats": "onnx", "calib": str(inputs / "digits.npz"), "calib_size": 8, "holdout": 4},
        "bench": {"artifacts": ["int8_onnx"], "hosts": [host | {"port": dead}], "runs": 5, "warmup": 1},
    }
    first = edgecnn.sweep(grid, out=tmp_path / "s", workers=1)[0]
    assert first["status"] == "bench-error" and first["export_s"] > 0, first
    manifest = tmp_path / "s" / first["cell_dir"] / "manifest.json"
    exported = manifest.stat().st_mtime_ns
    grid["bench"]["hosts"] = [host | {"port": sshd["port"]}]  # the device is back (hosts are not in the key)
    second = edgecnn.sweep(grid, out=tmp_path / "s", workers=1)[0]
    assert second["key"] == first["key"] and second["status"] == "ok" and second["bench_p50_ms"] > 0, second
    assert manifest.stat().st_mtime_ns == exported and second["export_s"] == first["export_s"]  # not exported again


def test_sweep_plan_measures_the_choice_and_its_rival(tmp_path):
    argv = [sys.executable, "-m", "edgecnn", "sweep", "plan", "mobilenet", "--profile", "x86-avx2", "--measure"]
    argv += ["--budget-ms", "1.5", "--top", "1", "--runs", "10", "--out", "check", "--workers", "2", "--json"]
    done = subprocess.run(argv, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / "check" / "plan-check.json").read_text())
    rows = report["candidates"]
    assert len(rows) == 2 and sum(r["chosen"] for r in rows) == 1  # the best expected within reach, and the choice
    assert all(r["status"] == "ok" and r["measured_ms"] > 0 for r in rows)
    fitting = [r for r in rows if r["measured_ms"] <= 1.5]
    best = max(fitting, key=lambda r: r["expected_top1"])["label"] if fitting else None
    assert report["best_measured"] == best and report["confirmed"] == (best == report["chosen"])


HEAD = """
import shutil, socket, subprocess, sys, tempfile, time, ray
temp = tempfile.mkdtemp(prefix="edgecnn-test-ray.", dir="/tmp")
ray.init(num_cpus=2, resources={"edgecnn_host_local": 1}, include_dashboard=False, _temp_dir=temp,
         logging_level="ERROR")
gcs = ray.get_runtime_context().gcs_address
with socket.socket() as free:
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
# the Ray Client server `ray start --head` runs on port 10001: ray://HOST:PORT reaches the cluster through it
client = subprocess.Popen([sys.executable, "-m", "ray.util.client.server", f"--address={gcs}", "--host=127.0.0.1",
                           f"--port={port}", "--mode=legacy"], stderr=subprocess.DEVNULL)
while socket.socket().connect_ex(("127.0.0.1", port)) and client.poll() is None:
    time.sleep(0.2)
print(gcs, flush=True)
print(f"ray://127.0.0.1:{port}", flush=True)
sys.stdin.read()
client.terminate()
client.wait(timeout=30)
ray.shutdown()
shutil.rmtree(temp, ignore_errors=True)
"""


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster of its own process (2 CPUs, the local bench device declared), as a cluster's head would be: its
    GCS address and its Ray Client address (ray://)."""
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD], env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    address, client = head.stdout.readline().strip(), head.stdout.readline().strip()
    assert address and client, "the Ray head did not start"
    yield {"address": address, "client": client}
    head.stdin.close()
    head.wait(timeout=60)


def test_joins_a_cluster_at_address_and_benches_on_its_device(inputs, cluster):
    spec(inputs, "models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\n" + EXPORT + "bench: {runs: 5}\n", "joined.yaml")
    env = {**ENV, "RAY_AUTH_MODE": "token"}  # Ray's token authentication, with the token the head wrote
    argv = [sys.executable, "-m", "edgecnn", "sweep", "joined.yaml", "--out", "joined", "--address", cluster["address"]]
    done = subprocess.run(argv, cwd=inputs, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (record,) = records(inputs / "joined")
    assert record["status"] == "ok" and record["bench_host"] == "local" and record["bench_p50_ms"] > 0
    spec(inputs, "models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\nbench: {hosts: [pi@192.0.2.1]}\n", "nodev.yaml")
    argv[4:7] = ["nodev.yaml", "--out", "nodev"]
    done = subprocess.run(argv, cwd=inputs, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "has no device resource for pi@192.0.2.1" in last and "ray start --resources='{\"edgecnn_host_" in last


def test_joins_through_ray_client_and_finds_a_factory_beside_the_spec(inputs, cluster, tmp_path):
    folder = tmp_path / "project"  # the spec and the user's module: neither on PYTHONPATH nor the current directory
    folder.mkdir()
    (folder / "mynet.py").write_text(
        "import torch\n\ndef build(num_classes=10):\n    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), "
        "torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, num_classes))\n",
        encoding="utf-8",
    )
    (folder / "digits.npz").write_bytes((inputs / "digits.npz").read_bytes())
    models = "models: [{name: 'mynet:build', input_shape: '1,1,32,32'}]\nprofiles: [x86-avx2]\n"
    spec(folder, models + EXPORT, "client.yaml")
    argv = [sys.executable, "-m", "edgecnn", "sweep", str(folder / "client.yaml"), "--out", str(tmp_path / "c")]
    env = {**ENV, "RAY_AUTH_MODE": "token"}
    done = subprocess.run(
        [*argv, "--address", cluster["client"]], cwd=inputs, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    (record,) = records(tmp_path / "c")
    assert record["status"] == "ok" and record["int8_agreement"] is not None, record


def test_cells_are_the_grid_minus_excludes_keyed_by_what_determines_them(inputs, tmp_path):
    from edgecnn.commands.sweep_spec import load_spec

    calib = tmp_path / "calib.npz"
    calib.write_bytes((inputs / "digits.npz").read_bytes())
    grid = {
        "models": [{"name": "resnet50_dcn", "width": [0.25, 0.5], "stages": [[3, 4], [2, 2]]}, {"name": "resnet18"}],
        "profiles": ["x86-avx2", "raspberrypi4"],
        "export": {"method": ["minmax", "percentile"], "calib": str(calib)},
        "exclude": [{"profile": "x86-avx2", "method": "percentile"}, {"width": 0.5, "stages": [2, 2]}],
    }
    cells = load_spec(grid).cells
    assert len(cells) == (2 * 2 - 1) * 3 + 3  # (width × stages − one) × (profiles × methods − one), resnet18 × 3
    assert "resnet50_dcn width=0.5 stages=[3, 4] raspberrypi4 method=percentile" in [c.label for c in cells]
    keys = [c.key for c in cells]
    assert len(set(keys)) == len(keys) and keys == [c.key for c in load_spec(grid).cells]
    calib.write_bytes(calib.read_bytes() + b"\0")  # other calibration data: other cells
    assert not set(keys) & {c.key for c in load_spec(grid).cells}


def test_model_entries_that_differ_only_in_weights_are_told_apart_in_their_labels(inputs, tmp_path):
    """Three entries of one model differing only in weights were all 'mobilenet_v1 … raspberrypi4' in the progress,
    the summary and the charts: an ok row could not be told from the failed ones."""
    import torch

    from edgecnn.commands.sweep_spec import load_spec

    other = tmp_path / "other.pt"  # other weights of the same network
    torch.save({k: v + 1 for k, v in torch.load(inputs / "mv1.pt", weights_only=True).items()}, other)
    entry = {"name": "mobilenet_v1", "width": 0.25, "resolution": 32, "in_chans": 1, "num_classes": 10}
    grid = {
        "models": [
            {**entry, "weights": str(inputs / "mv1.pt")},
            {**entry, "weights": str(other)},
            {"name": "resnet18"},
        ],
        "profiles": ["raspberrypi4"],
    }
    cells = load_spec(grid).cells
    assert [c.label for c in cells] == [
        "mobilenet_v1 width=0.25 resolution=32 raspberrypi4 weights=mv1.pt",
        "mobilenet_v1 width=0.25 resolution=32 raspberrypi4 weights=other.pt",
        "resnet18 raspberrypi4",
    ]


def test_a_factory_s_code_and_a_recipe_file_are_part_of_the_key(tmp_path, monkeypatch):
    from edgecnn.commands.sweep_spec import load_spec

    monkeypatch.chdir(tmp_path)  # import paths are found as the export imports them: the current directory last
    (tmp_path / "mynet.py").write_text("def build(num_classes=10):\n    return None\n", encoding="utf-8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("calibration_size: 16\n", encoding="utf-8")
    grid = {
        "models": [{"name": "mynet:build", "input_shape": "1,3,8,8"}, {"name": "torchvision:resnet18"}],
        "profiles": ["x86-avx2"],
        "export": {"recipe": str(recipe)},
    }
    first = [c.key for c in load_spec(grid).cells]
    assert first == [c.key for c in load_spec(grid).cells]  # nothing changed: the same cells
    (tmp_path / "mynet.py").write_text("def build(num_classes=10):\n    return 1\n", encoding="utf-8")
    second = [c.key for c in load_spec(grid).cells]
    assert second[0] != first[0] and second[1] == first[1]  # the factory's code changed: its cell only
    recipe.write_text("calibration_size: 32\n", encoding="utf-8")
    assert not set(second) & {c.key for c in load_spec(grid).cells}  # another recipe: every cell


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\nexprot: {}\n", "unknown key 'exprot'"),
        ("models: [{name: mobilenet_v1, widht: 0.5}]\nprofiles: [x86-avx2]\n", "models[0]: unknown key 'widht'"),
        ("models: [{name: mobilenet_v1, width: [0.5, -1]}]\nprofiles: [x86-avx2]\n", "models[0].width: must be"),
        (
            "models: [{name: tiny.onnx}]\nprofiles: [raspberypi4]\n",
            "profiles[0]: unknown profile 'raspberypi4'; did you mean",
        ),
        ("models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\nexport: {calib_size: many}\n", "calib_size: expected"),
        ("models: [{name: missing.onnx}]\nprofiles: [x86-avx2]\n", "model missing.onnx does not exist"),
        ("models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\nexclude: [{methd: minmax}]\n", "unknown key 'methd'"),
        ("models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\nbench: {runz: 3}\n", "bench: unknown key 'runz'"),
        (  # an fp32 cell given an int8 option: refused on load, not recorded as an error by a worker
            "models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\nexport: {quantize: [true, false], method: entropy}\n",
            "--method applies to the int8 artifacts, but --no-quantize leaves them out",
        ),
    ],
)
def test_spec_errors_name_the_file_and_field(inputs, tmp_path, text, message):
    from edgecnn.commands.sweep_spec import load_spec
    from edgecnn.errors import UsageError

    path = spec(inputs, text, f"bad-{abs(hash(text))}.yaml")
    with pytest.raises(UsageError) as caught:
        load_spec(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


def test_spec_error_on_the_command_line_is_one_line(inputs):
    path = spec(inputs, "models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\nexprot: {}\n", "typo.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "edgecnn", "sweep", str(path), "--out", str(inputs / "never")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "unknown key 'exprot'" in done.stderr
    assert not (inputs / "never").exists()


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("/sys/edgecnn-sweep", "cannot write in /sys"),
        ("/proc/edgecnn-sweep", "cannot write in /proc: its file system takes no new files"),
    ],
)
def test_an_unwritable_out_is_one_line_before_any_work(inputs, out, message):
    """Checked before Ray starts: one line, exit 1, no progress line, nothing made."""
    path = spec(inputs, "models: [{name: tiny.onnx}]\nprofiles: [x86-avx2]\n", "unwritable.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "edgecnn", "sweep", str(path), "--out", out],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and message in done.stderr, done.stderr
    assert not done.stdout.strip() and not Path(out).exists()


def test_without_ray_one_line_says_which_extra(inputs):
    code = "import sys; sys.modules['ray'] = None; from edgecnn.cli import main; main()"
    argv = [sys.executable, "-c", code, "sweep", str(inputs / "spec.yaml"), "--out", str(inputs / "noray")]
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "edgecnn: error: edgecnn sweep runs on Ray, which is not installed: pip install 'edgecnn[sweep]'"
    )


def test_the_bar_shows_the_grid_s_counts_on_a_terminal_and_plain_lines_elsewhere(capsys):
    import io

    from rich.console import Console

    from edgecnn.commands.render import SweepProgress

    screen = io.StringIO()
    shown = SweepProgress(Console(file=screen, force_terminal=True, width=200))
    state = {"total": 3, "done": 1, "failed": 0, "exporting": 1, "queued": 0, "benching": 1, "waiting": 0}
    shown.counts(state)
    shown.line("[1/3] ok      tiny x86-avx2")
    shown.counts(state | {"done": 2, "failed": 1, "exporting": 0, "benching": 0})  # all finished: the bar goes
    assert shown.task is None
    text = screen.getvalue()
    assert "grid" in text and "1/3" in text and "done 1 · failed 0 · running 1 · benching 1" in text
    assert "[1/3] ok      tiny x86-avx2" in text

    plain = SweepProgress(Console(file=io.StringIO(), force_terminal=False))
    plain.counts(state)  # no terminal: no bar, the lines only
    plain.line("[1/3] ok      tiny x86-avx2")
    plain.close()
    assert plain.bar is None and capsys.readouterr().err == "[1/3] ok      tiny x86-avx2\n"


def test_ctrl_c_while_ray_starts_waits_for_the_start_and_a_second_one_does_not():
    """The first SIGINT inside is recorded and replayed by the caller after the start; its handler is back at once,
    so a second one raises there; an ignored SIGINT stays ignored."""
    from edgecnn.commands.sweep import _ctrl_c_deferred

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        replays: list = []
        deferred = []
        with pytest.raises(KeyboardInterrupt), _ctrl_c_deferred(replays):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # the handler runs between bytecodes: it recorded, nothing raised
            deferred.append(len(replays))
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        assert deferred == [1]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            replays[0]()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with _ctrl_c_deferred(replays):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_summary_says_where_a_cell_was_benched():
    """A raspberrypi4 cell benched without hosts: (on this x86 machine) was shown as measured under the Pi's
    heading and on its chart's latency axis, as if the device had run it."""
    from edgecnn.commands.sweep_summary import latency, markdown

    base = {"key": "k", "profile": "raspberrypi4", "status": "ok", "predicted_ms": 3.0, "exit_code": 0}
    here = {**base, "label": "a", "bench_p50_ms": 0.0189, "bench_host": "local"}
    pi = {**base, "label": "b", "bench_p50_ms": 2.5, "bench_host": "pi@pi4.local"}
    table = markdown([here, pi, {**base, "label": "c"}])
    assert "| a | ok | 3 | 0.0189 | this machine, not the device |" in table
    assert "| b | ok | 3 | 2.5 | pi@pi4.local |" in table and "| c | ok | 3 | – | – |" in table
    assert latency(here) == (0.0189, "measured on this machine, not the device")
