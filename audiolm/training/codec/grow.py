"""A frame-rate decoder grown from a smaller one: same function at step 0, more room to learn.

    state = grow_decoder_state(checkpoint_state, model)   # before model.load_state_dict
    silence_new_blocks(model, old_layers)                 # after it

Why: on voices it was not trained on, the codec's round trip loses mostly the spectral envelope,
and its RVQ is not the limit (12 kbps, or no quantizer at all, scores as 6 kbps does; BENCHMARKS.md,
codec section, session 14): the encoder-decoder under-fits even its training voices. A larger
decoder for the same encoder and tokens keeps every stage's tokens valid; growing it from the
trained one instead of training it afresh keeps what tens of thousands of steps learned.

Two growths, both function-preserving (the grown decoder's output equals the small one's until
the first update), as in Net2Net (Chen et al. 2016) and zero-initialised residual branches:

- wider MLPs (`decoder_intermediate`): a ConvNeXt block's MLP gains hidden units; their input
  weights keep the fresh random init, their output weights start at zero (so they add nothing
  until trained, yet receive gradient at once);
- deeper (`decoder_layers`): new blocks go after the old ones, each with layer scale 0, so each
  starts as the identity;
- further ahead (`decoder_lookahead`): the embedding convolution gains taps on future frames,
  zero at first (its taps on the past keep their place: causal padding is on the left).

The residual width (`frame_dim`) does not grow: LayerNorm's statistics would change with it.
"""

from __future__ import annotations

import torch
from torch import nn

BACKBONE = "decoder.backbone."


def grow_decoder_state(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A smaller decoder's state dict -> one that loads into `model`'s larger decoder: every
    decoder backbone tensor that is smaller than the model's along some dimensions is copied into a clone
    of the model's own (freshly initialised) tensor; a grown MLP's new output columns (a block's
    `pwconv2.weight`) and the embedding's new taps are zeroed. Other tensors pass through unchanged."""
    own = model.state_dict()
    grown = dict(state)
    for key, value in state.items():
        target = own.get(key)
        # only the backbone grows; the head's shape follows its own config (a per-bin noise head
        # converts into a banded one in the head's load hook, frame_rate.py)
        if not key.startswith(BACKBONE) or target is None or target.shape == value.shape:
            continue
        if target.dim() != value.dim() or any(t < v for t, v in zip(target.shape, value.shape)):
            raise ValueError(f"{key}: {tuple(value.shape)} cannot grow into {tuple(target.shape)}")
        new = target.detach().clone()
        # new hidden units ([dim, intermediate]) and new taps on future frames ([dim, in, kernel])
        # add nothing yet
        if key.endswith(("pwconv2.weight", "backbone.embed.weight")):
            new.zero_()
        new[tuple(slice(0, n) for n in value.shape)] = value.to(new.dtype)
        grown[key] = new
    return grown


@torch.no_grad()
def silence_new_blocks(model: nn.Module, old_layers: int) -> None:
    """Layer scale 0 for the decoder blocks from `old_layers` on: each is the identity."""
    blocks = model.get_submodule("decoder.backbone.blocks")
    assert isinstance(blocks, nn.ModuleList)
    for block in list(blocks)[old_layers:]:
        block.get_parameter("gamma").zero_()
