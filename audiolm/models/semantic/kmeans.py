"""Mini-batch k-means (Sculley 2010) with k-means++ initialisation, in torch (GPU when present).

Semantic tokens are the index of the nearest centroid of one layer's features. The features of
an hour of audio (~200k frames × a few hundred dims) fit in memory; each step draws a random
batch, assigns it, and moves every centroid towards its batch mean with a per-centroid learning
rate 1 / (points seen so far). Centroids that stay empty are re-seeded from far-away points.
"""

from __future__ import annotations

import math

import torch
from tqdm import tqdm


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """x: [N, D], centroids: [K, D] -> [N, K] squared Euclidean distances (clamped at 0)."""
    d = x.pow(2).sum(-1, keepdim=True) - 2 * x @ centroids.T + centroids.pow(2).sum(-1)[None]
    return d.clamp_min_(0)


@torch.no_grad()
def assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Nearest centroid of every row. x: [N, D] -> LongTensor [N] (on x's device)."""
    c = centroids.to(device=x.device, dtype=torch.float32)
    out = [squared_distances(x[i : i + chunk].float(), c).argmin(dim=-1) for i in range(0, x.shape[0], chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


@torch.no_grad()
def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator, local_trials: int | None = None) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; the greedy variant sklearn uses):
    each step draws `local_trials` candidates with probability proportional to their squared
    distance to the nearest chosen centroid and keeps the one that lowers the total most.
    x: [N, D] -> [K, D]."""
    n = x.shape[0]
    trials = local_trials or 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=generator, device=generator.device))
    centroids = torch.empty(k, x.shape[1], device=x.device, dtype=x.dtype)
    centroids[0] = x[first]
    closest = squared_distances(x, centroids[:1]).squeeze(1)  # [N]
    for i in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k: duplicate at random
            candidates = torch.randint(n, (1,), generator=generator, device=generator.device)
        else:
            candidates = torch.multinomial(closest / total, trials, replacement=True, generator=generator)
        # [trials, N]: what `closest` would become with each candidate added
        options = torch.minimum(closest[None], squared_distances(x[candidates], x).clamp_min(0))
        best = int(options.sum(dim=1).argmin())
        centroids[i] = x[candidates[best]]
        closest = options[best]
    return centroids


@torch.no_grad()
def fit_kmeans(
    x: torch.Tensor,
    k: int,
    *,
    batch_size: int = 8192,
    steps: int = 300,
    init_size: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    progress: bool = True,
    tolerance: float = 1e-4,
) -> torch.Tensor:
    """Fit k centroids to x: [N, D] (any float dtype, any device). Returns [K, D] float32 on CPU.

    init_size: points used for k-means++ (default max(20 k, 3 * batch_size), at most N).
    Stops early once the mean relative centroid movement stays below `tolerance` for 10 steps.
    """
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least k={k} points, got {n}")
    dev = resolve_device(device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    data = x.to(dev)
    init_size = min(n, init_size or max(20 * k, 3 * batch_size))
    init_idx = torch.randperm(n, generator=gen, device=dev)[:init_size]
    centroids = kmeans_plus_plus(data[init_idx].float(), k, gen)  # [K, D]
    counts = torch.zeros(k, device=dev)
    scale = centroids.pow(2).sum(-1).mean().sqrt().clamp_min(1e-8)
    quiet = 0
    bar = tqdm(range(steps), desc=f"k-means K={k}", disable=not progress, leave=False)
    for _ in bar:
        idx = torch.randint(n, (min(batch_size, n),), generator=gen, device=dev)
        batch = data[idx].float()  # [b, D]
        dist = squared_distances(batch, centroids)
        labels = dist.argmin(dim=-1)
        batch_counts = torch.bincount(labels, minlength=k).float()  # [K]
        sums = torch.zeros_like(centroids).index_add_(0, labels, batch)  # [K, D]
        counts += batch_counts
        seen = batch_counts > 0
        # c <- c + (sum - n_b * c) / counts  ==  Sculley's per-point updates with eta = 1/count
        step = (sums - batch_counts[:, None] * centroids) / counts.clamp_min(1)[:, None]
        centroids = centroids + step * seen[:, None]
        # centroids never hit so far: re-seed them at the batch points farthest from theirs
        dead = (counts == 0).nonzero().squeeze(1)
        if len(dead):
            far = dist.gather(1, labels[:, None]).squeeze(1).argsort(descending=True)[: len(dead)]
            centroids[dead[: len(far)]] = batch[far]
        movement = float(step.norm(dim=-1).mean() / scale)
        bar.set_postfix(move=f"{movement:.2e}", refresh=False)
        quiet = quiet + 1 if movement < tolerance else 0
        if quiet >= 10:
            break
    return centroids.float().cpu()
