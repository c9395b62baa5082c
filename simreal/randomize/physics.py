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
"""

from __future__ import annotations

import fnmatch

import mujoco
import mujoco.batch
import numpy as np

from simreal.randomize.base import OPERATIONS, BoundRandomizer

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


def _row_names(model: mujoco.MjModel, field: str, nrows: int) -> list[str]:
    for prefix, obj in _PREFIX_OBJ:
        if field.startswith(prefix):
            if obj == mujoco.mjtObj.mjOBJ_DOF:  # a dof is named by its joint
                return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(j)) or "" for j in model.dof_jntid]
            return [mujoco.mj_id2name(model, obj, i) or "" for i in range(nrows)]
    return []


class FieldRandomizer(BoundRandomizer):
    """A model or option field of selected objects, sampled per copy."""

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
            names = _row_names(model, field, full.shape[0])
        rows = np.arange(full.shape[0])
        if target.names is not None:
            if not names:
                raise file.error(f"{file.locate(spec.name)}.target.names", f"the rows of {field!r} have no names; omit 'names'")
            rows = np.array([i for i, n in enumerate(names) if any(fnmatch.fnmatchcase(n, p) for p in target.names)],
                            dtype=np.int64)
            if rows.size == 0:
                sample = ", ".join(n for n in names[:8] if n)
                raise file.error(f"{file.locate(spec.name)}.target.names",
                                 f"no object of {field!r} matches {target.names} (names include: {sample}, ...)")
        cols = np.arange(full.shape[1])
        if target.columns is not None:
            if max(target.columns) >= full.shape[1]:
                raise file.error(f"{file.locate(spec.name)}.target.columns",
                                 f"{field!r} has {full.shape[1]} columns; got column {max(target.columns)}")
            cols = np.asarray(target.columns, dtype=np.int64)
        self.rows, self.cols = rows, cols
        self._shape = full.shape
        self.nominal = full[np.ix_(rows, cols)].astype(float).copy()
        self.op = OPERATIONS[spec.operation]
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
