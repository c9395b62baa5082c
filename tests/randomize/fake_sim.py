"""The smallest `simreal.envs.sim.Sim`: N copies of a two-joint arm over ``mujoco.batch``, no task.

For randomizer and effect unit tests that need a simulation but not the hand.
"""

import mujoco
import numpy as np

XML = """
<mujoco>
  <option timestep="0.01"/>
  <worldbody>
    <body name="arm">
      <joint name="shoulder" type="hinge" axis="0 0 1" range="-1 1" damping="0.1"/>
      <geom name="upper" type="capsule" size="0.02" fromto="0 0 0 0.2 0 0" mass="0.5"/>
      <body name="forearm" pos="0.2 0 0">
        <joint name="elbow" type="hinge" axis="0 0 1" range="-1 1" damping="0.1"/>
        <geom name="lower" type="capsule" size="0.02" fromto="0 0 0 0.2 0 0" mass="0.3"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position name="a_shoulder" joint="shoulder" kp="5" ctrlrange="-1 1"/>
    <position name="a_elbow" joint="elbow" kp="5" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


class FakeSim:
    substeps = 4

    def __init__(self, n_envs: int = 2):
        self.n_envs = n_envs
        self.model = mujoco.MjModel.from_xml_string(XML)
        self.batch = mujoco.batch.Batch(self.model, n_envs, nthread=1, persistent=True)
        self.ctrl = self.batch.bind("ctrl")
        self.qpos = self.batch.bind("qpos")
        self.xfrc_applied = self.batch.bind("xfrc_applied")
        self.ctrl_low = self.model.actuator_ctrlrange[:, 0].copy()
        self.ctrl_high = self.model.actuator_ctrlrange[:, 1].copy()
        self.markers = []
        self.control_dt = self.substeps * self.model.opt.timestep
        self.command_period = float(self.model.opt.timestep)
        self.randomization = None

    def unit_from_action(self, action):
        return np.clip(np.asarray(action, np.float64).reshape(self.n_envs, -1), -1.0, 1.0)

    def ctrl_from_unit(self, unit):
        mid, half = 0.5 * (self.ctrl_low + self.ctrl_high), 0.5 * (self.ctrl_high - self.ctrl_low)
        return np.clip(mid + unit * half, self.ctrl_low, self.ctrl_high)

    def ctrl_from_action(self, action):
        return self.ctrl_from_unit(self.unit_from_action(action))

    def set_randomization(self, spec):
        from simreal.randomize.stack import RandomizationStack

        self.randomization = RandomizationStack(spec, self, None)
        return self.randomization

    def step(self, action):
        """One control step through the stack's pipeline (per-substep controls when a delay cuts the step)."""
        ctrl = self.randomization.command(action)
        if ctrl.ndim == 2:
            self.ctrl[:] = ctrl
            self.batch.step(nstep=self.substeps)
        else:
            self.batch.rollout(self.substeps, control=ctrl, record=())
        self.randomization.on_step()
        return ctrl
