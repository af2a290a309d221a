"""Fitting the forward model to real frames: frame statistics, the light/camera fit and its web
tuner, lens calibration import, and preview contact sheets."""
