"""Scene assembly for the hand-cube task, in code (MjSpec).

The Shadow hand's MJCF and meshes come from the gymnasium-robotics wheel (its
assets only; its environment code is not used).  Everything that later issues
randomize or vary -- the cube, the cameras, the lights -- is a parameter here,
so the scene is a value (:class:`SceneSpec`) rather than a file.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
import pathlib
import re
from dataclasses import dataclass, field

import mujoco
import numpy as np

CUBE_FACES = ("+x", "-x", "+y", "-y", "+z", "-z")
# MuJoCo's cube-texture layout: a 3 x 4 grid of faces named R, L, U, D, F, B,
# which MuJoCo maps to the cube's +x, -x, +y, -y, +z, -z faces.
_GRID_LAYOUT = ".U..LFRB.D.."
_GRID_FACE = {"R": "+x", "L": "-x", "U": "+y", "D": "-y", "F": "+z", "B": "-z"}

OBJECT_BODY = "object"
OBJECT_GEOM = "object"
OBJECT_JOINT = "object:joint"
GOAL_BODY = "goal"
GOAL_GEOM = "goal"
GOAL_GEOM_GROUP = 2  # hidden from the pose cameras, shown in previews
FINGERTIP_SITES = tuple(f"robot0:S_{f}tip" for f in ("ff", "mf", "rf", "lf", "th"))
HAND_JOINT_PREFIX = "robot0:"


class AssetError(RuntimeError):
    """The Shadow hand assets could not be found."""


@functools.lru_cache(maxsize=1)
def hand_asset_dir() -> pathlib.Path:
    """Folder of the gymnasium-robotics assets (found without importing it)."""
    found = importlib.util.find_spec("gymnasium_robotics")
    if found is None or not found.submodule_search_locations:
        raise AssetError(
            "the Shadow hand model comes from the 'gymnasium-robotics' package, which is not "
            "installed: run `make demo` or `pip install gymnasium-robotics`"
        )
    root = pathlib.Path(list(found.submodule_search_locations)[0]) / "envs" / "assets"
    if not (root / "hand" / "robot.xml").is_file():
        raise AssetError(f"Shadow hand MJCF not found under {root}/hand (gymnasium-robotics changed layout?)")
    return root


def _inner_xml(path: pathlib.Path) -> str:
    """The children of an MJCF file's <mujoco> element, as text (for inlining)."""
    text = path.read_text()
    match = re.search(r"<mujoco[^>]*>(.*)</mujoco>", text, re.S)
    if match is None:
        raise AssetError(f"{path}: no <mujoco> element")
    return match.group(1)


@functools.lru_cache(maxsize=1)
def _hand_xml_and_meshes() -> tuple[str, dict[str, bytes]]:
    root = hand_asset_dir()
    meshes = {p.name: p.read_bytes() for p in (root / "stls" / "hand").glob("*.stl")}
    hand = root / "hand"
    parts = (
        _inner_xml(hand / "shared.xml"),
        _inner_xml(hand / "shared_asset.xml"),
        _inner_xml(hand / "robot.xml"),
    )
    return "\x00".join(parts), meshes


def look_at_quat(pos: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Orientation of a MuJoCo camera at pos looking at target (camera looks along -z)."""
    z = np.asarray(pos, float) - np.asarray(target, float)
    z /= np.linalg.norm(z)
    x = np.cross(np.asarray(up, float), z)
    if np.linalg.norm(x) < 1e-9:  # looking straight down: any x will do
        x = np.cross((0.0, 1.0, 0.0), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.stack([x, y, z], axis=1).ravel())
    return quat


@dataclass(frozen=True)
class CameraSpec:
    """A fixed camera: where it is, what it looks at, its vertical field of view."""

    name: str
    pos: tuple[float, float, float]
    lookat: tuple[float, float, float]
    fovy: float = 45.0

    @classmethod
    def orbit(cls, name: str, lookat, distance: float, azimuth_deg: float, elevation_deg: float,
              fovy: float = 45.0) -> "CameraSpec":
        """A camera on a sphere around lookat (azimuth from +x, elevation above the horizon)."""
        az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
        offset = distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        pos = tuple(float(v) for v in np.asarray(lookat, float) + offset)
        return cls(name, pos, tuple(float(v) for v in lookat), fovy)


@dataclass(frozen=True)
class LightSpec:
    name: str
    pos: tuple[float, float, float]
    dir: tuple[float, float, float]
    diffuse: tuple[float, float, float] = (0.7, 0.7, 0.7)
    specular: tuple[float, float, float] = (0.3, 0.3, 0.3)
    ambient: tuple[float, float, float] = (0.1, 0.1, 0.1)
    directional: bool = False
    castshadow: bool = False
    active: bool = True  # an inactive light is part of the pool that visual randomization switches on


# Nominal resting place of the cube centre on the palm (world frame).
CUBE_HOME = (1.0, 0.87, 0.2)
_CAM_TARGET = (1.0, 0.88, 0.17)

DEFAULT_CAMERAS = (
    CameraSpec.orbit("cam_left", _CAM_TARGET, 0.32, azimuth_deg=210.0, elevation_deg=40.0),
    CameraSpec.orbit("cam_front", _CAM_TARGET, 0.32, azimuth_deg=270.0, elevation_deg=35.0),
    CameraSpec.orbit("cam_right", _CAM_TARGET, 0.32, azimuth_deg=330.0, elevation_deg=40.0),
)
DEFAULT_LIGHTS = (
    LightSpec("key", pos=(1.0, 0.6, 1.2), dir=(0.0, 0.25, -1.0), diffuse=(0.8, 0.8, 0.8), directional=True),
    LightSpec("fill", pos=(0.6, 0.7, 0.6), dir=(0.4, 0.2, -0.5), diffuse=(0.35, 0.35, 0.35)),
) + tuple(  # off by default: the pool that visual randomization draws Dactyl's 4-6 lights from
    LightSpec(f"pool{k}", pos=tuple(float(v) for v in np.asarray(_CAM_TARGET) + 0.6 * np.asarray(u)),
              dir=tuple(float(v) for v in -np.asarray(u)), diffuse=(0.4, 0.4, 0.4), specular=(0.2, 0.2, 0.2),
              ambient=(0.0, 0.0, 0.0), directional=True, active=False)
    for k, u in enumerate([(0.5, -0.5, 0.707), (-0.5, -0.5, 0.707), (0.5, 0.5, 0.707), (-0.5, 0.5, 0.707)])
)
# Like a die: opposite faces sum to 7, and every face has its own color.
DEFAULT_FACES = {
    "+z": ("1", (0.95, 0.95, 0.95)),
    "-z": ("6", (0.95, 0.80, 0.10)),
    "+x": ("2", (0.85, 0.15, 0.15)),
    "-x": ("5", (0.10, 0.65, 0.20)),
    "+y": ("3", (0.15, 0.35, 0.90)),
    "-y": ("4", (0.95, 0.50, 0.05)),
}


@dataclass(frozen=True)
class CubeSpec:
    """The manipulated cube: edge length (m), density (kg/m^3), friction, and per-face label and color.

    ``faces`` maps each face of the cube's own frame (+x ... -z) to the label
    drawn on it and its RGB color, so the faces can be told apart in images.
    """

    edge: float = 0.055
    density: float = 567.0
    friction: tuple[float, float, float] = (1.0, 0.005, 0.0001)
    faces: tuple[tuple[str, tuple[str, tuple[float, float, float]]], ...] = tuple(DEFAULT_FACES.items())
    texture_px: int = 64

    def __post_init__(self):
        if not 0.01 <= self.edge <= 0.2:
            raise ValueError(f"CubeSpec.edge must be in [0.01, 0.2] m, got {self.edge}")
        if self.density <= 0:
            raise ValueError(f"CubeSpec.density must be > 0, got {self.density}")
        faces = dict(self.faces)
        if len(faces) != len(self.faces) or sorted(faces) != sorted(CUBE_FACES):
            raise ValueError(f"CubeSpec.faces must name each face {CUBE_FACES} once, got {[f for f, _ in self.faces]}")


@dataclass(frozen=True)
class SceneSpec:
    """Everything the hand-cube scene is built from."""

    cube: CubeSpec = field(default_factory=CubeSpec)
    cameras: tuple[CameraSpec, ...] = DEFAULT_CAMERAS
    lights: tuple[LightSpec, ...] = DEFAULT_LIGHTS
    timestep: float = 0.002
    goal_marker_pos: tuple[float, float, float] = (0.86, 0.84, 0.30)
    floor: bool = True

    def __post_init__(self):
        if not 1e-4 <= self.timestep <= 0.01:
            raise ValueError(f"SceneSpec.timestep must be in [1e-4, 0.01] s, got {self.timestep}")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"SceneSpec.cameras: names must be unique, got {names}")


def cube_texture_png(cube: CubeSpec) -> bytes:
    """A 4 x 3 face grid: each face its own color, with its label drawn on it."""
    from PIL import Image, ImageDraw, ImageFont

    px = cube.texture_px
    faces = dict(cube.faces)
    img = Image.new("RGB", (4 * px, 3 * px), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=int(px * 0.7))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for idx, slot in enumerate(_GRID_LAYOUT):
        if slot == ".":
            continue
        label, color = faces[_GRID_FACE[slot]]
        row, col = divmod(idx, 4)
        box = (col * px, row * px, (col + 1) * px - 1, (row + 1) * px - 1)
        rgb = tuple(int(255 * c) for c in color)
        draw.rectangle(box, fill=rgb, outline=(20, 20, 20), width=max(1, px // 32))
        if label:
            ink = (0, 0, 0) if sum(rgb) > 380 else (255, 255, 255)
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            draw.text((cx, cy), label, fill=ink, font=font, anchor="mm")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def build_spec(scene: SceneSpec | None = None) -> mujoco.MjSpec:
    """The scene as an editable MjSpec: hand, cube, goal marker, cameras, lights."""
    scene = scene or SceneSpec()
    joined, meshes = _hand_xml_and_meshes()
    shared, shared_asset, robot = joined.split("\x00")
    half = scene.cube.edge / 2
    xml = f"""<mujoco model="simreal_hand_cube">
  <compiler angle="radian" coordinate="local"/>
  <option timestep="{scene.timestep}" iterations="20"><flag warmstart="enable"/></option>
  <visual><global offwidth="1280" offheight="960"/></visual>
  {shared}
  <asset>
    {shared_asset}
    <texture name="cube_faces" type="cube" file="cube_faces.png" gridsize="3 4" gridlayout="{_GRID_LAYOUT}"/>
    <material name="cube" texture="cube_faces" specular="0.3" shininess="0.3"/>
    <material name="goal" texture="cube_faces" rgba="1 1 1 0.5"/>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.25 0.28 0.32" rgb2="0.18 0.2 0.23" width="256" height="256"/>
    <material name="floor" texture="floor" texrepeat="8 8" reflectance="0.05"/>
    <texture name="hand" type="cube" builtin="flat" rgb1="1 1 1" rgb2="1 1 1" width="32" height="32"/>
  </asset>
  <worldbody>{robot}</worldbody>
</mujoco>"""
    assets = dict(meshes)
    assets["cube_faces.png"] = cube_texture_png(scene.cube)
    spec = mujoco.MjSpec.from_string(xml, assets=assets)
    # texture slots for visual randomization: the hand's material gets a white texture (nominal look
    # unchanged: texture x color), and the hand assets' unnamed skybox a name
    spec.material("robot0:MatViz").textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "hand"
    for tex in spec.textures:
        if tex.type == mujoco.mjtTexture.mjTEXTURE_SKYBOX and not tex.name:
            tex.name = "skybox"

    world = spec.worldbody
    if scene.floor:
        world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 0.1], pos=[1, 1, 0],
                       material="floor", condim=3)
    obj = world.add_body(name=OBJECT_BODY, pos=list(CUBE_HOME))
    obj.add_freejoint(name=OBJECT_JOINT)
    obj.add_geom(name=OBJECT_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=[half] * 3, density=scene.cube.density,
                 friction=list(scene.cube.friction), condim=4, material="cube")
    goal = world.add_body(name=GOAL_BODY, pos=list(scene.goal_marker_pos), mocap=True)
    goal.add_geom(name=GOAL_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=[half] * 3, material="goal",
                  contype=0, conaffinity=0, group=GOAL_GEOM_GROUP, density=0)
    for cam in scene.cameras:
        world.add_camera(name=cam.name, pos=list(cam.pos), quat=list(look_at_quat(cam.pos, cam.lookat)),
                         fovy=cam.fovy)
    for light in scene.lights:
        world.add_light(
            name=light.name, pos=list(light.pos), dir=list(light.dir), diffuse=list(light.diffuse),
            specular=list(light.specular), ambient=list(light.ambient), castshadow=light.castshadow,
            type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL if light.directional else mujoco.mjtLightType.mjLIGHT_SPOT,
            active=light.active,
        )
    return spec


def build_model(scene: SceneSpec | None = None) -> mujoco.MjModel:
    """Compile the scene (22-46 ms: done once per env, never per episode)."""
    return build_spec(scene).compile()
