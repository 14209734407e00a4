"""WaveNet over μ-law samples (van den Oord et al. 2016), with optional global conditioning
(speaker / instrument id) and local conditioning (codec tokens: a vocoder).

Convention: `forward(x)` with x = ids [B, T] returns logits [B, classes, T] where logits[..., t]
is the distribution of x[t] given x[<t] (and the conditioning at sample t). The causal input
convolution therefore looks at x[t-1] ... x[t-input_kernel_size]; the dilated layers widen
that to `config.receptive_field` past samples. Positions before the start of x are zero
activations ("padding"), which is also how generation starts from nothing.

    ids [B, T] ─ causal input conv ─► x_0 [B, R, T]
    for each layer l (dilation d):
        pre = W_cur x_l[t] + W_past x_l[t-d] + b + cond_l[t]        [B, 2D, T]
        z   = tanh(pre[:D]) * sigmoid(pre[D:])                      [B, D, T]
        x_{l+1} = x_l + W_res z ;  skip += W_skip z                  [B, R, T], [B, S, T]
    logits = W_2 relu(W_1 relu(skip))                                [B, classes, T]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.core.checkpoint import (
    load_checkpoint,
    load_state_dict_checked,
    resolve_checkpoint_dir,
    save_checkpoint,
)
from audiolm.core.paths import shipped_checkpoint
from audiolm.models.wavenet.conditioning import Conditioning
from audiolm.models.wavenet.config import WaveNetConfig
from audiolm.models.wavenet.fast_generate import fast_generate
from audiolm.models.wavenet.mulaw import mulaw_decode, mulaw_encode
from audiolm.models.wavenet.naive_generate import naive_generate

KIND = "wavenet"


def shipped_dir(name: str) -> Path:
    """A shipped WaveNet checkpoint (wavenet_gc, wavenet_vocoder): `core/paths.shipped_checkpoint`."""
    return shipped_checkpoint(name)


class WaveNet(nn.Module):
    def __init__(self, config: WaveNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or WaveNetConfig()
        C, R, D, S = (
            config.quantization_channels,
            config.residual_channels,
            config.dilation_channels,
            config.skip_channels,
        )
        # causal input convolution over one-hot inputs, stored as one table per lag:
        # input_weight[k] maps x[t-1-k] to R channels (a kernel-K conv on one-hot vectors)
        self.input_weight = nn.Parameter(
            torch.randn(config.input_kernel_size, C, R) * (1.0 / config.input_kernel_size) ** 0.5
        )
        self.input_bias = nn.Parameter(torch.zeros(R))
        # ModuleLists, typed as the convolutions they hold (their items are plain Modules to mypy)
        self.dilated = cast(
            "list[nn.Conv1d]", nn.ModuleList(nn.Conv1d(R, 2 * D, kernel_size=2, dilation=d) for d in config.dilations)
        )
        # the last layer feeds only the skip path
        self.residual = nn.ModuleList(nn.Conv1d(D, R, 1) for _ in range(config.layers - 1))
        self.skip = nn.ModuleList(nn.Conv1d(D, S, 1) for _ in range(config.layers))
        self.post1 = nn.Conv1d(S, S, 1)
        self.post2 = nn.Conv1d(S, C, 1)
        self.conditioning = Conditioning(config)

    # -- properties ---------------------------------------------------------------------------

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def device(self) -> torch.device:
        return self.input_bias.device

    # -- forward ------------------------------------------------------------------------------

    def input_layer(self, x: torch.Tensor) -> torch.Tensor:
        """x: ids [B, T] -> [B, R, T]: out[t] = bias + sum_k input_weight[k][x[t-1-k]]."""
        C = self.config.quantization_channels
        T = x.shape[1]
        h = self.input_bias.view(1, 1, -1)
        for k in range(self.config.input_kernel_size):
            # shift right by k+1; the padding id C looks up an all-zero row
            shifted = F.pad(x, (k + 1, 0), value=C)[:, :T]
            table = F.pad(self.input_weight[k], (0, 0, 0, 1))  # [C + 1, R]
            h = h + F.embedding(shifted, table)
        return h.transpose(1, 2)

    def run_layers(
        self, x: torch.Tensor, cond: torch.Tensor | None, keep_inputs: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: ids [B, T]; cond: per-sample gate biases [B, L*2D, T or 1] or None.
        Returns (logits [B, classes, T], each layer's input [B, R, T] if keep_inputs)."""
        G = self.config.gate_channels
        h = self.input_layer(x)
        skip: torch.Tensor | float = 0.0
        inputs = []
        for l, conv in enumerate(self.dilated):
            if keep_inputs:
                inputs.append(h)
            pre = conv(F.pad(h, (conv.dilation[0], 0)))  # causal: [B, 2D, T]
            if cond is not None:
                pre = pre + cond[:, l * G : (l + 1) * G]
            a, b = pre.chunk(2, dim=1)
            z = torch.tanh(a) * torch.sigmoid(b)
            skip = skip + self.skip[l](z)
            if l < len(self.residual):
                h = h + self.residual[l](z)
        logits = self.post2(F.relu(self.post1(F.relu(cast(torch.Tensor, skip)))))
        return logits, inputs

    def forward(
        self,
        x: torch.Tensor,
        gc: torch.Tensor | int | None = None,
        codes: torch.Tensor | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """x: ids [B, T]; gc: id or [B]; codes: [B, Q, F] covering samples from 0 (x[0] is
        sample `start`). Returns logits [B, classes, T]: logits[..., t] predicts x[t]."""
        gc = self.conditioning.check_gc(gc, x.shape[0])
        codes = self.conditioning.check_codes(codes, x.shape[0])
        bias = self.conditioning.layer_bias(gc, codes)
        cond = self.conditioning.at_samples(bias, start, x.shape[1])
        return self.run_layers(x, cond)[0]

    def loss(
        self, x: torch.Tensor, gc: torch.Tensor | None = None, codes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of every sample of x [B, T] given its past; returns (loss, accuracy)."""
        logits = self(x, gc, codes)
        loss = F.cross_entropy(logits, x)
        accuracy = (logits.argmax(dim=1) == x).float().mean()
        return loss, accuracy

    # -- audio <-> ids ------------------------------------------------------------------------

    def encode_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """float samples [..., N] at `sample_rate` -> μ-law ids [..., N]."""
        return mulaw_encode(wav, self.config.quantization_channels)

    def decode_audio(self, ids: torch.Tensor) -> torch.Tensor:
        """μ-law ids [..., N] -> float samples [..., N] in [-1, 1]."""
        return mulaw_decode(ids, self.config.quantization_channels)

    # -- generation ---------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        n_samples: int,
        *,
        batch_size: int = 1,
        prompt: torch.Tensor | None = None,
        gc: torch.Tensor | int | None = None,
        codes: torch.Tensor | None = None,
        seed: int = 0,
        temperature: float = 1.0,
        naive: bool = False,
        callback: Callable[[torch.Tensor, int], None] | None = None,
        callback_every: int = 0,
    ) -> torch.Tensor:
        """Sample `n_samples` new μ-law ids after `prompt` (ids [P] or [B, P]).

        Returns ids [B, P + n_samples]. Fast (ring buffers, O(layers) per sample) unless
        `naive`, which recomputes the receptive field per sample; both give the same samples
        for the same seed. Row i of a batch draws its noise from seed + i. `callback(ids, n)`
        is called every `callback_every` samples with the ids so far (n of them valid).
        """
        run = naive_generate if naive else fast_generate
        return run(
            self,
            n_samples,
            batch_size=batch_size,
            prompt=prompt,
            gc=gc,
            codes=codes,
            seed=seed,
            temperature=temperature,
            callback=callback,
            callback_every=callback_every,
        )

    # -- checkpoints --------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        return save_checkpoint(directory, KIND, self.config, self.state_dict())

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> WaveNet:
        """Load a checkpoint directory (or a training run directory) written by
        `save_pretrained` or the trainer; the config travels inside it."""
        path = resolve_checkpoint_dir(directory)
        ckpt = load_checkpoint(path, KIND, WaveNetConfig)
        model = cls(ckpt.config)
        load_state_dict_checked(model, ckpt.state_dict, str(path))
        return model.to(device).eval()
