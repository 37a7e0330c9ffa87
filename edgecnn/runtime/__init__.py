"""One way to run any artifact edgecnn makes: ``load(path)`` → a callable on NCHW float32 batches."""

from edgecnn.runtime.loader import Runner, load

__all__ = ["Runner", "load"]
