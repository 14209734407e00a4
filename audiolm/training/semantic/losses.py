"""The w2v-BERT objectives on masked frames: contrastive (+ codebook diversity) and MLM.

Shapes: B utterances, T frames, D codevector dim, K negatives, G codebook groups, V entries.
"""

from __future__ import annotations

import torch
from torch import nn


def contrastive_loss(
    context: torch.Tensor,
    targets: torch.Tensor,
    negative_indices: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of each masked frame's context vector against its quantized target and K
    distractors drawn from other frames of the same utterance (wav2vec 2.0, eq. 3).

    context, targets: [B, T, D]; negative_indices: [B, T, K] into the flattened B*T frames;
    mask: [B, T] bool (frames to score). Returns (mean loss, accuracy of the positive).
    """
    b, t, d = targets.shape
    flat = targets.reshape(b * t, d)
    positives = targets[mask]  # [M, D] only masked frames are scored
    negatives = flat[negative_indices[mask]]  # [M, K, D]
    candidates = torch.cat([positives[:, None], negatives], dim=1)  # [M, 1 + K, D]
    logits = torch.cosine_similarity(context[mask][:, None].float(), candidates.float(), dim=-1) / temperature
    # a distractor identical to the positive (same codevectors) is not a distractor
    same = (negatives == positives[:, None]).all(dim=-1)  # [M, K]
    logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], dim=1)
    zeros = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = nn.functional.cross_entropy(logits, zeros)
    accuracy = (logits.argmax(dim=-1) == 0).float().mean()
    return loss, accuracy


def codebook_perplexity(probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over groups of exp(entropy of the mean soft assignment). probs: [B, T, G, V]."""
    flat = probs[valid] if valid is not None else probs.reshape(-1, *probs.shape[-2:])  # [N, G, V]
    marginal = flat.mean(dim=0)  # [G, V]
    # not xlogy: its gradient is log(0) = -inf for an entry whose probability underflowed to 0
    entropy = -(marginal * torch.log(marginal + 1e-9)).sum(dim=-1)  # [G]
    return entropy.exp().sum()


def diversity_loss(probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """(G·V − perplexity) / (G·V): 0 when every entry of every group is used equally."""
    g, v = probs.shape[-2:]
    return (g * v - codebook_perplexity(probs, valid)) / (g * v)


def mlm_loss(logits: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the quantizer ids of masked frames, averaged over frames and groups.

    logits: [B, T, G, V]; target_ids: [B, T, G]; mask: [B, T] bool. Returns (loss, accuracy).
    """
    scored = logits[mask].float()  # [M, G, V]
    targets = target_ids[mask]  # [M, G]
    loss = nn.functional.cross_entropy(scored.reshape(-1, scored.shape[-1]), targets.reshape(-1))
    accuracy = (scored.argmax(dim=-1) == targets).float().mean()
    return loss, accuracy
