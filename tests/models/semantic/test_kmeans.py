import torch

from audiolm.models.semantic.kmeans import assign, fit_kmeans, kmeans_plus_plus


def _blobs(k=12, d=8, n=6000, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 20
    labels = torch.randint(k, (n,), generator=g)
    return centres, labels, centres[labels] + torch.randn(n, d, generator=g)


def test_recovers_well_separated_clusters():
    centres, labels, x = _blobs()
    found = fit_kmeans(x, 12, batch_size=1024, steps=100, progress=False)
    # every true centre has a fitted centroid nearby, and the clustering is pure
    assert torch.cdist(centres, found).min(dim=1).values.max() < 0.5
    pred = assign(x, found)
    for c in range(12):
        assert pred[labels == c].unique().numel() == 1


def test_deterministic_for_a_seed():
    _, _, x = _blobs(seed=1)
    a = fit_kmeans(x, 12, batch_size=512, steps=20, seed=3, progress=False)
    b = fit_kmeans(x, 12, batch_size=512, steps=20, seed=3, progress=False)
    assert torch.equal(a, b)


def test_kmeans_plus_plus_spreads_seeds():
    centres, _, x = _blobs(k=6, seed=2)
    seeds = kmeans_plus_plus(x, 6, torch.Generator().manual_seed(0))
    # one seed per blob: nearest true centre of each seed is distinct
    assert torch.cdist(seeds, centres).argmin(dim=1).unique().numel() == 6


def test_assign_matches_bruteforce_in_chunks():
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(1000, 5, generator=g), torch.randn(7, 5, generator=g)
    assert torch.equal(assign(x, c, chunk=77), torch.cdist(x, c).argmin(dim=1))


def test_too_few_points_is_an_error():
    import pytest

    with pytest.raises(ValueError):
        fit_kmeans(torch.randn(3, 2), 5, progress=False)
