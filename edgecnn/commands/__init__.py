"""The command layer above the pipeline: what ``edgecnn`` commands run (drift tool, probe suite) and how they print."""
