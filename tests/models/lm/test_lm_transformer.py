"""The transformer: cached (prefill + one-token steps) logits equal the full forward pass."""

import pytest
import torch

from audiolm.core.cpu_features import bf16_fallback_reason, cpu_bf16_kernels
from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer



def tiny(mlp="swiglu", max_seq_len=24, vocab=40):
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, mlp=mlp, max_seq_len=max_seq_len)).eval()


@pytest.mark.parametrize("mlp", ["swiglu", "gelu"])
@pytest.mark.parametrize("eager_slice", [True, False])
def test_prefill_plus_steps_equal_full_forward(mlp, eager_slice):
    model = tiny(mlp)
    tokens = torch.randint(0, 40, (3, 20))
    with torch.no_grad():
        full = model(tokens)  # [B, T, V]
        model.setup_caches(3)
        T0 = 7
        pos = torch.arange(T0)
        pre = model(tokens[:, :T0], pos, kv_len=T0 if eager_slice else None)
        torch.testing.assert_close(pre, full[:, :T0], atol=1e-4, rtol=0)
        for t in range(T0, 20):
            step = model(tokens[:, t : t + 1], torch.tensor([t]), kv_len=t + 1 if eager_slice else None)
            torch.testing.assert_close(step[:, 0], full[:, t], atol=1e-4, rtol=0)


def test_last_only_and_errors():
    model = tiny()
    tokens = torch.randint(0, 40, (1, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, last_only=True)[:, 0], model(tokens)[:, -1])
        with pytest.raises(ValueError, match="max_seq_len"):
            model(torch.zeros(1, 25, dtype=torch.long))
        with pytest.raises(ValueError, match="cache length"):
            model.setup_caches(1, 100)


def test_gradients_flow_and_param_count():
    model = tiny().train()
    tokens = torch.randint(0, 40, (2, 12))
    model(tokens).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    # the state dict holds weights only: no rope tables, no caches
    assert not any("rope" in k or "cache" in k for k in model.state_dict())
    assert model.num_parameters() == sum(v.numel() for v in model.state_dict().values())


def test_bfloat16_model_keeps_its_rope_table_and_decodes():
    from audiolm.inference.decode import generate

    model = tiny()
    tokens = torch.randint(0, 40, (2, 12))
    with torch.no_grad():
        reference = model(tokens)
        half = model.to(torch.bfloat16)
        assert half.rope.dtype == torch.complex64 and half.output.weight.dtype == torch.bfloat16
        torch.testing.assert_close(half(tokens).float(), reference, atol=0.05, rtol=0)
    assert generate(half, tokens[:, :4], 30).shape == (2, 34)


def test_non_causal_flag_lets_earlier_positions_see_later_tokens():
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=40, dim=32, n_layers=2, n_heads=4, max_seq_len=24, causal=False)
    model = Transformer(config).eval()
    causal = tiny()
    causal.load_state_dict(model.state_dict())  # same weights, causal attention
    a = torch.randint(0, 40, (1, 10))
    b = a.clone()
    b[0, -1] = (a[0, -1] + 1) % 40  # change only the last token
    with torch.no_grad():
        # causal: positions before the change are untouched; non-causal: they all move
        torch.testing.assert_close(causal(a)[:, :-1], causal(b)[:, :-1], atol=1e-6, rtol=0)
        assert (model(a)[:, :-1] - model(b)[:, :-1]).abs().amax(-1).min() > 1e-4
        with pytest.raises(ValueError, match="non-causal"):
            model.setup_caches(1)
            model(a[:, :1], torch.tensor([0]))


def test_several_tokens_per_position_sum_their_embeddings():
    model = tiny()
    tokens = torch.randint(0, 40, (2, 6, 3))
    tokens[0, :, 2] = -1  # an empty slot adds nothing
    with torch.no_grad():
        # reference: the blocks run by hand on the summed embedding rows
        x = (model.tok_embeddings.weight[tokens.clamp_min(0)] * (tokens >= 0)[..., None]).sum(2)
        rotation = model.rope[:6][:, None, None]
        for layer in model.layers:
            x = layer(x, rotation, None, None, None)
        expected = model.output(model.norm(x))
        out = model(tokens)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
        # one slot per position is the plain [B, T] call; slot order does not matter
        one = tokens[..., 0]
        assert torch.equal(model(one[..., None]), model(one))
        torch.testing.assert_close(out, model(tokens.flip(-1)), atol=1e-5, rtol=0)
        torch.testing.assert_close(out[:1], model(tokens[:1, :, :2]), atol=1e-5, rtol=0)


def _cached_logits(model, tokens, T0=5):
    """Prefill T0 tokens, then one-token steps: logits [B, T, V] from the KV-cache path."""
    B, T = tokens.shape
    model.setup_caches(B)
    out = [model(tokens[:, :T0], torch.arange(T0), kv_len=T0)]
    for t in range(T0, T):
        out.append(model(tokens[:, t : t + 1], torch.tensor([t]), kv_len=t + 1))
    return torch.cat(out, 1)


def test_packed_float32_decoding_weights_equal_the_full_forward(monkeypatch):
    from audiolm.models.lm import packed_linear

    if not packed_linear.packing_available():
        pytest.skip("this torch build has no oneDNN linear")
    calls = []
    real = packed_linear.PackedLinear.__call__
    monkeypatch.setattr(packed_linear.PackedLinear, "__call__", lambda self, x: calls.append(1) or real(self, x))
    model = tiny()
    tokens = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        full = model(tokens)  # the reference: F.linear on the parameters
        assert not calls
        assert model.prepare_decoding()
        torch.testing.assert_close(_cached_logits(model, tokens), full, atol=1e-4, rtol=0)
        n_linears = len(model.linears())
        assert len(calls) == n_linears * (16 - 5 + 1)  # every decoding matrix product was packed
        # a weight changed after packing: decoding falls back to it, then re-packs it
        model.layers[0].mlp.w_in.weight.add_(0.01)
        changed = model(tokens)
        calls.clear()
        torch.testing.assert_close(_cached_logits(model, tokens), changed, atol=1e-4, rtol=0)
        assert len(calls) == (n_linears - 1) * (16 - 5 + 1)
        model.prepare_decoding()
        calls.clear()
        torch.testing.assert_close(_cached_logits(model, tokens), changed, atol=1e-4, rtol=0)
        assert len(calls) == n_linears * (16 - 5 + 1)
        model.to(torch.float64)  # .to() drops the packed copies
        assert all("packed" not in layer.__dict__ for layer in model.linears())


def test_bfloat16_decoding_weights_stay_close_and_pick_the_same_tokens():
    from audiolm.inference.decode import generate
    from audiolm.models.lm import packed_linear
    from audiolm.inference.sampling import SamplingConfig

    if not packed_linear.packing_available():
        pytest.skip("this torch build has no oneDNN linear")
    if not cpu_bf16_kernels():
        pytest.skip(bf16_fallback_reason())
    model = tiny(max_seq_len=48)
    tokens = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        full = model(tokens)
        model.set_decode_weights("bfloat16")
        model.prepare_decoding()
        assert model.output.__dict__["packed"].dtype == torch.bfloat16
        cached = _cached_logits(model, tokens)
        # bf16 rounding of weights and matrix inputs/outputs: as close as a bf16 model (see
        # test_bfloat16_model_keeps_its_rope_table_and_decodes), not bit-exact
        torch.testing.assert_close(cached, full, atol=0.05, rtol=0)
        assert (cached.argmax(-1) == full.argmax(-1)).float().mean() > 0.9
    greedy = generate(model, tokens[:, :4], 20, sampling=SamplingConfig(temperature=0.0))
    assert greedy.shape == (2, 24)
    with pytest.raises(ValueError, match="decode weights"):
        model.set_decode_weights("int4")


def test_bfloat16_decoding_weights_fall_back_to_float32_on_a_cpu_without_bf16_kernels(monkeypatch, capsys):
    """An AVX2-only CPU: bf16 packing would raise in oneDNN, so the weights pack as float32,
    with one warning line, and decoding equals the float32 packed path."""
    from audiolm.core import cpu_features
    from audiolm.models.lm import packed_linear

    if not packed_linear.packing_available():
        pytest.skip("this torch build has no oneDNN linear")
    monkeypatch.setattr(cpu_features.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(cpu_features, "_onednn_bf16", lambda: False)
    packed_linear._warn_once.cache_clear()
    assert not cpu_features.cpu_bf16_kernels()
    model = tiny(max_seq_len=48)
    tokens = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        full = model(tokens)
        model.set_decode_weights("bfloat16")
        assert model.prepare_decoding()
        assert all(layer.__dict__["packed"].dtype == torch.float32 for layer in model.linears())
        torch.testing.assert_close(_cached_logits(model, tokens), full, atol=1e-4, rtol=0)
        model.prepare_decoding()  # the warning is printed once per process
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "capability AVX2" in err[0] and "float32" in err[0]
    packed_linear._warn_once.cache_clear()
