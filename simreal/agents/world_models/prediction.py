"""How well a world model predicts recorded episodes: open-loop error along the recorded actions.

For transfer evaluation: a model trained in simulation is shown the first ``context`` steps of
a window of a recorded rig episode (filtered with the posterior), then predicts the rest of the
window from the recorded actions alone (the prior), and its decoded observations are compared
with what the rig recorded. The error grows where the rig's dynamics differ from what the model
learned, so it measures the sim-to-rig gap of the model itself, next to the policy's return gap.

The number is the mean squared error per observation element over the predicted steps of every
window: in observation units over the vector keys when the model reads any, else over image
pixels in [0, 1].
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from simreal.agents.actions import ActionSpec
from simreal.agents.world_models.nets import MultiDecoder, MultiEncoder, ObsLayout, preprocess
from simreal.agents.world_models.rssm import RSSM


def _windows(observations: Mapping[str, np.ndarray], actions: np.ndarray, spec: ActionSpec, keys: Iterable[str],
             length: int) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """Non-overlapping windows (W, length, ...) of an episode's observations and the actions that led to them."""
    steps = len(actions) + 1  # observations: one more than actions (the reset observation first)
    count = steps // length
    if count == 0:
        return None
    led = np.concatenate([np.zeros((1, spec.dim), np.float32), spec.from_env(actions)])  # led[t] -> obs t
    obs = {k: np.asarray(observations[k])[: count * length].reshape(count, length, *np.shape(observations[k])[1:])
           for k in keys}
    return obs, led[: count * length].reshape(count, length, spec.dim)


@torch.no_grad()
def open_loop_error(encoder: MultiEncoder, rssm: RSSM, decoder: MultiDecoder, layout: ObsLayout, spec: ActionSpec,
                    episodes: Iterable, context: int = 5, horizon: int = 45,
                    device: torch.device | str = "cpu") -> float | None:
    """Mean squared open-loop prediction error over ``episodes`` (objects with ``observations``, a dict of
    (T+1, ...) arrays, and ``actions``, (T, ...) env actions); None when no episode is long enough."""
    length = context + horizon
    total, count = 0.0, 0
    for episode in episodes:
        cut = _windows(episode.observations, episode.actions, spec, layout.keys, length)
        if cut is None:
            continue
        obs_np, act_np = cut
        obs = {k: torch.as_tensor(v, device=device) for k, v in obs_np.items()}
        actions = torch.as_tensor(act_np, device=device)
        inputs = preprocess(obs, layout)
        embed = encoder({k: v[:, :context] for k, v in inputs.items()})
        # the most likely latents (sample=False) everywhere: the same episodes give the same number
        state = rssm.initial(len(actions), device)
        for t in range(context):
            state, _ = rssm.obs_step(state, actions[:, t], embed[:, t], sample=False)
        feats = []
        for t in range(context, length):
            state = rssm.img_step(state, actions[:, t], sample=False)
            feats.append(rssm.feat(state))
        pred = decoder(torch.stack(feats, 1))
        if layout.vector_keys:
            error = (decoder.vector_prediction(pred["vector"]) - inputs["vector"][:, context:]) ** 2
        else:
            error = (pred["image"].clamp(-0.5, 0.5) - inputs["image"][:, context:]) ** 2
        total += float(error.sum())
        count += error.numel()
    return total / count if count else None


def decoder_weights(decoder: nn.Module | None) -> dict[str, torch.Tensor]:
    """The decoder's weights under a ``decoder.`` prefix, for an export's weight dict (none without one)."""
    return {} if decoder is None else {f"decoder.{k}": v for k, v in decoder.state_dict().items()}


def load_decoder(state: Mapping[str, torch.Tensor], feat_dim: int, layout: ObsLayout, model,
                 device: torch.device) -> MultiDecoder | None:
    """The exported decoder (``model``: the export's ModelConfig), or None for an export without one."""
    if not state:
        return None
    decoder = MultiDecoder(feat_dim, layout, model.units, model.layers, model.cnn_depth, model.act, model.norm,
                           model.vector_decoder, model.image_decoder)
    decoder.load_state_dict(state)
    return decoder.to(device).eval()


def split_decoder(weights: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the other weights, the decoder's weights without their prefix)."""
    rest = {k: v for k, v in weights.items() if not k.startswith("decoder.")}
    decoder = {k[len("decoder."):]: v for k, v in weights.items() if k.startswith("decoder.")}
    return rest, decoder
