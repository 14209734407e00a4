"""Mini-batch k-means (Sculley 2010) with k-means++ initialisation, in torch (GPU when present).

Semantic tokens are the index of the nearest centroid of one layer's features. A corpus'
features stream through a `FrameReservoir`, a uniform sample of at most `capacity` frames
(Vitter's algorithm R) plus running sums for the mean and standard deviation of every frame, so
fitting takes a fixed amount of memory whatever the corpus size. Each step draws a random
batch, assigns it, and moves every centroid towards its batch mean with a per-centroid learning
rate 1 / (points seen so far). Centroids that stay empty are re-seeded from far-away points.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm


class FrameReservoir:
    """A uniform random sample of at most `capacity` frames of a stream of [T, D] feature
    blocks, in `capacity * D` float16 values, plus the exact mean / std of all frames seen.

    Algorithm R, vectorised per block: frame number i (0-based, over the whole stream) takes a
    slot when i < capacity, else replaces slot j ~ U[0, i] when j < capacity.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.seen = 0
        self._rng = np.random.default_rng([seed, 5])
        self._frames: torch.Tensor | None = None  # [capacity, D] float16
        self._sum: torch.Tensor | None = None  # [D] float64
        self._sumsq: torch.Tensor | None = None

    def add(self, feats: torch.Tensor) -> None:
        """Offer a block of frames [T, D]."""
        feats = feats.detach().to("cpu", torch.float32)
        t, d = feats.shape
        if self._frames is None:
            self._frames = torch.zeros(self.capacity, d, dtype=torch.float16)
            self._sum, self._sumsq = torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
        assert self._sum is not None and self._sumsq is not None
        self._sum += feats.sum(0, dtype=torch.float64)
        self._sumsq += feats.double().pow(2).sum(0)
        positions = np.arange(self.seen, self.seen + t)
        slots = np.where(
            positions < self.capacity, positions, np.floor(self._rng.random(t) * (positions + 1)).astype(np.int64)
        )
        keep = slots < self.capacity
        # numpy-style assignment with repeated slots: the later frame wins, as in the serial algorithm
        index = torch.from_numpy(slots[keep])
        rows = feats[torch.from_numpy(np.nonzero(keep)[0])].to(torch.float16)
        order = np.unique(slots[keep][::-1], return_index=True)[1]  # last occurrence of each slot
        last = len(index) - 1 - torch.from_numpy(order)
        self._frames[index[last]] = rows[last]
        self.seen += t

    def frames(self) -> torch.Tensor:
        """The sample [min(seen, capacity), D] (float16)."""
        if self._frames is None:
            return torch.zeros(0, 0, dtype=torch.float16)
        return self._frames[: min(self.seen, self.capacity)]

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and (unbiased) standard deviation of every frame seen, float32 [D]."""
        if not self.seen:
            raise ValueError("no frames seen")
        assert self._sum is not None and self._sumsq is not None
        mean = self._sum / self.seen
        var = (self._sumsq - self.seen * mean.pow(2)) / max(1, self.seen - 1)
        return mean.float(), var.clamp_min(0).sqrt().float()


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
def kmeans_plus_plus(
    x: torch.Tensor, k: int, generator: torch.Generator, local_trials: int | None = None
) -> torch.Tensor:
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
