"""The export pipeline: one table of stages (stages.py), each checked against the stage before."""
