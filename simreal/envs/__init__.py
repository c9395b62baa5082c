"""Environments: the Dactyl hand-cube task and its vectorized form."""

from simreal.envs.hand_cube import HandCubeConfig, HandCubeEnv, HandCubeSim
from simreal.envs.scene import CameraSpec, CubeSpec, LightSpec, SceneSpec

__all__ = ["HandCubeConfig", "HandCubeEnv", "HandCubeSim", "CameraSpec", "CubeSpec", "LightSpec", "SceneSpec"]
