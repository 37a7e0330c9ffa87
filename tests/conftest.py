"""Shared fixtures. Heavy ones (trained models, exports) are cached per test session."""

from __future__ import annotations

import os

# One thread per worker: `make test` runs two pytest workers on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
