"""EnCodec's loss balancer: each loss gets a fixed share of the gradient at the decoder output.

Losses that act through the generated waveform y (L1, mel, adversarial, feature matching)
have wildly different and drifting scales. Rather than tuning raw weights, the balancer
computes each loss's gradient g_i = dL_i/dy, tracks an EMA of its norm, and sends back

    G = sum_i  (w_i / sum_j w_j) * total_norm * g_i / ema(||g_i||)

so that loss i contributes a w_i-proportional share of a gradient of fixed norm, independent
of its scale (Défossez et al. 2022, section 3.4). `balance` returns a surrogate loss whose
gradient with respect to y is G and whose *value* is the plain weighted sum of the losses,
so logs stay readable; the trainer back-propagates it like any loss.

The EMA norms are buffers, so they are saved with the trainer checkpoint and a resumed run
continues with the same statistics.
"""

from __future__ import annotations

import torch
from torch import nn


class Balancer(nn.Module):
    norm_sum: torch.Tensor  # buffer
    norm_weight: torch.Tensor  # buffer

    def __init__(
        self, weights: dict[str, float], ema_decay: float = 0.999, total_norm: float = 1.0, eps: float = 1e-12
    ):
        super().__init__()
        self.weights = dict(weights)
        self.ema_decay = ema_decay
        self.total_norm = total_norm
        self.eps = eps
        names = sorted(self.weights)
        self.names = names
        self.register_buffer("norm_sum", torch.zeros(len(names)))  # EMA numerator per loss
        self.register_buffer("norm_weight", torch.zeros(len(names)))  # EMA denominator (bias fix)

    def balance(self, losses: dict[str, torch.Tensor], output: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """A surrogate loss for `losses` (all computed from `output` y) and the gradient norms."""
        grads, norms = {}, {}
        for name, loss in losses.items():
            if name not in self.weights:
                raise KeyError(f"balancer has no weight for loss '{name}'")
            (grad,) = torch.autograd.grad(loss, [output], retain_graph=True, allow_unused=True)
            grad = torch.zeros_like(output) if grad is None else grad.float()
            grads[name] = grad
            # per-item norm, averaged over the batch (EnCodec's per_batch_item=True)
            norms[name] = grad.flatten(1).norm(dim=1).mean()
        with torch.no_grad():
            for name, norm in norms.items():
                i = self.names.index(name)
                self.norm_sum[i] = self.ema_decay * self.norm_sum[i] + norm
                self.norm_weight[i] = self.ema_decay * self.norm_weight[i] + 1.0
        total_weight = sum(self.weights[name] for name in losses)
        combined = torch.zeros_like(output, dtype=torch.float32)
        for name, grad in grads.items():
            i = self.names.index(name)
            avg_norm = self.norm_sum[i] / self.norm_weight[i]
            scale = self.weights[name] / total_weight * self.total_norm / (avg_norm + self.eps)
            combined = combined + scale * grad
        weighted = sum(self.weights[name] * loss.detach() for name, loss in losses.items())
        surrogate = (output.float() * combined.detach()).sum()
        surrogate = surrogate - surrogate.detach() + weighted  # gradient G, value = weighted sum
        return surrogate, {f"grad_norm_{name}": float(norm) for name, norm in norms.items()}
