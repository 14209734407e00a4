"""The Gumbel product quantizer that gives w2v-BERT its targets.

Front-end features are mapped to G groups of V logits. Training samples one entry per group
with a straight-through Gumbel-softmax (hard one-hot forward, soft gradient); evaluation takes
the argmax. The chosen entries' vectors are concatenated into the quantized target of the
contrastive loss; the argmax ids (not the Gumbel samples, whose noise would make the classes
unpredictable while the logits are still soft) are the classes the MLM module predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    codevectors: torch.Tensor  # [B, T, codevector_dim]
    ids: torch.Tensor  # [B, T, G] most likely entry per group (the MLM targets)
    probs: torch.Tensor  # [B, T, G, V] softmax of the logits
    one_hot: torch.Tensor  # [B, T, G, V] chosen entries (straight-through gradient when training)


class GumbelProductQuantizer(nn.Module):
    def __init__(
        self,
        in_dim: int,
        groups: int,
        entries: int,
        codevector_dim: int,
        logit_scale: float = 4.0,
        noise_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.noise_scale = noise_scale
        if codevector_dim % groups:
            raise ValueError(f"codevector_dim {codevector_dim} must be divisible by groups {groups}")
        self.groups = groups
        self.entries = entries
        self.logits = nn.Linear(in_dim, groups * entries)
        self.codevectors = nn.Parameter(torch.empty(groups, entries, codevector_dim // groups).uniform_())
        # initial logits have std `logit_scale` on layer-normed inputs. wav2vec 2.0's weight std 1
        # (logit std ~sqrt(in_dim) = 16 here) starts near one-hot and, on a small corpus,
        # collapsed the codebook to ~4 of 128 entries within a few dozen steps; std ~1 makes
        # the Gumbel samples (the targets) mostly noise
        nn.init.normal_(self.logits.weight, std=logit_scale * in_dim**-0.5)
        nn.init.zeros_(self.logits.bias)
        self.temperature = 2.0  # set by the training task each step (annealed)

    def forward(self, features: torch.Tensor) -> QuantizerOutput:
        """features: [B, T, in_dim] -> codevectors [B, T, D], ids [B, T, G], probs [B, T, G, V]."""
        b, t, _ = features.shape
        logits = self.logits(features).view(b, t, self.groups, self.entries).float()
        probs = logits.softmax(dim=-1)
        ids = logits.argmax(dim=-1)  # MLM targets: the most likely entry, free of sampling noise
        if self.training:
            one_hot = self._straight_through_sample(logits)
        else:
            one_hot = nn.functional.one_hot(ids, self.entries).to(logits.dtype)
        # [B, T, G, V] x [G, V, d] -> [B, T, G, d] -> [B, T, G * d]
        vectors = torch.einsum("btgv,gvd->btgd", one_hot.to(features.dtype), self.codevectors.to(features.dtype))
        return QuantizerOutput(codevectors=vectors.reshape(b, t, -1), ids=ids, probs=probs, one_hot=one_hot)

    def _straight_through_sample(self, logits: torch.Tensor) -> torch.Tensor:
        """Hard one-hot of argmax(logits + noise_scale · Gumbel noise) forward, the gradient of
        softmax((logits + noise) / temperature) backward. noise_scale 1 is Gumbel-softmax; with
        soft logits its samples are mostly noise (BENCHMARKS.md, "Semantic tokens"), so the
        contrastive targets carry no signal; smaller scales keep the targets a function of the
        audio while the logits are still soft. logits [..., entries] -> one-hot [..., entries]."""
        gumbel = -torch.empty_like(logits).exponential_().log()
        soft = ((logits + self.noise_scale * gumbel) / self.temperature).softmax(dim=-1)
        hard = nn.functional.one_hot(soft.argmax(dim=-1), self.entries).to(soft.dtype)
        return hard - soft.detach() + soft
