"""A tiny WaveNet learns a repeated clip and regenerates it from a one-period prompt."""

import math

import torch
import torch.nn.functional as F

from audiolm.models.wavenet.model import WaveNet
from audiolm.models.wavenet.mulaw import mulaw_encode
from tests.helpers import tiny_wavenet_config


def test_tiny_model_overfits_a_sine_and_regenerates_it():
    torch.manual_seed(0)
    period = 23  # samples; the receptive field (33) spans more than a period
    cfg = tiny_wavenet_config(
        layers=5, stacks=1, residual_channels=16, dilation_channels=16, skip_channels=32, crop_samples=96
    )
    assert cfg.receptive_field == 2 + 31
    t = torch.arange(4000)
    wave = 0.8 * torch.sin(2 * math.pi * t / period) + 0.1 * torch.sin(2 * math.pi * 3 * t / period)
    ids = mulaw_encode(wave)
    model = WaveNet(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _step in range(150):
        starts = torch.randint(0, len(ids) - cfg.crop_samples, (8,), generator=g)
        x = torch.stack([ids[s : s + cfg.crop_samples] for s in starts.tolist()])
        logits = model(x)
        # the first receptive field of a crop is ambiguous (it starts mid-period from nothing)
        loss = F.cross_entropy(logits[..., cfg.receptive_field :], x[:, cfg.receptive_field :])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3, loss.item()
    model.eval()
    prompt = ids[: cfg.receptive_field]
    out = model.generate(4 * period, prompt=prompt, seed=0)[0]
    target = ids[: out.shape[0]]
    # μ-law ids of the regenerated sine match the clip almost everywhere, off by at most one class
    close = (out[len(prompt) :] - target[len(prompt) :]).abs() <= 1
    assert close.float().mean() > 0.95, close.float().mean()
