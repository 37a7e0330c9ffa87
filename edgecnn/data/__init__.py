"""Calibration and evaluation data."""
