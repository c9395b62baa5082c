"""Ha & Schmidhuber's World Models (2018): V (conv VAE), M (MDN-RNN) and C (linear, CMA-ES).

- `vae.ConvVAE`: 64x64 RGB frames <-> z (32 dims), the paper's architecture and loss.
- `mdn_rnn.MDNRNN`: LSTM over [z, a] with a 5-component Gaussian mixture per z dimension for
  the next z (plus reward and done heads); `mdn_rnn.sample_mixture` samples with a temperature.
- `controller.LinearController` (``a = tanh(W [z, h] + b)``), `controller.CMAES` (the ``cma``
  package, own RNG, resumable), `controller.dream_returns` (episodes inside M).
- `workers.WorkerPool`: rollouts on every core, one env per worker process.
- `trainer.train`: the stages collect -> vae -> mdn_rnn -> controller, each resumable.
- `policy.policy_from_export`: the exported acting part, a `simreal.agents.Policy`.

``simreal train worldmodels ...`` runs it from the command line. Importing this package
does not import torch; the names below load on first use.
"""

import pathlib

from simreal.utils.lazy import lazy_exports

CONFIG_PATH = pathlib.Path(__file__).with_name("configs.yaml")
AGENT_NAME = "worldmodels"

_LAZY = {"ConvVAE": "vae", "MDNRNN": "mdn_rnn", "LinearController": "controller", "CMAES": "controller",
         "WorldModelsActor": "policy", "policy_from_export": "policy", "Trainer": "trainer",
         "TrainingDiverged": "trainer", "train": "trainer"}

__all__ = ["AGENT_NAME", "CONFIG_PATH", *_LAZY]
__getattr__ = lazy_exports(__name__, _LAZY)
