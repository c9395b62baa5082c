"""World-model agents on one RSSM core: DreamerV1, DreamerV2 and DreamerV3 (by config preset),
PlaNet (CEM planning) and Dreaming / DreamingV2 (contrastive, no reconstruction).

- `rssm.RSSM`: deterministic GRU state plus Gaussian or categorical stochastic state.
- `world_model.WorldModel`: encoder, RSSM, decoder, reward and continue heads; ``loss``,
  ``imagine(policy, start, horizon)`` and ``open_loop`` (reused by planners and other agents).
- `behavior.ActorCritic`: actor and critic trained on imagined trajectories (lambda-returns).
- `dreamer.Dreamer`: both, with one ``train_step``; `dreamer.LatentPolicy` acts and is exported.
- `planet.PlaNet`: the world model with `planet.cem` planning at every step (`planet.MPCPolicy`).
- `dreaming.Dreaming`: `dreaming.ContrastiveWorldModel` (InfoNCE, random crops, linear-dynamics
  overshooting) with Dreamer's actor-critic.
- `replay.SequenceReplay`, `trainer.Trainer` / `trainer.train` (the config's ``agent`` picks one of
  the three), configs.yaml (defaults and presets).

``simreal train dreamer|planet|dreaming --preset ...`` runs them from the command line. Importing
this package does not import torch (the CLI registers its verbs cheaply); the names below
load on first use.
"""

import pathlib

from simreal.utils.lazy import lazy_exports

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yaml")
AGENT_NAME = "dreamer"

_LAZY = {"Dreamer": "dreamer", "LatentPolicy": "dreamer", "TrainingDiverged": "dreamer",
         "policy_from_export": "dreamer", "WorldModel": "world_model", "RSSM": "rssm",
         "ActorCritic": "behavior", "SequenceReplay": "replay", "train": "trainer",
         "PlaNet": "planet", "Dreaming": "dreaming"}

__all__ = ["AGENT_NAME", "CONFIG_PATH", *_LAZY]
__getattr__ = lazy_exports(__name__, _LAZY)
