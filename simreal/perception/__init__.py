"""Vision: the cube's pose from three camera images (Dactyl's pose estimator), and vision policies.

* `simreal.perception.dataset` -- labelled randomized renders in resumable shards;
* `simreal.perception.model` -- the CNN (a trunk shared by the cameras, spatial softmax, fused head)
  and its quaternion-sign-invariant loss;
* `simreal.perception.train` -- training with checkpoints, resume and TensorBoard logs;
* `simreal.perception.evaluate` -- position (mm) and orientation (degrees) errors;
* `simreal.perception.wrapper` -- the estimator in place of the true cube pose, for any agent;
* `simreal.perception.cli` -- ``simreal render preview`` and ``simreal pose dataset|train|eval``.
"""
