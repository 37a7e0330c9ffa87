"""On-device latency: the standalone harness (``harness.py``), SSH transport (``remote.py``), ``bench()``.

``harness.py`` is also a single file to copy to a device: ``python harness.py MODEL --threads 4``.
"""

from edgecnn.bench.api import bench, run_suite

__all__ = ["bench", "run_suite"]
