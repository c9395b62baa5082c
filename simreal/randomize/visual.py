"""Visual randomization: cameras, lights, materials, textures and image effects, per env copy.

The entries of a file's ``visual`` list draw like every other randomizer (the
YAML distribution, an operation, resampled per episode, per step or every N
steps, one RNG stream per env copy), but they write nothing into the
simulation: neither the physics nor the measured observations see them. A
renderer (`simreal.render.MultiCameraRenderer`) asks the stack's `VisualStack`
to dress its own render model for copy i just before drawing that copy:

1. the rendering fields any visual randomizer touches go back to their
   nominal values (cached at bind time), so nothing compounds;
2. each randomizer acts in YAML order. ``{field: ...}`` targets apply their
   operation to their own nominal values, as physics fields do; the scene
   parameters (``{visual: ...}``) adjust what the earlier entries left, so
   "robot colors uniform RGB" then "hue +-1 %" composes;
   ``light_total_intensity`` acts last;
3. textures are regenerated (numpy, a procedural pattern blended over the
   nominal texture, then the hue/saturation/value of the materials that use
   it) only when the copy being drawn has new values, and the renderer uploads
   them to its GL context in place (``mjr_uploadTexture``): no recompiling;
4. after rendering, image effects (blur, brightness, contrast, noise) act on
   the pixels (`simreal.render.effects`).

Units: camera rotation in degrees (Dactyl's Table 9 and ``cam_fovy`` use
them), distances in metres, hue in turns, image brightness in full scale and
image noise in units of the image's own standard deviation.
"""

from __future__ import annotations

import mujoco
import numpy as np

from simreal.randomize.base import OPERATIONS, BoundRandomizer, match_names
from simreal.randomize.physics import row_names, select_cells
from simreal.randomize.spec import (
    TEXTURE_PATTERNS,
    VISUAL_PARAMS,
    FieldTarget,
    ImageTarget,
    Randomizer,
    RandomizationSpec,
)
from simreal.render import textures as tex
from simreal.render.effects import apply_effects
from simreal.utils.rotations import quat_from_axis_angle, quat_mul
from simreal.utils.seeding import make_rng

_OBJECTS = {
    "camera": (mujoco.mjtObj.mjOBJ_CAMERA, "ncam"),
    "light": (mujoco.mjtObj.mjOBJ_LIGHT, "nlight"),
    "material": (mujoco.mjtObj.mjOBJ_MATERIAL, "nmat"),
    "texture": (mujoco.mjtObj.mjOBJ_TEXTURE, "ntex"),
}
_RGB_ROLE = int(mujoco.mjtTextureRole.mjTEXROLE_RGB)
_CUBE_LIKE = (int(mujoco.mjtTexture.mjTEXTURE_CUBE), int(mujoco.mjtTexture.mjTEXTURE_SKYBOX))
# clip ranges of rendering fields after an operation
_FIELD_RANGE = {
    "cam_fovy": (1.0, 179.0), "light_diffuse": (0.0, None), "light_specular": (0.0, None),
    "light_ambient": (0.0, None), "light_active": (0.0, 1.0), "mat_rgba": (0.0, 1.0), "mat_specular": (0.0, 1.0),
    "mat_shininess": (0.0, 1.0), "mat_reflectance": (0.0, 1.0), "mat_emission": (0.0, None),
    "geom_rgba": (0.0, 1.0),
}


def object_names(model: mujoco.MjModel, kind: str) -> list[str]:
    obj, count = _OBJECTS[kind]
    return [mujoco.mj_id2name(model, obj, i) or "" for i in range(getattr(model, count))]


def _select(spec: Randomizer, file: RandomizationSpec, model: mujoco.MjModel, kind: str) -> np.ndarray:
    """Ids of the objects of kind whose names match the target's globs (all if none given)."""
    names = object_names(model, kind)
    patterns = spec.target.names
    ids = match_names(names, patterns)
    if ids.size == 0:
        shown = ", ".join(n for n in names[:10] if n) or "none"
        what = f"matches {patterns}" if patterns is not None else "exists"
        raise file.error(f"{file.locate(spec.name)}.target.names", f"no {kind} {what} (the model's {kind}s: {shown})")
    return ids


def cameras_target(model: mujoco.MjModel) -> np.ndarray:
    """The point closest to every camera's optical axis (least squares): what the cameras look at."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)
    if model.ncam < 2:
        return model.stat.center.copy()
    lhs, rhs = np.zeros((3, 3)), np.zeros(3)
    for c in range(model.ncam):
        d = -data.cam_xmat[c].reshape(3, 3)[:, 2]  # a camera looks along its frame's -z
        proj = np.eye(3) - np.outer(d, d)
        lhs += proj
        rhs += proj @ data.cam_xpos[c]
    if np.linalg.cond(lhs) > 1e8:  # parallel axes: no single target
        return model.stat.center.copy()
    return np.linalg.solve(lhs, rhs)


class BoundVisual(BoundRandomizer):
    """A visual randomizer: samples per copy like any other; writes only into a render model.

    ``elements`` are the selected objects (cameras, lights, materials,
    textures). ``extra`` holds per-copy uniforms drawn from the copy's stream
    right after each sample (random axes, light subsets, texture patterns);
    ``version[i]`` counts copy i's draws, so caches know when to regenerate.
    """

    fields: tuple[str, ...] = ()  # rendering fields this randomizer writes
    extra_per_element = 0
    late = False  # applied after every other model randomizer (total light intensity)

    def __init__(self, spec, file, n_envs: int, elements: np.ndarray, size: int | None = None,
                 per_element: bool | None = None):
        self.elements = np.asarray(elements, dtype=np.int64)
        super().__init__(spec, file, n_envs, len(self.elements) if size is None else size, per_element)
        self.op = OPERATIONS[spec.operation]
        self.version = np.zeros(n_envs, dtype=np.int64)
        self.extra = np.zeros((n_envs, len(self.elements) * self.extra_per_element))

    def draw(self, ids: np.ndarray) -> None:
        super().draw(ids)
        if len(ids) == 0:
            return
        if self.extra.shape[1]:
            self.extra[ids] = self.streams.take(ids, self.extra.shape[1])
        self.version[ids] += 1

    def apply(self, ids: np.ndarray) -> None:
        """Nothing in the simulation: visual values reach a render model through `VisualStack.apply`."""

    def sample(self, i: int) -> np.ndarray:
        """Copy i's sample for each element (a shared sample repeated)."""
        return np.broadcast_to(self.values[i], (len(self.elements),)) if self.size == 1 else self.values[i]

    def apply_to_model(self, i: int, model: mujoco.MjModel) -> None:
        """Write copy i's values into a render model (whose touched fields start nominal)."""


class VisualField(BoundVisual):
    """A rendering field of MjModel (``cam_pos``, ``light_diffuse``, ``mat_rgba``, ...), from nominal values."""

    def __init__(self, spec, file, sim):
        model = sim.model
        target: FieldTarget = spec.target
        field = target.field
        where = f"{file.locate(spec.name)}.target"
        full = getattr(model, field)
        full = full.reshape(full.shape[0], -1)
        names = row_names(model, field, full.shape[0])
        self.rows, self.cols = rows, cols = select_cells(file, where, target, full, names)
        self.field = field
        self.fields = (field,)
        self.nominal = full[np.ix_(rows, cols)].astype(float).copy()
        super().__init__(spec, file, sim.n_envs, rows, size=self.nominal.size)

    def apply_to_model(self, i: int, model: mujoco.MjModel) -> None:
        x = self.values[i].reshape(self.nominal.shape) if self.size > 1 else self.values[i][0]
        new = self.op(self.nominal, x)
        low, high = _FIELD_RANGE.get(self.field, (None, None))
        if low is not None or high is not None:
            new = np.clip(new, low, high)
        if self.field == "light_active":
            new = np.rint(new)
        arr = getattr(model, self.field)
        table = arr.reshape(arr.shape[0], -1)
        table[np.ix_(self.rows, self.cols)] = new
        if self.field == "light_dir":
            rows = table[self.rows]
            table[self.rows] = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def _unit_vectors(u: np.ndarray, upper: bool = False) -> np.ndarray:
    """(n, 3) directions from (n, 2) uniforms: uniform over the sphere (or its upper half)."""
    z = u[:, 0] if upper else 2.0 * u[:, 0] - 1.0  # uniform height: uniform area (Archimedes)
    phi = 2.0 * np.pi * u[:, 1]
    r = np.sqrt(np.maximum(1.0 - z * z, 0.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


class CameraRotation(BoundVisual):
    """Each camera turned by the sampled angle (degrees) about a random axis of its own frame."""

    fields = ("cam_quat",)
    extra_per_element = 2

    def __init__(self, spec, file, sim):
        cams = _select(spec, file, sim.model, "camera")
        self.nominal = sim.model.cam_quat[cams].copy()
        super().__init__(spec, file, sim.n_envs, cams)

    def apply_to_model(self, i, model):
        angle = np.deg2rad(self.op(np.zeros(len(self.elements)), self.sample(i)))
        axes = _unit_vectors(self.extra[i].reshape(-1, 2))
        q = quat_mul(self.nominal, quat_from_axis_angle(axes, angle))
        model.cam_quat[self.elements] = q / np.linalg.norm(q, axis=1, keepdims=True)


class LightCount(BoundVisual):
    """How many of the selected lights are on; which ones is a random subset drawn with the sample."""

    fields = ("light_active",)
    extra_per_element = 1

    def __init__(self, spec, file, sim):
        lights = _select(spec, file, sim.model, "light")
        self.nominal = float(sim.model.light_active[lights].sum())
        super().__init__(spec, file, sim.n_envs, lights, size=1, per_element=False)

    def apply_to_model(self, i, model):
        count = int(np.clip(np.rint(self.op(self.nominal, self.values[i][0])), 0, len(self.elements)))
        on = np.zeros(len(self.elements), dtype=model.light_active.dtype)
        on[np.argsort(self.extra[i], kind="stable")[:count]] = 1
        model.light_active[self.elements] = on


class LightPosition(BoundVisual):
    """Lights placed at the sampled distance from a center, in uniform directions over the upper half-sphere."""

    fields = ("light_pos", "light_dir")
    extra_per_element = 2

    def __init__(self, spec, file, sim):
        model = sim.model
        lights = _select(spec, file, model, "light")
        attached = lights[model.light_bodyid[lights] != 0]
        if attached.size:
            raise file.error(f"{file.locate(spec.name)}.target.names",
                             f"light {model.light(int(attached[0])).name!r} moves with a body; "
                             "light_position places world lights only")
        center = spec.target.center
        self.center = np.asarray(center, float) if center is not None else cameras_target(model)
        self.nominal = np.linalg.norm(model.light_pos[lights] - self.center, axis=1)
        super().__init__(spec, file, sim.n_envs, lights)

    def apply_to_model(self, i, model):
        distance = np.maximum(self.op(self.nominal, self.sample(i)), 0.0)
        d = _unit_vectors(self.extra[i].reshape(-1, 2), upper=True)
        model.light_pos[self.elements] = self.center + distance[:, None] * d
        model.light_dir[self.elements] = -d


class LightIntensity(BoundVisual):
    """Diffuse and specular intensity of each light, as a factor (nominal 1) on what earlier entries left."""

    fields = ("light_diffuse", "light_specular")

    def __init__(self, spec, file, sim):
        super().__init__(spec, file, sim.n_envs, _select(spec, file, sim.model, "light"))

    def apply_to_model(self, i, model):
        factor = np.maximum(self.op(np.ones(len(self.elements)), self.sample(i)), 0.0)[:, None]
        model.light_diffuse[self.elements] *= factor
        model.light_specular[self.elements] *= factor


class LightTotalIntensity(BoundVisual):
    """The lights that are on rescaled together so their mean diffuse intensities sum to the sample."""

    fields = ("light_diffuse", "light_specular")
    late = True

    def __init__(self, spec, file, sim):
        lights = _select(spec, file, sim.model, "light")
        on = sim.model.light_active[lights].astype(bool)
        self.nominal = float(sim.model.light_diffuse[lights[on]].mean(axis=1).sum())
        super().__init__(spec, file, sim.n_envs, lights, size=1, per_element=False)

    def apply_to_model(self, i, model):
        lights = self.elements[model.light_active[self.elements].astype(bool)]
        current = float(model.light_diffuse[lights].mean(axis=1).sum())
        if current <= 0:
            return
        factor = max(float(self.op(self.nominal, self.values[i][0])), 0.0) / current
        model.light_diffuse[lights] *= factor
        model.light_specular[lights] *= factor


class MaterialHSV(BoundVisual):
    """Hue, saturation or value of material colors and of their RGB textures (the operation on each channel)."""

    fields = ("mat_rgba",)
    CHANNEL = {"material_hue": 0, "material_saturation": 1, "material_value": 2}

    def __init__(self, spec, file, sim):
        model = sim.model
        self.channel = self.CHANNEL[spec.target.visual]
        mats = _select(spec, file, model, "material")
        self.textures = model.mat_texid[mats, _RGB_ROLE].copy()  # -1: no texture
        super().__init__(spec, file, sim.n_envs, mats)

    def change(self, hsv: np.ndarray, value: float) -> None:
        """Apply the operation to this randomizer's channel of HSV colors (..., 3), in place."""
        hsv[..., self.channel] = self.op(hsv[..., self.channel], np.float32(value))
        if self.channel:
            hsv[..., self.channel] = np.clip(hsv[..., self.channel], 0.0, 1.0)

    def transform(self, rgb: np.ndarray, value: float) -> np.ndarray:
        """RGB (..., 3) in [0, 1] with this channel changed by the operation."""
        hsv = tex.rgb_to_hsv(rgb)
        self.change(hsv, value)
        return tex.hsv_to_rgb(hsv)

    def apply_to_model(self, i, model):
        values = self.sample(i)
        for k, mat in enumerate(self.elements):
            model.mat_rgba[mat, :3] = self.transform(model.mat_rgba[mat, :3], values[k])

    def texture_value(self, i: int, texid: int) -> list[float]:
        """The values this randomizer applies to texture texid for copy i (one per material using it)."""
        values = self.sample(i)
        return [float(values[k]) for k in np.flatnonzero(self.textures == texid)]


class TextureRandomizer(BoundVisual):
    """A procedural pattern (noise, checker, gradient, stripes) blended over each selected texture.

    The sample is the blend weight (clipped to [0, 1]); the pattern, its two
    colors, frequency, angle and noise seed are drawn with it.
    """

    extra_per_element = tex.PARAMS_PER_TEXTURE

    def __init__(self, spec, file, sim):
        model = sim.model
        textures = _select(spec, file, model, "texture")
        for t in textures:
            if model.tex_nchannel[t] not in (3, 4):
                raise file.error(f"{file.locate(spec.name)}.target.names",
                                 f"texture {model.texture(int(t)).name!r} has {model.tex_nchannel[t]} channel(s); "
                                 "only RGB and RGBA textures can be randomized")
        patterns = spec.target.patterns or list(TEXTURE_PATTERNS)
        self.allowed = tuple(tex.PATTERNS.index(p) for p in patterns)
        super().__init__(spec, file, sim.n_envs, textures)

    def params(self, i: int, k: int) -> dict:
        """Copy i's pattern parameters for its k-th texture."""
        n = tex.PARAMS_PER_TEXTURE
        return tex.pattern_params(self.extra[i, k * n:(k + 1) * n], self.allowed)

    def weight(self, i: int, k: int) -> float:
        return float(np.clip(self.op(0.0, self.sample(i)[k]), 0.0, 1.0))


_IMAGE_NOMINAL = {"blur": 0.0, "brightness": 0.0, "contrast": 1.0, "noise": 0.0}


class ImageEffect(BoundVisual):
    """An effect on the rendered image of each selected camera (see `simreal.render.effects`).

    Noise randomizers each add their own noise field, drawn every frame from a
    per-copy stream of their own (``make_rng(seed, "image_noise", name)``).
    """

    def __init__(self, spec, file, sim):
        target: ImageTarget = spec.target
        self.effect = target.image
        cams = _select(spec, file, sim.model, "camera")
        super().__init__(spec, file, sim.n_envs, cams)
        self.noise_rngs = [make_rng(None, "image_noise", self.name) for _ in range(sim.n_envs)]

    def seed(self, i: int, seed: int | None) -> None:
        super().seed(i, seed)
        self.noise_rngs[i] = make_rng(seed, "image_noise", self.name)

    def per_camera(self, i: int, camera_ids: np.ndarray, current: np.ndarray) -> np.ndarray:
        """The effect's values for the images of camera_ids, composed over ``current`` (one per image)."""
        out = current.copy()
        values = self.sample(i)
        for k, cam in enumerate(camera_ids):
            hit = np.flatnonzero(self.elements == cam)
            if len(hit):
                out[k] = self.op(current[k], values[hit[0]])
        return out


_PARAM_CLASSES = {
    "camera_rotation": CameraRotation,
    "light_count": LightCount,
    "light_position": LightPosition,
    "light_intensity": LightIntensity,
    "light_total_intensity": LightTotalIntensity,
    "material_hue": MaterialHSV,
    "material_saturation": MaterialHSV,
    "material_value": MaterialHSV,
    "texture": TextureRandomizer,
}
assert set(_PARAM_CLASSES) == set(VISUAL_PARAMS)


def bind(stack, r: Randomizer) -> BoundVisual:
    """The visual family's binder (`simreal.randomize.spec.FAMILIES`): drawn by the stack, applied by renderers."""
    return bind_visual(r, stack.spec, stack.sim)


def bind_visual(spec: Randomizer, file: RandomizationSpec, sim) -> BoundVisual:
    """Bind one entry of the ``visual`` list to an N-copy simulation (``sim.model``, ``sim.n_envs``)."""
    target = spec.target
    if isinstance(target, FieldTarget):
        return VisualField(spec, file, sim)
    if isinstance(target, ImageTarget):
        return ImageEffect(spec, file, sim)
    return _PARAM_CLASSES[target.visual](spec, file, sim)


class VisualStack:
    """The visual randomizers of a stack, in YAML order, applied to render models copy by copy."""

    def __init__(self, items: list[BoundVisual], model: mujoco.MjModel):
        self.items = list(items)
        self._model_items = [b for b in self.items if not isinstance(b, ImageEffect) and not b.late]
        self._model_items += [b for b in self.items if b.late]
        self._effects = [b for b in self.items if isinstance(b, ImageEffect)]
        touched = sorted({f for b in self._model_items for f in b.fields})
        self._nominal_fields = {f: getattr(model, f).copy() for f in touched}
        # texture id -> the randomizers that change it, in YAML order
        self._texture_sources: dict[int, list[BoundVisual]] = {}
        for b in self.items:
            if isinstance(b, TextureRandomizer):
                ids = b.elements
            elif isinstance(b, MaterialHSV):
                ids = b.textures[b.textures >= 0]
            else:
                continue
            for t in np.unique(ids):
                self._texture_sources.setdefault(int(t), []).append(b)
        self._model = model
        self._tex_meta: dict[int, tuple] = {}  # filled on first use: building a stack stays cheap
        self._cache: dict[tuple[int, int], tuple[tuple, np.ndarray]] = {}

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def texture_ids(self) -> list[int]:
        """The textures some randomizer changes."""
        return list(self._texture_sources)

    def texture_sources(self, texid: int) -> list[BoundVisual]:
        """The randomizers that change texture texid, in YAML order."""
        return list(self._texture_sources[texid])

    def restore_nominal(self, model: mujoco.MjModel) -> None:
        """Put the fields `apply` writes back to their nominal values (cached at bind time)."""
        for field, nominal in self._nominal_fields.items():
            getattr(model, field)[...] = nominal

    def apply(self, i: int, model: mujoco.MjModel) -> None:
        """Dress render model ``model`` (a copy of the sim's) with copy i's values; textures excepted."""
        self.restore_nominal(model)
        for b in self._model_items:
            b.apply_to_model(i, model)

    def texture_key(self, i: int, texid: int) -> tuple:
        """What copy i's version of texture texid depends on: equal keys, equal pixels."""
        return (i,) + tuple(int(b.version[i]) for b in self._texture_sources[texid])

    def texture_data(self, i: int, texid: int) -> np.ndarray:
        """Copy i's pixels of texture texid, flat uint8 in ``tex_data`` layout (cached per copy)."""
        key = self.texture_key(i, texid)
        hit = self._cache.get((i, texid))
        if hit is not None and hit[0] == key:
            return hit[1]
        if texid not in self._tex_meta:
            m = self._model
            w, h, c, adr = int(m.tex_width[texid]), int(m.tex_height[texid]), int(m.tex_nchannel[texid]), int(m.tex_adr[texid])
            faces = 6 if m.tex_type[texid] in _CUBE_LIKE and h == 6 * w else 1
            nominal = m.tex_data[adr:adr + w * h * c].reshape(h, w, c).astype(np.float32) / 255.0
            self._tex_meta[texid] = (adr, h, w, c, faces, nominal)
        adr, h, w, c, faces, nominal = self._tex_meta[texid]
        rgb = nominal[..., :3].copy()
        changes: list[tuple[MaterialHSV, float]] = []  # consecutive HSV changes share one conversion

        def convert(rgb: np.ndarray) -> np.ndarray:
            if not changes:
                return rgb
            hsv = tex.rgb_to_hsv(rgb)
            for b, value in changes:
                b.change(hsv, value)
            changes.clear()
            return tex.hsv_to_rgb(hsv)

        for b in self._texture_sources[texid]:
            if isinstance(b, TextureRandomizer):
                rgb = convert(rgb)
                k = int(np.flatnonzero(b.elements == texid)[0])
                weight = b.weight(i, k)
                if weight > 0:
                    p = b.params(i, k)
                    pattern = tex.procedural(p["pattern"], h, w, p["color1"], p["color2"], p["frequency"],
                                             p["angle"], p["seed"], faces=faces)
                    rgb = (1.0 - weight) * rgb + weight * pattern
            else:
                changes += [(b, value) for value in b.texture_value(i, texid)]
        rgb = convert(rgb)
        out = nominal.copy()
        out[..., :3] = rgb
        data = np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(-1)
        self._cache[(i, texid)] = (key, data)
        return data

    def image_effects(self, i: int, images: np.ndarray, camera_ids: np.ndarray) -> None:
        """Apply copy i's image effects to images (n, H, W, 3) uint8 in place; image k is from camera_ids[k]."""
        if not self._effects:
            return
        n = len(camera_ids)
        current = {name: np.full(n, value, dtype=np.float32) for name, value in _IMAGE_NOMINAL.items()}
        noise = []
        for b in self._effects:
            if b.effect == "noise":
                noise.append((b.per_camera(i, camera_ids, np.zeros(n, np.float32)), b.noise_rngs[i]))
            else:
                current[b.effect] = b.per_camera(i, camera_ids, current[b.effect])
        apply_effects(images, current["blur"], current["brightness"], current["contrast"], noise)
