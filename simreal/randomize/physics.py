"""Physics randomization: MjModel fields edited in place, per copy, from cached nominal values.

Writes go to ``mujoco.batch`` expanded fields (one row per copy), never to the
shared model, and always start from the nominal value cached at bind time, so
nothing compounds across episodes. Derived quantities follow:

* ``body_mass`` -> ``body_inertia`` scaled by the same ratio (a density change);
* ``geom_size`` of primitives -> ``geom_rbound`` and ``geom_aabb``;
* position-actuator gains ``actuator_gainprm[:, 0]`` -> ``actuator_biasprm[:, 1] = -kp``;
* ``jnt_range`` with both limits randomized -> kept ordered (lower <= upper);
* any field ``mj_setConst`` reads, and the ``opt.*`` solver settings -> ``set_const`` for those copies
  (physical constants such as ``opt.timestep`` and ``opt.gravity`` need none).
No recompiling: a reset's randomization costs microseconds, not the ~40 ms of a compile.

At bind time every value a randomizer can write is checked against the field's physical
domain (`FIELD_DOMAINS`): the distribution's support (uniform, loguniform and truncnormal
bounds, choice values, a constant; ADR's ``limits`` for an ADR range) through the operation on
each nominal value. A normal with std > 0 has no bounds, so it is refused on any field whose
domain it could leave: use a truncnormal with bounds inside the domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import mujoco.batch
import numpy as np

from simreal.randomize.base import OPERATIONS, BoundRandomizer, match_names

# field prefix -> MuJoCo object type whose names select rows
_PREFIX_OBJ = (
    ("body_", mujoco.mjtObj.mjOBJ_BODY),
    ("jnt_", mujoco.mjtObj.mjOBJ_JOINT),
    ("dof_", mujoco.mjtObj.mjOBJ_DOF),
    ("geom_", mujoco.mjtObj.mjOBJ_GEOM),
    ("site_", mujoco.mjtObj.mjOBJ_SITE),
    ("cam_", mujoco.mjtObj.mjOBJ_CAMERA),
    ("light_", mujoco.mjtObj.mjOBJ_LIGHT),
    ("mat_", mujoco.mjtObj.mjOBJ_MATERIAL),
    ("pair_", mujoco.mjtObj.mjOBJ_PAIR),
    ("tendon_", mujoco.mjtObj.mjOBJ_TENDON),
    ("actuator_", mujoco.mjtObj.mjOBJ_ACTUATOR),
    ("sensor_", mujoco.mjtObj.mjOBJ_SENSOR),
)
_SETCONST = frozenset(mujoco.MjModel._setconst_inputs)
# MjOption fields that only enter the dynamics, not what mj_setConst derives: no set_const per write
# (timestep jitter resamples every step, so this matters).
_OPT_NO_SETCONST = frozenset({"opt.timestep", "opt.gravity", "opt.wind", "opt.magnetic", "opt.density", "opt.viscosity"})


# ------------------------------------------------------------------ physical domains
MJMINVAL = float(mujoco.mjMINVAL)  # 1e-15: MuJoCo's smallest meaningful positive number
PLAUSIBLE_FACTOR = 1e3
"""A "positive" quantity stays within this factor of its nominal value (1/1000x..1000x). MuJoCo's
absolute tolerances (mjMINVAL, the solver's 1e-8) assume values near their modelled scale; a mass
x1e-9 or a timestep x1e9 is another system, not a randomization of this one."""


@dataclass(frozen=True)
class Domain:
    """What every value a randomizer writes into one MjModel field must satisfy.

    rule: ``positive`` (>= mjMINVAL where the nominal value is > 0, and within PLAUSIBLE_FACTOR
    of it; >= 0 where the nominal is 0), ``nonnegative`` (>= 0), ``sign`` (keeps the sign of a
    nonzero nominal value), ``unit`` (in [0, 1]) or ``ordered`` (a [lower, upper] pair stays
    lower <= upper on the rows ``limited`` flags). ``columns``: the columns the rule covers
    (None: all). ``what``: the quantity, for messages.
    """

    rule: str
    what: str
    columns: tuple[int, ...] | None = None
    limited: str | None = None


FIELD_DOMAINS: dict[str, Domain] = {
    # MuJoCo's compiler refuses a moving body with mass or any principal inertia below mjMINVAL;
    # the inertia follows the mass ratio (see _derived) and is checked with it
    "body_mass": Domain("positive", "mass"),
    # principal moments: as the mass, and A + B >= C (the compiler's triangle rule, checked too)
    "body_inertia": Domain("positive", "inertia"),
    # radii and half-lengths; an entry the geom type does not use is 0 and may only stay >= 0
    "geom_size": Domain("positive", "size"),
    # seconds per physics step: > 0, and far from nominal the integration blows up (x1e9 warns of
    # a "huge value in QPOS")
    "opt.timestep": Domain("positive", "timestep"),
    "opt.impratio": Domain("positive", "friction-to-normal impedance ratio"),
    # passive forces opposing motion: below zero they add energy instead of removing it
    "dof_damping": Domain("nonnegative", "damping"),
    "dof_frictionloss": Domain("nonnegative", "friction loss"),
    "dof_armature": Domain("nonnegative", "armature"),  # rotor inertia added to the mass matrix
    "jnt_stiffness": Domain("nonnegative", "stiffness"),
    "tendon_damping": Domain("nonnegative", "damping"),
    "tendon_stiffness": Domain("nonnegative", "stiffness"),
    "tendon_frictionloss": Domain("nonnegative", "friction loss"),
    "tendon_armature": Domain("nonnegative", "armature"),
    "actuator_damping": Domain("nonnegative", "damping"),
    "actuator_armature": Domain("nonnegative", "armature"),
    # sliding, torsional and rolling coefficients: a negative friction cone has no meaning
    "geom_friction": Domain("nonnegative", "friction"),
    "pair_friction": Domain("nonnegative", "friction"),
    "opt.density": Domain("nonnegative", "medium density"),
    "opt.viscosity": Domain("nonnegative", "medium viscosity"),
    # gain (force per control, or kp of a position servo: the bias follows it): a sign change
    # reverses the actuator, or turns a servo's feedback positive
    "actuator_gainprm": Domain("sign", "gain", columns=(0,)),
    "actuator_biasprm": Domain("sign", "feedback term", columns=(1, 2)),  # -kp, -kv
    "actuator_gear": Domain("sign", "gear ratio", columns=(0,)),
    # solref: positive is (time constant, damping ratio), negative (-stiffness, -damping): the sign
    # picks the meaning
    "geom_solref": Domain("sign", "solref"),
    "pair_solref": Domain("sign", "solref"),
    "jnt_solref": Domain("sign", "solref"),
    "dof_solref": Domain("sign", "solref"),
    # solimp dmin, dmax: an impedance in (0, 1); MuJoCo clamps anything else silently
    "geom_solimp": Domain("unit", "solimp", columns=(0, 1)),
    "pair_solimp": Domain("unit", "solimp", columns=(0, 1)),
    "jnt_solimp": Domain("unit", "solimp", columns=(0, 1)),
    "dof_solimp": Domain("unit", "solimp", columns=(0, 1)),
    # [lower, upper] of limited joints and tendons (unlimited ones ignore their range)
    "jnt_range": Domain("ordered", "joint range", limited="jnt_limited"),
    "tendon_range": Domain("ordered", "tendon range", limited="tendon_limited"),
}


def row_names(model: mujoco.MjModel, field: str, nrows: int) -> list[str]:
    for prefix, obj in _PREFIX_OBJ:
        if field.startswith(prefix):
            if obj == mujoco.mjtObj.mjOBJ_DOF:  # a dof is named by its joint
                return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(j)) or "" for j in model.dof_jntid]
            return [mujoco.mj_id2name(model, obj, i) or "" for i in range(nrows)]
    return []


def select_cells(file, where: str, target, full: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The rows (name globs, `match_names`) and columns of a (rows, columns) model field that a target selects,
    with one-line errors naming ``where``.names / ``where``.columns (physics and visual fields alike)."""
    field = target.field
    rows = np.arange(full.shape[0])
    if target.names is not None:
        if not names:
            raise file.error(f"{where}.names", f"the rows of {field!r} have no names; omit 'names'")
        rows = match_names(names, target.names)
        if rows.size == 0:
            sample = ", ".join(n for n in names[:8] if n) or "none"
            raise file.error(f"{where}.names", f"no object of {field!r} matches {target.names} (names include: "
                                               f"{sample}, ...)")
    cols = np.arange(full.shape[1])
    if target.columns is not None:
        if max(target.columns) >= full.shape[1]:
            raise file.error(f"{where}.columns",
                             f"{field!r} has {full.shape[1]} columns; got column {max(target.columns)}")
        cols = np.asarray(target.columns, dtype=np.int64)
    return rows, cols


class FieldRandomizer(BoundRandomizer):
    """A model or option field of selected objects, sampled per copy."""

    hooks = frozenset({"restore"})

    def __init__(self, spec, file, sim):
        model, batch = sim.model, sim.batch
        target = spec.target
        field = target.field
        self.batch = batch
        self.field = field
        if field.startswith("opt."):
            opt_name = field[4:]
            if not hasattr(model.opt, opt_name) or f"opt.{opt_name}" not in mujoco.batch.MODEL_FIELDS:
                raise file.error(f"{file.locate(spec.name)}.target.field", f"{field!r} is not a randomizable MjOption field")
            full = np.atleast_1d(np.asarray(getattr(model.opt, opt_name), dtype=float)).reshape(1, -1)
            names: list[str] = []
        else:
            full = getattr(model, field, None)
            if not isinstance(full, np.ndarray) or field not in mujoco.batch.MODEL_FIELDS:
                import difflib

                close = difflib.get_close_matches(field, sorted(mujoco.batch.MODEL_FIELDS), n=3)
                hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
                raise file.error(f"{file.locate(spec.name)}.target.field",
                                 f"{field!r} is not a per-copy MjModel field{hint}")
            full = full.reshape(full.shape[0], -1) if full.ndim else full.reshape(1, 1)
            names = row_names(model, field, full.shape[0])
        self.rows, self.cols = rows, cols = select_cells(file, f"{file.locate(spec.name)}.target", target, full, names)
        self._shape = full.shape
        self.nominal = full[np.ix_(rows, cols)].astype(float).copy()
        self.op = OPERATIONS[spec.operation]
        _DomainCheck(self, spec, file, model, names).run()
        self.needs_setconst = (field.startswith("opt.") and field not in _OPT_NO_SETCONST) or field in _SETCONST
        self._model = model
        super().__init__(spec, file, sim.n_envs, self.nominal.size)
        self._prepare_derived()

    @property
    def elements(self) -> set[tuple[int, int]]:
        return {(int(r), int(c)) for r in self.rows for c in self.cols}

    def _prepare_derived(self) -> None:
        m, f = self._model, self.field
        self._inertia = m.body_inertia[self.rows].copy() if f == "body_mass" else None
        self._geom = f == "geom_size"
        self._kp = None
        if f == "actuator_gainprm" and 0 in self.cols:
            positional = np.isclose(m.actuator_biasprm[self.rows, 1], -m.actuator_gainprm[self.rows, 0])
            self._kp = self.rows[positional]

    def _table(self) -> np.ndarray:
        """The expanded field as a live (n_envs, rows, columns) view."""
        arr = self.batch.expand(self.field)
        return arr.reshape(arr.shape[0], *self._shape)

    def apply(self, ids: np.ndarray) -> None:
        n = len(ids)
        x = self.values[ids].reshape(n, *self.nominal.shape) if self.size > 1 else self.values[ids].reshape(n, 1, 1)
        self._write(ids, self.op(self.nominal[None], x))

    def restore(self, ids: np.ndarray) -> None:
        """Put the nominal values back in copies ids."""
        self._write(ids, np.broadcast_to(self.nominal, (len(ids), *self.nominal.shape)).copy())

    def _write(self, ids: np.ndarray, new: np.ndarray) -> None:
        if self.field == "jnt_range" and len(self.cols) == 2:
            new = np.sort(new, axis=-1)  # independent noise on both limits must not invert a range
            if self.cols[0] > self.cols[1]:  # columns: [1, 0] lists the upper limit first
                new = new[..., ::-1]
        self._table()[np.ix_(ids, self.rows, self.cols)] = new
        self._derived(ids, new)
        if self.needs_setconst:
            self.batch.set_const(np.asarray(ids, dtype=np.int64))

    def _derived(self, ids: np.ndarray, new: np.ndarray) -> None:
        m = self._model
        if self._inertia is not None:
            ratio = new[..., 0] / np.maximum(self.nominal[None, :, 0], 1e-12)
            self.batch.expand("body_inertia")[np.ix_(ids, self.rows)] = self._inertia[None] * ratio[..., None]
        if self._geom:
            size = self.batch.expand("geom_size")[np.ix_(ids, self.rows)]
            types = m.geom_type[self.rows]
            rbound = self.batch.expand("geom_rbound")
            aabb = self.batch.expand("geom_aabb")
            for j, (row, gtype) in enumerate(zip(self.rows, types)):
                s = size[:, j]
                if gtype == mujoco.mjtGeom.mjGEOM_BOX:
                    rbound[ids, row] = np.linalg.norm(s, axis=-1)
                    aabb[ids, row, 3:] = s
                elif gtype == mujoco.mjtGeom.mjGEOM_SPHERE:
                    rbound[ids, row] = s[:, 0]
                    aabb[ids, row, 3:] = s[:, :1]
                elif gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:
                    rbound[ids, row] = s[:, 0] + s[:, 1]
                    aabb[ids, row, 3:] = np.stack([s[:, 0], s[:, 0], s[:, 0] + s[:, 1]], -1)
                elif gtype == mujoco.mjtGeom.mjGEOM_CYLINDER:
                    rbound[ids, row] = np.hypot(s[:, 0], s[:, 1])
                    aabb[ids, row, 3:] = np.stack([s[:, 0], s[:, 0], s[:, 1]], -1)
        if self._kp is not None:
            rows = self._kp
            gain = self.batch.expand("actuator_gainprm")
            self.batch.expand("actuator_biasprm")[np.ix_(ids, rows, [1])] = -gain[np.ix_(ids, rows, [0])]

    def current(self, i: int) -> np.ndarray:
        """Copy i's present value of the selected elements (for tests and logs)."""
        return self._table()[i][np.ix_(self.rows, self.cols)].copy()


# ------------------------------------------------------------------ domain check at bind time
def _written(operation: str, nominal: np.ndarray, x: float) -> np.ndarray:
    """What the operation writes for sample x (x may be infinite: a normal's reach)."""
    if operation == "set":
        return np.full(nominal.shape, x)
    if operation == "add":
        return nominal + x
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(nominal == 0, 0.0, nominal * x)  # 0 * inf: a zero stays zero


class _DomainCheck:
    """The bind-time check of one field randomizer against `FIELD_DOMAINS` (one-line errors)."""

    def __init__(self, bound: FieldRandomizer, spec, file, model, names: list[str]):
        self.bound, self.spec, self.file, self.model, self.names = bound, spec, file, model, names
        self.domain = FIELD_DOMAINS.get(bound.field)
        if spec.adr is not None:  # ADR moves the range anywhere inside its limits
            self.key, (self.lo, self.hi) = "adr.limits", map(float, spec.adr.limits)
        else:
            self.key, (self.lo, self.hi) = "distribution", spec.distribution.support()
        nominal = bound.nominal
        self.shared = not spec.per_element or nominal.size == 1  # one sample for every element
        a, b = (_written(spec.operation, nominal, x) for x in (self.lo, self.hi))
        self.cases = (a, b)  # monotone in the sample: its extremes are at the support's ends
        self.low, self.high = np.fmin(a, b), np.fmax(a, b)

    def run(self) -> None:
        if self.domain is None:
            return
        rule = self.domain.rule
        cover = np.ones(len(self.bound.cols), bool)
        if self.domain.columns is not None:
            cover = np.isin(self.bound.cols, self.domain.columns)
        getattr(self, f"_{rule}")(cover)

    # ------------------------------------------------------------ rules
    def _positive(self, cover):
        nominal, low, high = self.bound.nominal, self.low, self.high
        pos, zero = (nominal > 0) & cover, (nominal == 0) & cover
        f = PLAUSIBLE_FACTOR
        self._first(pos & ~(low >= MJMINVAL), low, f"above MuJoCo's mjMINVAL ({MJMINVAL:g})")
        self._first(zero & ~(low >= 0), low, ">= 0")
        if self.bound.field == "body_mass":  # MuJoCo's rules first, then the plausibility factor
            self._inertia_follows_mass(pos[:, 0])
        self._first(pos & ~(low >= nominal / f), low,
                    f"at least 1/{f:g} of nominal (a {self.domain.what} stays within a factor {f:g} of nominal)")
        self._first(pos & ~(high <= nominal * f), high,
                    f"at most {f:g}x nominal (a {self.domain.what} stays within a factor {f:g} of nominal)")
        if self.bound.field == "body_inertia":
            self._triangle()

    def _nonnegative(self, cover):
        self._first(cover & ~(self.low >= 0), self.low, ">= 0")

    def _sign(self, cover):
        nominal = self.bound.nominal
        self._first(cover & (nominal > 0) & ~(self.low > 0), self.low, "> 0 (the sign of its nominal value)")
        self._first(cover & (nominal < 0) & ~(self.high < 0), self.high, "< 0 (the sign of its nominal value)")

    def _unit(self, cover):
        self._first(cover & ~(self.low >= 0), self.low, "within [0, 1]")
        self._first(cover & ~(self.high <= 1), self.high, "within [0, 1]")

    def _ordered(self, cover):
        bound, model = self.bound, self.model
        flags = getattr(model, self.domain.limited, None) if self.domain.limited else None
        limited = np.ones(len(bound.rows), bool) if flags is None else np.asarray(flags)[bound.rows].astype(bool)
        cols = list(bound.cols)
        if 0 in cols and 1 in cols:
            i, j = cols.index(0), cols.index(1)
            if bound.field == "jnt_range":  # _write sorts the pair: only a factor <= 0 flips a range
                if self.spec.operation == "scale" and not self.lo > 0:
                    self._fail(f"{self._span()} on jnt_range scales joint limits by {self.lo:g}; expected factors "
                               f"> 0 (a factor <= 0 collapses or mirrors each joint's range)")
                return
            pairs = [(c[:, i], c[:, j]) for c in self.cases] if self.shared else [(self.high[:, i], self.low[:, j])]
            for lower, upper in pairs:
                bad = limited & ~(lower <= upper)
                if bad.any():
                    r = int(np.flatnonzero(bad)[0])
                    self._fail(f"{self._span()} on {bound.field} gives {self._label(r)} the range "
                               f"[{lower[r]:g}, {upper[r]:g}]; expected lower <= upper")
            return
        full = np.asarray(getattr(model, bound.field)).reshape(-1, 2)[bound.rows]
        for k, col in enumerate(cols):
            if col == 0:
                bad, value, other = limited & ~(self.high[:, k] <= full[:, 1]), self.high[:, k], full[:, 1]
            else:
                bad, value, other = limited & ~(self.low[:, k] >= full[:, 0]), self.low[:, k], full[:, 0]
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                which, side = ("lower", "above its upper") if col == 0 else ("upper", "below its lower")
                self._fail(f"{self._span()} on {bound.field} moves the {which} limit of {self._label(r)} to "
                           f"{value[r]:g}, {side} limit {other[r]:g}{self._unbounded()}; expected lower <= upper")

    def _inertia_follows_mass(self, moving):
        """body_mass writes scale the body's inertia by the same ratio: it must stay above mjMINVAL too."""
        nominal = self.bound.nominal[:, 0]
        inertia = self.model.body_inertia[self.bound.rows].min(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            lowest = inertia * (self.low[:, 0] / nominal)
        bad = moving & ~(lowest >= MJMINVAL)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            self._fail(f"{self._span()} on body_mass gives {self._label(r)} a principal inertia of {lowest[r]:g} "
                       f"(the inertia follows the mass){self._unbounded()}; expected above MuJoCo's mjMINVAL "
                       f"({MJMINVAL:g})")

    def _triangle(self):
        """Principal moments A, B, C of each body: A + B >= C for every ordering (MuJoCo's compiler rule)."""
        base = self.model.body_inertia[self.bound.rows].astype(float)
        if self.shared:
            tables = []
            for case in self.cases:
                t = base.copy()
                t[:, self.bound.cols] = case
                tables.append((t, t))
        else:
            lo, hi = base.copy(), base.copy()
            lo[:, self.bound.cols], hi[:, self.bound.cols] = self.low, self.high
            tables = [(lo, hi)]
        for small, big in tables:
            for c in range(3):
                a, b = [k for k in range(3) if k != c]
                bad = ~(small[:, a] + small[:, b] >= big[:, c] * (1 - 1e-9))
                if bad.any():
                    r = int(np.flatnonzero(bad)[0])
                    self._fail(f"{self._span()} on body_inertia gives {self._label(r)} principal moments "
                               f"{small[r, a]:g} + {small[r, b]:g} < {big[r, c]:g}; expected A + B >= C "
                               f"(no rigid body has these moments)")

    # ------------------------------------------------------------ messages
    def _first(self, bad: np.ndarray, values: np.ndarray, expected: str) -> None:
        if not bad.any():
            return
        r, k = (int(v) for v in np.argwhere(bad)[0])
        bound = self.bound
        column = f" (column {int(bound.cols[k])})" if bound._shape[1] > 1 else ""
        label = self._label(r)
        self._fail(f"{self._span()} on {bound.field} gives {label + ' ' if label else ''}a {self.domain.what} of "
                   f"{values[r, k]:g}{column}, nominal {bound.nominal[r, k]:g}{self._unbounded()}; expected {expected}")

    def _span(self) -> str:
        span = f"{self.lo:g}" if self.lo == self.hi else f"{self.lo:g}..{self.hi:g}"
        return f"{self.spec.operation} {span}"

    def _unbounded(self) -> str:
        if math.isfinite(self.lo) and math.isfinite(self.hi):
            return ""
        d = self.spec.distribution
        return f" (a normal with std {d.std:g} has no bounds: use a truncnormal whose low/high keep the field valid)"

    def _label(self, r: int) -> str:
        row = int(self.bound.rows[r])
        name = self.names[row] if row < len(self.names) else ""
        if self.bound.field.startswith("opt."):
            return ""
        return repr(name) if name else f"row {row}"

    def _fail(self, message: str):
        raise self.file.error(f"{self.file.locate(self.spec.name)}.{self.key}", message)


def bind(stack, r) -> FieldRandomizer:
    """The physics family's binder (`simreal.randomize.spec.FAMILIES`): one model field's randomizer, refused
    where it overlaps another on the same elements."""
    bound = FieldRandomizer(r, stack.spec, stack.sim)
    for other in stack.items:
        if isinstance(other, FieldRandomizer) and other.field == bound.field and other.elements & bound.elements:
            raise stack.spec.error(f"{stack.spec.locate(r.name)}.target",
                                   f"overlaps {other.name!r} on {bound.field!r}; each element has one randomizer")
    return bound
