"""Fast (ring buffer) generation equals naive generation sample for sample; argument checks."""

import pytest
import torch

from audiolm.core.errors import ConfigError
from tests.helpers import random_wavenet, tiny_wavenet_config

LC = dict(lc_n_q=2, lc_codebook_size=16, lc_hop=8)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"gc_cardinality": 3}, LC, {"gc_cardinality": 2, **LC}, {"input_kernel_size": 3, "stacks": 3}],
    ids=["plain", "gc", "lc", "gc+lc", "kernel3"],
)
@pytest.mark.parametrize("with_prompt", [False, True], ids=["scratch", "prompt"])
def test_fast_equals_naive_sample_for_sample(overrides, with_prompt):
    cfg = tiny_wavenet_config(**overrides)
    model = random_wavenet(cfg)
    B, n = 2, 150
    gc = torch.tensor([2 if cfg.gc_cardinality > 2 else 1, 0]) if cfg.has_gc else None
    prompt = torch.randint(0, 256, (B, 45), generator=torch.Generator().manual_seed(5)) if with_prompt else None
    codes = torch.randint(0, 16, (B, 2, 30)) if cfg.has_lc else None
    fast = model.generate(n, batch_size=B, prompt=prompt, gc=gc, codes=codes, seed=7)
    naive = model.generate(n, batch_size=B, prompt=prompt, gc=gc, codes=codes, seed=7, naive=True)
    assert fast.shape == (B, n + (45 if with_prompt else 0))
    assert torch.equal(fast, naive)
    if with_prompt:
        assert torch.equal(fast[:, :45], prompt)
    # the samples are not trivially constant: the test would catch a divergence
    assert len(set(fast[0, -n:].tolist())) > 20


def test_fast_logits_equal_the_forward_pass_logits(monkeypatch):
    """Greedy samples of a random net are near-constant (2 distinct values in 300), so equal
    samples prove little: compare the logits of every step of the fast path with the plain
    forward pass (teacher-forced on the generated ids)."""
    from audiolm.models.wavenet.sampling import prepare_inputs

    model = random_wavenet(tiny_wavenet_config(gc_cardinality=2, **LC), std=0.2)
    codes = torch.randint(0, 16, (1, 2, 40), generator=torch.Generator().manual_seed(3))
    seen = []
    argmax = torch.argmax

    def spy(x, dim=None, keepdim=False, *, out=None):
        seen.append(x.detach().clone())
        return argmax(x, dim, keepdim, out=out) if out is not None else argmax(x, dim, keepdim)

    monkeypatch.setattr(torch, "argmax", spy)
    n = 300
    ids = model.generate(n, gc=1, codes=codes, temperature=0.0)
    monkeypatch.undo()
    assert len(seen) == n
    fast_logits = torch.stack(seen, dim=-1)  # [B, C, n]
    with torch.inference_mode():
        inputs = prepare_inputs(model, n, 1, None, 1, codes, 0.0)
        cond = model.conditioning.at_samples(inputs.bias, 0, ids.shape[1])
        reference = model.run_layers(ids, cond)[0]  # [B, C, T]: position t sees ids < t
    torch.testing.assert_close(fast_logits, reference[..., -n:], rtol=1e-4, atol=1e-4)
    assert torch.equal(ids, model.generate(n, gc=1, codes=codes, temperature=0.0, naive=True))


def test_seeds_rows_and_reproducibility():
    model = random_wavenet(tiny_wavenet_config())
    a = model.generate(80, batch_size=3, seed=11)
    assert torch.equal(a, model.generate(80, batch_size=3, seed=11))
    assert not torch.equal(a, model.generate(80, batch_size=3, seed=12))
    # row i of a batch is the batch-1 run with seed + i
    assert torch.equal(a[2:3], model.generate(80, seed=13))


def test_callback_sees_growing_prefixes():
    model = random_wavenet(tiny_wavenet_config())
    seen = []
    out = model.generate(100, callback=lambda ids, n: seen.append((n, ids[0, :n].clone())), callback_every=25)
    assert [n for n, _ in seen] == [25, 50, 75, 100]
    for n, prefix in seen:
        assert torch.equal(prefix, out[0, :n])


def test_generation_argument_errors():
    plain = random_wavenet(tiny_wavenet_config())
    gc_model = random_wavenet(tiny_wavenet_config(gc_cardinality=3, gc_labels=["a", "b", "c"]))
    lc_model = random_wavenet(tiny_wavenet_config(**LC))
    with pytest.raises(ConfigError, match="no global conditioning"):
        plain.generate(5, gc=0)
    with pytest.raises(ConfigError, match="pass a gc id"):
        gc_model.generate(5)
    with pytest.raises(ConfigError, match="out of range.*0..2.*0=a"):
        gc_model.generate(5, gc=3)
    with pytest.raises(ConfigError, match="pass codes"):
        lc_model.generate(5)
    with pytest.raises(ConfigError, match="no local conditioning"):
        plain.generate(5, codes=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="4 levels.*trained on 2.*different codec"):
        lc_model.generate(5, codes=torch.zeros(4, 10, dtype=torch.long))
    with pytest.raises(ConfigError, match="range over 0..1023.*16 entries"):
        lc_model.generate(5, codes=torch.tensor([[0, 1023], [3, 4]]))
    with pytest.raises(ConfigError, match="cover 2 frames = 16 samples"):
        lc_model.generate(17, codes=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match="prompt ids"):
        plain.generate(5, prompt=torch.tensor([0, 256]))
