"""Naive generation: for every new sample, run the model's ordinary forward pass over the whole
receptive field and keep only the last position. O(receptive field × layers) per sample; the
reference that fast generation (fast_generate.py) must match sample for sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from audiolm.models.wavenet.sampling import NOISE_CHUNK, GumbelNoise, prepare_inputs


@torch.inference_mode()
def naive_generate(
    model,
    n_samples: int,
    *,
    batch_size: int = 1,
    prompt: torch.Tensor | None = None,
    gc: torch.Tensor | int | None = None,
    codes: torch.Tensor | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    callback: Callable[[torch.Tensor, int], None] | None = None,
    callback_every: int = 0,
) -> torch.Tensor:
    """Returns ids [B, P + n_samples] (see WaveNet.generate)."""
    inputs = prepare_inputs(model, n_samples, batch_size, prompt, gc, codes, temperature)
    P, total, rf = inputs.prompt.shape[1], inputs.total, model.receptive_field
    ids = torch.zeros(batch_size, total, dtype=torch.long, device=model.device)
    ids[:, :P] = inputs.prompt
    noise_source = GumbelNoise(seed, batch_size, model.config.quantization_channels, model.device)
    noise: torch.Tensor | None = None
    for i, t in enumerate(range(P, total)):
        if i % NOISE_CHUNK == 0:
            noise = noise_source.chunk()
        # the window ends at t itself: its value is a placeholder that, by causality, the
        # logits at position t never see
        start = max(0, t - rf)
        window = ids[:, start : t + 1]
        cond = model.conditioning.at_samples(inputs.bias, start, window.shape[1])
        logits = model.run_layers(window, cond)[0][:, :, -1]  # [B, classes]
        if temperature > 0:
            assert noise is not None
            logits = logits + temperature * noise[i % NOISE_CHUNK]
        ids[:, t] = logits.argmax(dim=1)
        if callback is not None and callback_every and (i + 1) % callback_every == 0:
            callback(ids, t + 1)
    return ids
