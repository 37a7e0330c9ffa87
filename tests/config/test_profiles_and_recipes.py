"""Every shipped profile and recipe loads; bad YAML is an error naming the file and the field."""

import json
import re
from pathlib import Path

import pytest

from edgecnn.config.profiles import list_profiles, load_profile
from edgecnn.config.recipes import list_recipes, load_recipe, recipe_for_family
from edgecnn.errors import UsageError
from edgecnn.models.registry import family_names

REQUIRED_PROFILES = {"raspberrypi4", "raspberrypi5", "jetson-nano", "android-arm64", "coral-devboard", "x86-avx2"}


def test_required_profiles_ship_and_load():
    assert set(list_profiles()) >= REQUIRED_PROFILES
    for name in list_profiles():
        profile = load_profile(name)
        assert profile.sources, name
        assert profile.threads <= profile.cores


def test_reduce_range_follows_the_cpu():
    assert load_profile("x86-avx2").reduce_range is True
    for name in ("raspberrypi4", "raspberrypi5", "android-arm64", "jetson-nano", "coral-devboard"):
        profile = load_profile(name)
        assert profile.is_arm and profile.reduce_range is False


def test_deform_lowering_defaults_to_what_the_runtimes_run(tmp_path):
    assert load_profile("raspberrypi4").deform == "native"  # ONNX Runtime ≥ 1.25 has a DeformConv kernel
    for folder, text, expected in (
        ("tflite-only", GOOD_PROFILE.replace("runtimes: [onnxruntime, tflite]", "runtimes: [tflite]"), "gather"),
        ("explicit", GOOD_PROFILE + "\ndeform: custom\n", "custom"),
    ):
        path = tmp_path / folder / "raspberrypi4.yaml"
        path.parent.mkdir()
        path.write_text(text)
        assert load_profile(str(path)).deform == expected


def test_every_family_has_a_recipe():
    assert set(family_names()) | {"default"} <= set(list_recipes())
    for name in list_recipes():
        recipe = load_recipe(name)
        assert recipe.opset >= 19 and recipe.method in ("minmax", "mean_minmax", "percentile", "entropy")
    assert recipe_for_family(None).family == "default"


GOOD_PROFILE = (Path(__file__).resolve().parents[2] / "device_profiles" / "raspberrypi4.yaml").read_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "\nturbo: true\n", "raspberrypi4.yaml: unknown key 'turbo'"),
        (lambda t: t.replace("\nthreads: 4\n", "\n"), "raspberrypi4.yaml: threads: missing"),
        (lambda t: t.replace("cores: 4", "cores: -4"), "raspberrypi4.yaml: cpu.cores: must be from 1 to 1024, got -4"),
        (lambda t: t.replace("arch: arm64", "arch: sparc"), "cpu.arch: 'sparc' is not one of"),
        (lambda t: t.replace("threads: 4", "threads: four"), "threads: expected int"),
        (lambda t: t.replace("features: [neon]", "features: [neon, warp]"), "cpu.features: 'warp' is not one of"),
        (lambda t: t.replace("mobilenet_v3: {", "mobilenett: {"), "defaults.mobilenett: unknown family"),
        (lambda t: t.replace("      depthwise:", "      dw:", 1), "latency.fp32.throughput_gops.depthwise: missing"),
        (
            lambda t: re.sub(r"overhead_us: \S+", "overhead_us: -1.0", t, count=1),
            "latency.fp32.overhead_us: must be ≥ 0",
        ),
        (lambda t: t.replace("\n  runtime: tflite", "\n  runtime: coreml"), "latency.runtime: 'coreml'"),
        (lambda t: t.replace("threads: 4", "threads: 8"), "threads: 8 is more than the 4 cores"),
        (lambda t: t.replace("name: raspberrypi4", "name: [oops"), "is not valid YAML"),
        (lambda t: t + "\ndeform: bilinear\n", "deform: 'bilinear' is not one of native, custom, gather"),
        (
            lambda t: t.replace("vector_bytes: 16", "vector_bytes: 0"),
            "latency.vector_bytes: '0' is not one of 8, 16, 32, 64",
        ),
    ],
)
def test_bad_profiles_name_file_and_field(tmp_path, edit, message):
    path = tmp_path / "raspberrypi4.yaml"
    path.write_text(edit(GOOD_PROFILE))
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_profile(str(path))


def test_bad_recipe_unknown_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        (Path(__file__).resolve().parents[2] / "export_recipes" / "resnet.yaml").read_text()
        + "\nfuse_everything: yes\n"
    )
    with pytest.raises(UsageError, match=r"mine\.yaml: unknown key 'fuse_everything'"):
        load_recipe(str(path))


def test_every_profile_has_a_latency_model_with_sources():
    for name in list_profiles():
        latency = load_profile(name).latency
        assert latency is not None and set(latency.coefficients) == {"fp32", "int8"}, name
        for dtype, coefficients in latency.coefficients.items():
            assert coefficients.fitted_to and all(m["source"] for m in coefficients.fitted_to), (name, dtype)


@pytest.mark.slow
def test_latency_models_reproduce_the_measurements_they_were_fitted_to():
    """Each profile's coefficients predict the published figures listed under fitted_to (two free factors per
    dtype, so not exactly: within ±35%); x86-avx2's reproduce the probe measurements shipped with the benchmarks."""
    import json

    from edgecnn.analysis.profile_fit import samples
    from edgecnn.costs.torch_op_costs import zoo_op_costs

    for name in list_profiles():
        latency = load_profile(name).latency
        for dtype, coefficients in latency.coefficients.items():
            for entry in coefficients.fitted_to:
                if "ms" not in entry:
                    continue
                costs, _ = zoo_op_costs(entry["model"], dtype, **(entry.get("config") or {}))
                predicted = latency.predict(costs).total_ms
                assert predicted == pytest.approx(entry["ms"], rel=0.35), (name, dtype, entry["model"], predicted)
    probes = Path(__file__).resolve().parents[2] / "benchmarks" / "probes" / "x86-avx2.json"
    results = json.loads(probes.read_text())
    latency = load_profile("x86-avx2").latency
    for dtype in ("fp32", "int8"):
        measured = samples(results, dtype, statistic="min_ms")  # what x86-avx2 is fitted to (its fitted_to says so)
        errors = [abs(latency.predict(s.costs).total_ms / s.measured_ms - 1) for s in measured]
        assert len(measured) >= 30 and sum(errors) / len(errors) < 0.10, (dtype, sum(errors) / len(errors))


def test_vector_bytes_defaults_to_the_cpus_simd_width(tmp_path):
    """A profile without latency.vector_bytes (one written before it existed) loads with its ISA's width."""
    path = tmp_path / "raspberrypi4.yaml"
    path.write_text(GOOD_PROFILE.replace("\n  vector_bytes: 16", ""))
    assert "vector_bytes" not in path.read_text() and load_profile(str(path)).latency.vector_bytes == 16  # NEON
    x86 = (Path(__file__).resolve().parents[2] / "device_profiles" / "x86-avx2.yaml").read_text()
    path = tmp_path / "x86-avx2.yaml"
    path.write_text(x86.replace("\n  vector_bytes: 32", ""))
    assert "vector_bytes" not in path.read_text() and load_profile(str(path)).latency.vector_bytes == 32  # AVX2


@pytest.mark.slow
def test_a_wheel_install_finds_its_profiles_and_recipes(tmp_path):
    """Installed from a wheel (no checkout around it), the YAML folders come from <prefix>/share/edgecnn/."""
    import os
    import shutil
    import subprocess
    import sys
    import sysconfig

    root = Path(__file__).resolve().parents[2]
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "edgecnn", "device_profiles", "export_recipes"):
        if (root / part).is_dir():
            shutil.copytree(root / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(root / part, source / part)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "dist").glob("edgecnn-*.whl"))
    prefix = tmp_path / "prefix"
    subprocess.run(
        [*pip, "install", "--no-deps", "--ignore-installed", "--prefix", str(prefix), str(wheel)],
        check=True,
        capture_output=True,
    )
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    assert (site / "edgecnn" / "cli.py").is_file() and not (site / "device_profiles").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECNN_")} | {"PYTHONPATH": str(site)}
    code = (
        "import edgecnn, json; from edgecnn.config.profiles import profiles_dir, list_profiles; "
        "from edgecnn.config.recipes import recipes_dir, list_recipes; "
        "print(json.dumps([edgecnn.__file__, str(profiles_dir()), list_profiles(), "
        "str(recipes_dir()), list_recipes()]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    package, profiles, names, recipes, recipe_names = json.loads(done.stdout)
    assert package.startswith(str(site))  # the installed copy, not this checkout
    assert profiles == str(prefix / "share" / "edgecnn" / "device_profiles") and set(names) == set(list_profiles())
    assert recipes == str(prefix / "share" / "edgecnn" / "export_recipes") and set(recipe_names) == set(list_recipes())
    listed = subprocess.run(
        [sys.executable, "-m", "edgecnn", "profiles", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert listed.returncode == 0 and {p["name"] for p in json.loads(listed.stdout)} == set(list_profiles())
