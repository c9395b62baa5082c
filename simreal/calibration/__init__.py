"""Calibration: fit simulator parameters to recorded rig episodes (``simreal calibrate``)."""

from simreal.calibration.fit import Calibrator, FitResult, Parameter, centered_spec_yaml, parameters_of
from simreal.calibration.replay import Episode, GymReplay, HandReplay, cut_windows, make_replay

__all__ = ["Calibrator", "Episode", "FitResult", "GymReplay", "HandReplay", "Parameter", "centered_spec_yaml",
           "cut_windows", "make_replay", "parameters_of"]
