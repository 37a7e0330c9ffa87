"""``python -m edgecnn`` runs the CLI."""

import os
import sys

# `python -m` puts the current directory first on sys.path, so a file there named like a library edgecnn
# imports (onnxsim.py, numpy.py) would run in its place. An import-path MODEL still finds its module:
# edgecnn.pipeline.source adds the current directory, last, while it imports it.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from edgecnn.cli import main

main()
