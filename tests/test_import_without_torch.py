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


def test_zoo_registry_and_sweep_spec_read_without_torch():
    """The zoo's names, knobs, planner grids and published tables, and a sweep's grid of zoo models, are data:
    torch is imported only when a network is built (edgecnn/models/nets/)."""
    code = BLOCK_TORCH + (
        "from edgecnn.models import list_models, get_model_info\n"
        "from edgecnn.models.registry import accuracy_tables, get_family, plannable_families\n"
        "from edgecnn.commands.sweep_spec import load_spec\n"
        "assert len(list_models()) > 25 and 'stages' in get_model_info('resnet50_dcn').knobs\n"
        "assert get_family('mobilenet').grid and accuracy_tables() and 'resnet' in plannable_families()\n"
        "spec = load_spec({'models': [{'name': 'mobilenet_v1', 'width': [0.25, 0.5]}], 'profiles': ['x86-avx2']})\n"
        "assert len(spec.cells) == 2\n"
        "from edgecnn.models import create_model\n"
        "try:\n    create_model('mobilenet_v1')\nexcept ImportError:\n    print('needs torch to build')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "needs torch to build" in result.stdout
