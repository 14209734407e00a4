"""w2v-BERT pretraining: the encoder plus the parts only training needs.

    wav -> encoder front-end -> features ──► quantizer ──► targets q [B,T,D], ids [B,T,G]
                              └► mask spans -> layers 1..N (contrastive module) -> c
                                   c ─► Linear ─► contrastive loss vs q (+ diversity)
                                   c ─► layers N+1..L (MLM module) ─► Linear ─► CE vs ids
                                                                  (or vs external cluster ids)

With `target_clusters = K > 0` the MLM module predicts ids [B, T] given by an external
K-cluster tokenizer at the same frame rate (HuBERT's targets) instead of the quantizer's ids;
the contrastive module and its loss stay (scaled by `contrastive_weight`).

Masks and negatives are drawn with transformers' wav2vec 2.0 helpers (`_compute_mask_indices`,
`_sample_negative_indices`); they use numpy's global random state, which the trainer saves and
restores on resume. Validation draws them from a fixed seed (see `draw_masks`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

from audiolm.models.semantic.config import SSL_KIND, SSLConfig
from audiolm.models.semantic.encoder import SSLEncoder
from audiolm.training.semantic.losses import codebook_perplexity, contrastive_loss, diversity_loss, mlm_loss
from audiolm.training.semantic.quantizer import GumbelProductQuantizer

KIND = SSL_KIND


@dataclass
class Masks:
    mask: torch.Tensor  # [B, T] bool, frames replaced by the mask vector and scored
    negatives: torch.Tensor  # [B, T, K] long, indices into the flattened B*T frames
    valid: torch.Tensor  # [B, T] bool, frames inside the audio (not padding)


def draw_masks(config: SSLConfig, num_frames: torch.Tensor, total_frames: int, seed: int | None = None) -> Masks:
    """Span masks and distractor indices for a batch whose rows hold `num_frames` [B] real frames.

    seed=None draws from numpy's global state (training); a seed gives fixed masks (validation)
    and leaves the global state as it was.
    """
    state = None
    if seed is not None:
        state = np.random.get_state()
        np.random.seed(seed % 2**32)
    try:
        b = len(num_frames)
        valid = torch.arange(total_frames)[None] < num_frames[:, None]  # [B, T]
        mask = _compute_mask_indices(
            (b, total_frames),
            mask_prob=config.mask_prob,
            mask_length=min(config.mask_span_frames, max(1, int(num_frames.min()) - 1)),
            attention_mask=valid.long(),  # type: ignore[arg-type]  # a LongTensor
            min_masks=2,
        )
        negatives = _sample_negative_indices((b, total_frames), config.num_negatives, valid.numpy())
    finally:
        if state is not None:
            np.random.set_state(state)
    mask_t = torch.from_numpy(mask).bool() & valid
    return Masks(mask=mask_t, negatives=torch.from_numpy(negatives.astype(np.int64)), valid=valid)


def gumbel_temperature(config: SSLConfig, step: int) -> float:
    """Exponential decay from max to min over `gumbel_decay_steps`, then constant."""
    if step < 0:
        return config.gumbel_min_temperature
    ratio = config.gumbel_min_temperature / config.gumbel_max_temperature
    return config.gumbel_max_temperature * ratio ** min(1.0, step / max(1, config.gumbel_decay_steps))


@dataclass
class PretrainingOutput:
    loss: torch.Tensor
    contrastive: torch.Tensor
    diversity: torch.Tensor
    mlm: torch.Tensor
    contrastive_accuracy: torch.Tensor
    mlm_accuracy: torch.Tensor
    perplexity: torch.Tensor  # codebook perplexity over valid frames (out of G·V)


class W2vBertModel(nn.Module):
    """Encoder + quantizer + the two heads. Exported as the "ssl" checkpoint; a tokenizer keeps
    only `encoder` (truncated to its layer)."""

    def __init__(self, config: SSLConfig) -> None:
        super().__init__()
        config.check_pretraining()
        self.config = config
        self.encoder = SSLEncoder(config)
        self.quantizer = GumbelProductQuantizer(
            config.feature_dim,
            config.codebook_groups,
            config.codebook_size,
            config.codevector_dim,
            config.codebook_logit_scale,
            config.gumbel_noise_scale,
        )
        self.project_context = nn.Linear(config.hidden_size, config.codevector_dim)
        self.project_targets = nn.Linear(config.codevector_dim, config.codevector_dim)
        self.mlm_head = nn.Linear(config.hidden_size, self.mlm_groups * self.mlm_classes)
        nn.init.normal_(self.mlm_head.weight, std=1.0 / math.sqrt(config.hidden_size))

    @property
    def mlm_groups(self) -> int:
        return 1 if self.config.target_clusters else self.config.codebook_groups

    @property
    def mlm_classes(self) -> int:
        return self.config.target_clusters or self.config.codebook_size

    def forward(self, wav: torch.Tensor, masks: Masks, cluster_ids: torch.Tensor | None = None) -> PretrainingOutput:
        """wav: [B, N] 16 kHz crops (zero-padded past each row's length); cluster_ids: [B, T]
        external targets in [0, target_clusters) (required iff config.target_clusters > 0)."""
        cfg = self.config
        if bool(cfg.target_clusters) != (cluster_ids is not None):
            raise ValueError("cluster_ids must be given exactly when config.target_clusters > 0")
        out = self.encoder(wav, mask=masks.mask, num_layers=cfg.contrastive_layers)
        hidden = out.hidden_states[cfg.contrastive_layers]  # [B, T, H] contrastive module output
        quantized = self.quantizer(out.features)
        targets = self.project_targets(quantized.codevectors)  # [B, T, D]
        context = self.project_context(hidden)  # [B, T, D]
        contrastive, c_acc = contrastive_loss(
            context, targets, masks.negatives, masks.mask, cfg.contrastive_temperature
        )
        diversity = diversity_loss(quantized.probs, masks.valid)

        x = hidden
        rotary = self.encoder.rotary_embeddings(x)
        for layer in self.encoder.layers[cfg.contrastive_layers :]:
            x = layer(x, relative_position_embeddings=rotary)
        b, t, _ = x.shape
        logits = self.mlm_head(x).view(b, t, self.mlm_groups, self.mlm_classes)
        targets_ids = quantized.ids if cluster_ids is None else cluster_ids[..., None]  # [B, T, G]
        mlm, m_acc = mlm_loss(logits, targets_ids, masks.mask)
        if cfg.mlm_unmasked_weight:
            unmasked = masks.valid & ~masks.mask
            if unmasked.any():
                mlm = mlm + cfg.mlm_unmasked_weight * mlm_loss(logits, targets_ids, unmasked)[0]

        # the contrastive terms are always computed (so every parameter takes part in the
        # graph, as DDP wants), and scaled to nothing when contrastive_weight = 0
        loss = cfg.contrastive_weight * (contrastive + cfg.diversity_weight * diversity) + cfg.mlm_weight * mlm
        with torch.no_grad():
            perplexity = codebook_perplexity(quantized.probs, masks.valid)
        return PretrainingOutput(loss, contrastive, diversity, mlm, c_acc, m_acc, perplexity)
