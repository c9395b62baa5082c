"""The randomization YAML: schema, loading (with ``extends``), one-line errors.

A file is a list of randomizers. Each names one randomized quantity::

    version: 1
    extends: [base.yaml]            # merged first; an entry of the same name here replaces it
    remove: [gravity]               # inherited entries to drop
    randomizers:
      - name: object_mass
        target: {field: body_mass, names: [object]}   # MjModel field, rows by name globs
        distribution: {type: uniform, low: 0.5, high: 1.5}
        operation: scale            # set | scale | add, applied to the cached nominal value
        resample: episode           # episode | step | {every_n_steps: N}
        per_element: false          # one sample shared by the selected elements, or one each
        source: "Dactyl Table 1"    # where the value comes from (free text)

Targets: ``{field: NAME, names: [GLOB...], columns: [INT...]}`` (an MjModel
array field, or ``opt.NAME`` for an MjOption field such as ``opt.gravity``),
``{observation: KEY}`` (observation noise; the privileged state stays clean) and
``{action: all | [ACTUATOR GLOB...]}`` (action noise).

A second list, ``visual``, holds randomizers of the rendered images only (the
physics and the measured observations never see them), in the same format::

    visual:
      - name: camera_fov
        target: {field: cam_fovy}                      # a rendering field (VISUAL_FIELDS)
        distribution: {type: uniform, low: -1.0, high: 1.0}
        operation: add
      - name: lights
        target: {visual: light_count}                  # a scene parameter (VISUAL_PARAMS)
        distribution: {type: choice, values: [4, 5, 6]}
        operation: set
      - name: contrast
        target: {image: contrast}                      # an image effect (IMAGE_EFFECTS)
        distribution: {type: uniform, low: 0.5, high: 1.5}
        operation: set

Every problem is reported as one line naming the file, the key path and what was
expected: ``RandomizationError: dactyl.yaml: randomizers[2].distribution.low:
Input should be a valid number (got 'abc')``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from simreal.randomize.distributions import DISTRIBUTION_TYPES, Distribution, FiniteFloat, WholeNumber, _not_bool

SHIPPED_DIR = pathlib.Path(__file__).resolve().parents[2] / "randomizations"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*$"


class RandomizationError(ValueError):
    """A randomization file (or its use with an env) is invalid. The message is one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_duplicates(items: list | None, what: str) -> list | None:
    """items unchanged, or a ValueError naming the first repeated entry (one pass, so long lists stay fast)."""
    first: dict = {}
    for i, item in enumerate(items or ()):
        j = first.setdefault(item, i)
        if j != i:
            raise ValueError(f"duplicate {what} {item!r} (entries {j} and {i})")
    return items


class _Named(_Strict):
    """A target whose ``names`` globs select elements: the same glob twice is a mistake."""

    @field_validator("names", mode="after", check_fields=False)
    @classmethod
    def _unique_names(cls, names):
        return _no_duplicates(names, "name")


class FieldTarget(_Named):
    """An MjModel array field (``body_mass``) or MjOption field (``opt.gravity``)."""

    field: str = Field(min_length=1)
    names: list[str] | None = Field(default=None, description="glob patterns over the names of the field's objects")
    columns: list[Annotated[WholeNumber, Field(ge=0)]] | None = Field(
        default=None, description="components of each row, each at most once")

    @field_validator("columns", mode="after")
    @classmethod
    def _unique_columns(cls, columns):
        return _no_duplicates(columns, "column")


class ObservationTarget(_Strict):
    """Noise on a policy observation key."""

    observation: str = Field(min_length=1)


class ActionTarget(_Strict):
    """Noise on the action, all channels or those of actuators matching globs."""

    action: Literal["all"] | list[str]

    @field_validator("action", mode="after")
    @classmethod
    def _unique_names(cls, action):
        return action if action == "all" else _no_duplicates(action, "name")


class EffectTarget(_Named):
    """A parameter of an unmodeled effect, for the elements whose names match (all if omitted).

    The effects and their parameters are those registered in
    `simreal.randomize.effects` (shipped: backlash.width (rad, per actuator),
    action_delay.delay (s, per actuator), marker_freeze.rate (1/s), .duration (s,
    mean), .occlusion_distance (m) (per marker), object_force.probability (per
    control step), .scale (N per kg of nominal mass, std), .decay_time (s) (per
    body)). Unnamed actuators are named ``actuator<i>``.
    """

    effect: str = Field(min_length=1, description="a registered effect (simreal.randomize.effects)")
    param: str = Field(min_length=1)
    names: list[str] | None = Field(default=None, description="glob patterns over the effect's element names")

    @field_validator("effect", mode="after")
    @classmethod
    def _known_effect(cls, effect):
        from simreal.randomize import effects  # the registry imports the effect modules, which need this one

        if effect not in effects.effect_names():
            raise ValueError(f"unknown effect {effect!r} (effects: {', '.join(effects.effect_names())})")
        return effect

    @model_validator(mode="after")
    def _known_param(self):
        from simreal.randomize import effects

        known = effects.effect_params(self.effect)
        if self.param not in known:
            raise ValueError(f"effect {self.effect!r} has parameters {', '.join(known)}; got {self.param!r}")
        return self


class AdrSettings(_Strict):
    """Automatic domain randomization of one randomizer's uniform range (OpenAI 2019)."""

    step: FiniteFloat = Field(gt=0, description="how much a boundary moves per update")
    limits: tuple[FiniteFloat, FiniteFloat] = Field(description="the range never grows past [low, high]")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.limits[0] <= self.limits[1]:
            raise ValueError(f"limits must be [low, high] with low <= high; got {list(self.limits)}")
        return self


class AdrConfig(_Strict):
    """File-wide ADR settings: what performance is measured and when boundaries move."""

    metric: str = Field(default="return", description="'return' or a key of the episode's last info")
    thresholds: tuple[FiniteFloat, FiniteFloat] = Field(
        description="[low, high]: narrow below low, widen at or above high")
    buffer_size: WholeNumber = Field(default=20, ge=1, description="episodes per boundary before a decision")
    boundary_probability: FiniteFloat = Field(default=0.5, ge=0.0, le=1.0,
                                        description="chance that an episode pins one parameter at a boundary")

    @model_validator(mode="after")
    def _ordered(self):
        if not self.thresholds[0] <= self.thresholds[1]:
            raise ValueError(f"thresholds must be [low, high] with low <= high; got {list(self.thresholds)}")
        return self


# ------------------------------------------------------------------ visual targets
# MjModel fields that only change what the renderer draws. In the file's ``visual`` list a
# ``{field: ...}`` target must name one of these; the physics never sees the change.
VISUAL_FIELDS: dict[str, str] = {
    "cam_pos": "camera position (m, in its parent body's frame)",
    "cam_fovy": "camera vertical field of view (degrees)",
    "light_pos": "light position (m)",
    "light_dir": "light direction (normalized after the operation)",
    "light_diffuse": "light diffuse color (RGB)",
    "light_specular": "light specular color (RGB)",
    "light_ambient": "light ambient color (RGB)",
    "light_active": "light on (1) or off (0), rounded",
    "mat_rgba": "material color (RGBA, clipped to [0, 1])",
    "mat_specular": "material specularity [0, 1]",
    "mat_shininess": "material shininess [0, 1]",
    "mat_reflectance": "material reflectance [0, 1] (mirror-like planes)",
    "mat_emission": "material emission",
    "geom_rgba": "geom color (RGBA, clipped to [0, 1]; used by geoms without a material)",
}

# visual parameter -> (object kind its names select, what one sample means)
VISUAL_PARAMS: dict[str, tuple[str, str]] = {
    "camera_rotation": ("camera", "angle (degrees) of a rotation about a random axis, drawn with each sample"),
    "light_count": ("light", "number of lights on, a random subset of the selected lights (rounded)"),
    "light_position": ("light", "distance (m) from the cameras' common target, in a random direction over "
                                "the upper half-sphere; the light points at the target"),
    "light_intensity": ("light", "diffuse and specular intensity of each light (nominal 1)"),
    "light_total_intensity": ("light", "sum of the mean diffuse intensity of the lights that are on; applied "
                                       "after every other light randomizer, keeping their ratios"),
    "material_hue": ("material", "hue shift in turns (nominal 0), on the material color and its texture"),
    "material_saturation": ("material", "saturation (nominal: each color's own), on color and texture"),
    "material_value": ("material", "value/brightness (nominal: each color's own), on color and texture"),
    "texture": ("texture", "blend weight of a procedural pattern over the texture (0 nominal, 1 pattern only)"),
}
TEXTURE_PATTERNS = ("noise", "checker", "gradient", "stripes")
# image effect -> what one sample means (applied in this order, per camera image)
IMAGE_EFFECTS: dict[str, str] = {
    "blur": "Gaussian blur sigma in pixels (nominal 0)",
    "brightness": "offset added to every pixel, in units of full scale (nominal 0)",
    "contrast": "factor on each pixel's distance from the image mean (nominal 1)",
    "noise": "per-pixel Gaussian noise std, in units of the image's own std (nominal 0), new every frame",
}


class VisualTarget(_Named):
    """A parameter of the rendered scene that is not one model field (see ``VISUAL_PARAMS``)."""

    visual: Literal[tuple(VISUAL_PARAMS)]  # type: ignore[valid-type]
    names: list[str] | None = Field(default=None, description="glob patterns over camera, light, material or "
                                                              "texture names (all if omitted)")
    patterns: list[Literal[TEXTURE_PATTERNS]] | None = Field(  # type: ignore[valid-type]
        default=None, description="texture only: the procedural patterns to choose from (default all)")
    center: tuple[FiniteFloat, FiniteFloat, FiniteFloat] | None = Field(
        default=None, description="light_position only: the point lights circle (default: where the cameras look)")

    @model_validator(mode="after")
    def _options_fit(self):
        if self.patterns is not None and self.visual != "texture":
            raise ValueError(f"'patterns' is an option of visual: texture, not of {self.visual!r}")
        if self.patterns is not None and not self.patterns:
            raise ValueError("patterns must name at least one of " + ", ".join(TEXTURE_PATTERNS))
        if self.center is not None and self.visual != "light_position":
            raise ValueError(f"'center' is an option of visual: light_position, not of {self.visual!r}")
        return self


class ImageTarget(_Named):
    """An effect on the rendered images of the cameras whose names match (all if omitted)."""

    image: Literal[tuple(IMAGE_EFFECTS)]  # type: ignore[valid-type]
    names: list[str] | None = Field(default=None, description="glob patterns over camera names")


# ------------------------------------------------------------------ families
@dataclasses.dataclass(frozen=True)
class Family:
    """A kind of randomizer: the target keys that select it in a file, and what binds it to a simulation.

    ``bind`` is ``"module:function"``, imported when a file is bound: ``function(stack, randomizer)``
    returns the `simreal.randomize.base.BoundRandomizer` (its class declares the stack ``hooks`` it
    takes part in). ``rendered`` families are the file's ``visual`` list: drawn with the others,
    applied only by the renderers, kept out of the privileged state.
    """

    name: str
    targets: tuple[str, ...]
    bind: str
    rendered: bool = False


# target key in a file -> its schema (a strict pydantic model); the discriminator of `Target`
TARGETS: dict[str, type[BaseModel]] = {"field": FieldTarget, "observation": ObservationTarget,
                                       "action": ActionTarget, "effect": EffectTarget, "visual": VisualTarget,
                                       "image": ImageTarget}
# the families, in the order the stack applies them (see simreal.randomize.stack)
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("physics", ("field",), "simreal.randomize.physics:bind"),
    Family("effect", ("effect",), "simreal.randomize.stack:bind_effect"),
    Family("action", ("action",), "simreal.randomize.action:bind"),
    Family("observation", ("observation",), "simreal.randomize.observation:bind"),
    Family("visual", ("field", "visual", "image"), "simreal.randomize.visual:bind", rendered=True),
)}


def _target_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in TARGETS:
            if kind in value:
                return kind
        return None
    if isinstance(value, BaseModel):
        return next((k for k, cls in TARGETS.items() if type(value) is cls), None)
    return None


def _target_type() -> Any:
    """The `Randomizer.target` type: a union of TARGETS tagged by their keys."""
    keys = [f"'{k}'" for k in TARGETS]
    listed = ", ".join(keys[:-1]) + f" or {keys[-1]}" if len(keys) > 1 else keys[0]
    return Annotated[
        Union[tuple(Annotated[cls, Tag(key)] for key, cls in TARGETS.items())],
        Discriminator(_target_kind, custom_error_type="target_kind",
                      custom_error_message=f"expected a mapping with one of the keys {listed}"),
    ]


Target = _target_type()


def target_key(target: BaseModel) -> str:
    """The file key that selected a target model (``field``, ``effect``, ...)."""
    return next(k for k, cls in TARGETS.items() if type(target) is cls)


def family_of(target: BaseModel, rendered: bool = False) -> Family | None:
    """The family a target belongs to in ``randomizers`` (or, rendered=True, in ``visual``); None if none."""
    key = target_key(target)
    return next((f for f in FAMILIES.values() if f.rendered == rendered and key in f.targets), None)


def register_family(family: Family, targets: dict[str, type[BaseModel]] | None = None,
                    before: str | None = None) -> None:
    """Add a randomizer family (and the schemas of its new target keys) to every file read from now on.

    ``before`` places it in the stack's order ahead of that family (default: last but the
    rendered ones). Adding a family is its module (target model, bound class with its hooks, bind
    function) plus this call; ``unregister_family`` undoes it.
    """
    if family.name in FAMILIES:
        raise ValueError(f"randomizer family {family.name!r} is already registered")
    targets = dict(targets or {})
    clash = sorted(set(targets) & set(TARGETS))
    if clash:
        raise ValueError(f"target key {clash[0]!r} is already registered")
    missing = [k for k in family.targets if k not in TARGETS and k not in targets]
    if missing:
        raise ValueError(f"family {family.name!r}: target key {missing[0]!r} has no schema (pass it in targets)")
    TARGETS.update(targets)
    names = list(FAMILIES)
    at = names.index(before) if before in FAMILIES else next(
        (i for i, n in enumerate(names) if FAMILIES[n].rendered), len(names))
    entries = list(FAMILIES.values())
    entries.insert(at, family)
    FAMILIES.clear()
    FAMILIES.update((f.name, f) for f in entries)
    _rebuild_schema()


def unregister_family(name: str) -> None:
    """Remove a family added by `register_family`, with the target keys no other family uses."""
    family = FAMILIES.pop(name)
    used = {k for f in FAMILIES.values() for k in f.targets}
    for key in family.targets:
        if key not in used:
            TARGETS.pop(key, None)
    _rebuild_schema()


def _rebuild_schema() -> None:
    """Give the file models the current union of targets."""
    from pydantic.fields import FieldInfo

    global Target
    Target = _target_type()
    for model in (Randomizer, VisualRandomizer):
        info = FieldInfo.from_annotation(Target)
        model.__pydantic_fields__["target"] = info
        model.model_rebuild(force=True)
    RandomizationSpec.model_rebuild(force=True)


class EveryNSteps(_Strict):
    every_n_steps: WholeNumber = Field(ge=1)


def _resample_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "named"
    if isinstance(value, (dict, EveryNSteps)):
        return "every"
    return None


Resample = Annotated[
    Union[Annotated[Literal["episode", "step"], Tag("named")], Annotated[EveryNSteps, Tag("every")]],
    Discriminator(
        _resample_kind,
        custom_error_type="resample_kind",
        custom_error_message="expected 'episode', 'step' or {every_n_steps: N}",
    ),
]


class Randomizer(_Strict):
    """One randomized quantity."""

    name: str = Field(pattern=NAME_PATTERN)
    target: Target
    distribution: Distribution
    operation: Literal["set", "scale", "add"]
    resample: Resample = "episode"
    per_element: bool = False
    enabled: bool = True
    source: str = ""
    adr: AdrSettings | None = Field(default=None, description="let ADR move this uniform range (needs a file-level 'adr')")

    @model_validator(mode="after")
    def _adr_needs_uniform(self):
        if self.adr is not None:
            d = self.distribution
            if d.type != "uniform":
                raise ValueError(f"adr needs a uniform distribution (its range is what ADR moves); got {d.type!r}")
            lo, hi = self.adr.limits
            if not lo <= d.low <= d.high <= hi:
                raise ValueError(f"the initial range [{d.low}, {d.high}] must lie inside adr.limits [{lo}, {hi}]")
        return self

    @model_validator(mode="after")
    def _not_visual(self):
        if family_of(self.target) is None:
            simulated = {k for f in FAMILIES.values() if not f.rendered for k in f.targets}
            rendered = [k for k in TARGETS if k not in simulated]
            raise ValueError(f"{' and '.join(rendered)} targets go in the file's 'visual' list, not in 'randomizers'")
        return self

    @property
    def family(self) -> str:
        return family_of(self.target).name

    @property
    def period(self) -> int:
        """Steps between resamples; 0 for once per episode."""
        if self.resample == "episode":
            return 0
        if self.resample == "step":
            return 1
        return self.resample.every_n_steps


class VisualRandomizer(Randomizer):
    """One randomized quantity of the rendered images (the file's ``visual`` list).

    Targets: ``{field: NAME, names, columns}`` with NAME one of ``VISUAL_FIELDS``,
    ``{visual: PARAM, names}`` with PARAM one of ``VISUAL_PARAMS``, or
    ``{image: EFFECT, names}`` with EFFECT one of ``IMAGE_EFFECTS``. They act on
    what the cameras see only; the physics and the measured observations are untouched.
    """

    @model_validator(mode="after")
    def _not_visual(self):
        target = self.target
        if isinstance(target, FieldTarget) and target.field not in VISUAL_FIELDS:
            raise ValueError(f"{target.field!r} is not a rendering field (visual fields: {', '.join(VISUAL_FIELDS)}); "
                             f"physics fields go in 'randomizers'")
        if family_of(target, rendered=True) is None:
            keys = [k for f in FAMILIES.values() if f.rendered for k in f.targets]
            raise ValueError("a visual randomizer targets " + ", ".join("{%s: ...}" % k for k in keys))
        return self

    @property
    def family(self) -> str:
        return family_of(self.target, rendered=True).name


class RandomizationSpec(_Strict):
    """A whole randomization file, after ``extends`` and ``remove`` are resolved."""

    version: Annotated[Literal[1], BeforeValidator(_not_bool)] = 1
    description: str = ""
    extends: list[str] = Field(default_factory=list, description="files merged first, relative to this file")
    remove: list[str] = Field(default_factory=list, description="names of inherited randomizers to drop")
    adr: AdrConfig | None = Field(default=None, description="automatic domain randomization settings")
    randomizers: list[Randomizer] = Field(default_factory=list)
    visual: list[VisualRandomizer] = Field(default_factory=list,
                                           description="randomizers of the rendered images (cameras, lights, "
                                                       "materials, textures, image effects)")
    _source: str = PrivateAttr(default="<memory>")

    @model_validator(mode="after")
    def _unique_names(self):
        seen = set()
        for where, items in (("randomizers", self.randomizers), ("visual", self.visual)):
            for i, r in enumerate(items):
                if r.name in seen:
                    raise ValueError(f"{where}[{i}].name: duplicate name {r.name!r}")
                seen.add(r.name)
        return self

    def adr_randomizers(self) -> list[Randomizer]:
        return [r for r in self.enabled() + self.enabled_visual() if r.adr is not None]

    def enabled_visual(self) -> list[VisualRandomizer]:
        """The enabled entries of the ``visual`` list."""
        return [r for r in self.visual if r.enabled]

    @property
    def source(self) -> str:
        return self._source

    def enabled(self) -> list[Randomizer]:
        return [r for r in self.randomizers if r.enabled]

    def error(self, where: str, message: str) -> RandomizationError:
        """A one-line error about this spec at key path `where`."""
        return RandomizationError(f"{self._source}: {where}: {message}")

    def locate(self, name: str) -> str:
        for where, items in (("randomizers", self.randomizers), ("visual", self.visual)):
            for i, r in enumerate(items):
                if r.name == name:
                    return f"{where}[{i}] ({name})"
        return name


_TAGS = DISTRIBUTION_TYPES + ("field", "observation", "action", "effect", "visual", "image", "named", "every")


def _format_loc(loc: tuple, data: Any) -> str:
    parts: list[str] = []
    node = data
    skip_tag = False
    for item in loc:
        if skip_tag and isinstance(item, str) and item in _TAGS:
            skip_tag = False
            continue  # a union's tag, not a key of the file
        skip_tag = item in ("distribution", "target", "resample")
        if isinstance(item, int):
            parts.append(f"[{item}]")
            label = None
            if isinstance(node, list) and 0 <= item < len(node):
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label = node["name"]
            if label and parts[:-1] in (["randomizers"], ["visual"]):
                parts[-1] += f" ({label})"
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def _one_line(source: str, exc: ValidationError, data: Any) -> RandomizationError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    msg = first["msg"]
    if first["type"] == "resample_kind" or first["type"] == "literal_error" and "resample" in first["loc"]:
        msg = "expected 'episode', 'step' or {every_n_steps: N}"
    elif first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    elif first["type"].startswith("value_error"):
        msg = msg.removeprefix("Value error, ")
    inp = first.get("input")
    shows_input = first["type"] not in ("missing", "extra_forbidden") and (inp is None or isinstance(inp, (str, int, float)))
    got = f" (got {inp!r})" if shows_input else ""
    more = f" (+{len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    loc = _format_loc(tuple(first["loc"]), data)
    nested = re.match(r"^((?:randomizers|visual)\[\d+\][.\w]*): (.*)$", msg)
    if not first["loc"] and nested:  # a whole-file check that names its own key path
        loc, msg = nested.groups()
    text = f"{source}: {loc}: {msg}{got}{more}".replace("\n", " ")
    return RandomizationError(re.sub(r"\s+", " ", text))


def parse_spec(data: Any, source: str = "<memory>") -> RandomizationSpec:
    """Validate already-loaded YAML data (no ``extends`` resolution)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RandomizationError(f"{source}: (top level): expected a mapping with a 'randomizers' list, "
                                 f"got {type(data).__name__}")
    try:
        spec = RandomizationSpec.model_validate(data)
    except ValidationError as exc:
        raise _one_line(source, exc, data) from None
    spec._source = source
    return spec


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it: same rules, faster
MAX_DEPTH = 64
"""Deepest nesting a randomization file may use (the format itself needs 6 levels)."""
_UNIQUE_LISTS = {"columns": "column", "names": "name"}  # target lists that hold each entry once


def _yaml_error(path: pathlib.Path, exc: yaml.YAMLError) -> RandomizationError:
    mark = getattr(exc, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return RandomizationError(re.sub(r"\s+", " ", f"{path}{where}: invalid YAML: {problem}"))


def _scan(path: pathlib.Path, text: str) -> int:
    """One streaming pass over the YAML events, before PyYAML builds any Python object.

    Refuses, at the first offending event, what would otherwise cost a traceback or
    seconds: nesting deeper than MAX_DEPTH (PyYAML's composer recurses per level), and
    a repeated entry in a target's ``columns`` or ``names`` (a 200,000-entry list fails
    at its second entry, not after it is parsed). Returns the number of nodes (0: an empty file,
    or comments and document markers only).
    """
    loader = _YAML_LOADER(text)
    frames: list[dict] = []  # open mappings and sequences, outermost first
    nodes = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                frames.pop()
                _took_value(frames)
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            if frames or not (isinstance(event, yaml.ScalarEvent) and event.value == "" and event.implicit[0]):
                nodes += 1  # a bare '---' holds one empty scalar: still an empty file
            parent = frames[-1] if frames else None
            if parent is not None and parent["kind"] == "seq":
                parent["key"] += 1
                if parent.get("seen") is not None and isinstance(event, yaml.ScalarEvent):
                    value = int(event.value) if event.value.isdigit() and event.implicit[0] else event.value
                    first = parent["seen"].setdefault(value, parent["key"])
                    if first != parent["key"]:
                        loc = _scan_loc(frames)
                        raise RandomizationError(f"{path}: {loc}: duplicate {parent['what']} {value!r} "
                                                 f"(entries {first} and {parent['key']})")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(frames) >= MAX_DEPTH:
                    mark = event.start_mark
                    raise RandomizationError(f"{path}:{mark.line + 1}:{mark.column + 1}: nested more than "
                                             f"{MAX_DEPTH} levels deep (a randomization file needs about 6)")
                frame: dict = {"kind": "map" if isinstance(event, yaml.MappingStartEvent) else "seq",
                               "key": None if isinstance(event, yaml.MappingStartEvent) else -1, "is_key": True}
                keys = [f["key"] for f in frames]
                if frame["kind"] == "seq" and len(keys) >= 2 and keys[-2] == "target" and keys[-1] in _UNIQUE_LISTS:
                    frame["seen"], frame["what"] = {}, _UNIQUE_LISTS[keys[-1]]
                frames.append(frame)
                continue
            if parent is not None and parent["kind"] == "map":
                if parent["is_key"]:
                    parent["key"] = event.value if isinstance(event, yaml.ScalarEvent) else None
                    parent["is_key"] = False
                    continue
                if parent["key"] == "name" and isinstance(event, yaml.ScalarEvent):
                    parent["label"] = event.value
                _took_value(frames)
    finally:
        loader.dispose()
    return nodes


def _took_value(frames: list[dict]) -> None:
    """A mapping's value (scalar or a whole closed container) is done: its next node is a key."""
    if frames and frames[-1]["kind"] == "map":
        frames[-1]["is_key"] = not frames[-1]["is_key"]


def _scan_loc(frames: list[dict]) -> str:
    """The key path of the innermost open container, as `_format_loc` writes it."""
    parts: list[str] = []
    for depth, frame in enumerate(frames[:-1]):
        parts.append(f"[{frame['key']}]" if frame["kind"] == "seq" else ("." if parts else "") + str(frame["key"]))
        child = frames[depth + 1]
        if frame["kind"] == "seq" and parts[:-1] in (["randomizers"], ["visual"]) and child.get("label"):
            parts[-1] += f" ({child['label']})"
    return "".join(parts)


def read_yaml(path: pathlib.Path) -> Any:
    """A user's YAML file, loaded with one-line errors: missing, unreadable, not UTF-8, empty, nested
    too deeply or invalid (`RandomizationError`, naming the file and, where it can, the line)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RandomizationError(f"{path}: file not found") from None
    except OSError as exc:
        raise RandomizationError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RandomizationError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                                 f"save the file as UTF-8") from None
    try:
        if _scan(path, text) == 0:
            raise RandomizationError(f"{path}: the file is empty")
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None
    except RecursionError:  # the scan bounds the depth; kept so no input can end in a traceback
        raise RandomizationError(f"{path}: nested too deeply to load") from None


def resolve_path(name: str | pathlib.Path, relative_to: pathlib.Path | None = None) -> pathlib.Path:
    """A file path as given, relative to an including file, or a shipped file by bare name."""
    path = pathlib.Path(name)
    candidates = [path] if path.is_absolute() else []
    if not path.is_absolute():
        if relative_to is not None:
            candidates.append(relative_to / path)
        candidates += [pathlib.Path.cwd() / path, SHIPPED_DIR / path]
        if not path.suffix:
            candidates.append(SHIPPED_DIR / f"{name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0] if candidates else path


def load_spec(path: str | pathlib.Path, _chain: tuple[pathlib.Path, ...] = ()) -> RandomizationSpec:
    """Load, resolve ``extends`` (depth first, in order) and ``remove``, and validate a file.

    A randomizer in the including file replaces an inherited one of the same
    name in place; new ones are appended.
    """
    file = resolve_path(path).resolve() if not _chain else pathlib.Path(path).resolve()
    if file in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, file))
        raise RandomizationError(f"{_chain[-1]}: extends: circular include ({cycle})")
    data = read_yaml(file)
    spec = parse_spec(data, str(file))
    merged: dict[str, Randomizer] = {}
    merged_visual: dict[str, VisualRandomizer] = {}  # the 'visual' list, merged the same way
    adr = spec.adr
    for i, parent_name in enumerate(spec.extends):
        parent_path = resolve_path(parent_name, file.parent)
        if not parent_path.is_file():
            raise RandomizationError(f"{file}: extends[{i}]: file {parent_name!r} not found")
        parent = load_spec(parent_path, (*_chain, file))
        for r in parent.randomizers:
            merged_visual.pop(r.name, None)
            merged[r.name] = r
        for r in parent.visual:
            merged.pop(r.name, None)
            merged_visual[r.name] = r
        if spec.adr is None and parent.adr is not None:
            adr = parent.adr
    for i, name in enumerate(spec.remove):
        if name not in merged and name not in merged_visual:
            raise RandomizationError(f"{file}: remove[{i}]: no inherited randomizer named {name!r}")
        merged.pop(name, None)
        merged_visual.pop(name, None)
    for r in spec.randomizers:
        merged_visual.pop(r.name, None)  # an entry replaces an inherited one of its name, in either list
        merged[r.name] = r
    for r in spec.visual:
        merged.pop(r.name, None)
        merged_visual[r.name] = r
    resolved = RandomizationSpec(version=spec.version, description=spec.description, adr=adr,
                                 randomizers=list(merged.values()), visual=list(merged_visual.values()))
    resolved._source = str(file)
    if resolved.adr_randomizers() and resolved.adr is None:
        first = resolved.adr_randomizers()[0].name
        raise RandomizationError(f"{file}: {resolved.locate(first)}.adr: needs the file-level 'adr' settings "
                                 f"(metric, thresholds)")
    return resolved


def json_schema() -> dict:
    """JSON Schema of the file format, for editors (completion and checking)."""
    schema = RandomizationSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "simreal randomization file"
    return schema
