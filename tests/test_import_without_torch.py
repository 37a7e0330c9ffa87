"""The package imports without torch wherever the code does not need it."""

import subprocess
import sys

BLOCK_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None; "


def test_package_cli_and_registry_import_without_torch():
    code = BLOCK_TORCH + (
        "import edgecnn, edgecnn.cli, edgecnn.errors, edgecnn.models.registry; "
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]; print(edgecnn.__version__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cli_help_runs_without_torch():
    code = BLOCK_TORCH + "from edgecnn.cli import main; sys.argv = ['edgecnn', '--help']; main()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "models" in result.stdout


def test_profiles_and_calibration_need_no_torch():
    """`edgecnn profiles` and the latency model (predict, calibrate-profile) read YAML and numbers only."""
    code = BLOCK_TORCH + (
        "from edgecnn.cli import main; sys.argv = ['edgecnn', 'profiles', '--json']\n"
        "import edgecnn.analysis.profile_fit, edgecnn.costs.latency_model, edgecnn.costs.op_costs\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert '"raspberrypi4"' in result.stdout and '"latency"' in result.stdout
