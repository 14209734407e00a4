"""The packed CPU decoding wrapper (`inference/packed_step.py`) around a plain Transformer:
float32 copies give the full forward's logits, stale copies are never used, bfloat16 copies
stay close and pick the same tokens."""

import pytest
import torch

from audiolm.core import cpu_features
from audiolm.core.cpu_features import bf16_fallback_reason, cpu_bf16_kernels
from audiolm.inference.decode import generate
from audiolm.inference.packed_step import packed_copies, packed_model
from audiolm.inference.sampling import SamplingConfig
from audiolm.models.lm import packed_linear
from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer

pytestmark = pytest.mark.skipif(not packed_linear.packing_available(), reason="this torch build has no oneDNN linear")


def tiny(max_seq_len=24, vocab=40):
    torch.manual_seed(0)
    return Transformer(
        TransformerConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, max_seq_len=max_seq_len)
    ).eval()


def _cached_logits(model, tokens, T0=5, forward=None):
    """Prefill T0 tokens, then one-token steps: logits [B, T, V] from the KV-cache path of
    `forward` (a decoding wrapper of model; default the model itself)."""
    forward = forward or model
    B, T = tokens.shape
    model.setup_caches(B)
    out = [forward(tokens[:, :T0], torch.arange(T0), kv_len=T0)]
    for t in range(T0, T):
        out.append(forward(tokens[:, t : t + 1], torch.tensor([t]), kv_len=t + 1))
    return torch.cat(out, 1)


def test_packed_float32_decoding_weights_equal_the_full_forward(monkeypatch):
    calls = []
    real = packed_linear.PackedLinear.__call__
    monkeypatch.setattr(packed_linear.PackedLinear, "__call__", lambda self, x: calls.append(1) or real(self, x))
    model = tiny()
    tokens = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        full = model(tokens)  # the reference: F.linear on the parameters
        torch.testing.assert_close(_cached_logits(model, tokens), full, atol=1e-4, rtol=0)
        assert not calls  # the plain model never uses packed copies
        packed = packed_model(model)
        assert packed is not None
        torch.testing.assert_close(_cached_logits(model, tokens, forward=packed), full, atol=1e-4, rtol=0)
        n_linears = len(model.linears())
        assert len(calls) == n_linears * (16 - 5 + 1)  # every decoding matrix product was packed
        # a weight changed after packing: decoding falls back to it, then re-packs it
        model.layers[0].mlp.w_in.weight.add_(0.01)
        changed = model(tokens)
        calls.clear()
        torch.testing.assert_close(_cached_logits(model, tokens, forward=packed), changed, atol=1e-4, rtol=0)
        assert len(calls) == (n_linears - 1) * (16 - 5 + 1)
        packed = packed_model(model)
        calls.clear()
        torch.testing.assert_close(_cached_logits(model, tokens, forward=packed), changed, atol=1e-4, rtol=0)
        assert len(calls) == n_linears * (16 - 5 + 1)
        assert len(packed_copies(model)) == n_linears
        model.to(torch.float64)  # .to() leaves the packed copies stale; float64 is not packed
        assert not packed_copies(model)
        assert packed_model(model) is None and not packed_copies(model)


def test_bfloat16_decoding_weights_stay_close_and_pick_the_same_tokens():
    if not cpu_bf16_kernels():
        pytest.skip(bf16_fallback_reason())
    model = tiny(max_seq_len=48)
    tokens = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        full = model(tokens)
        packed = packed_model(model, "bfloat16")
        assert packed_copies(model)[model.output].dtype == torch.bfloat16
        cached = _cached_logits(model, tokens, forward=packed)
        # bf16 rounding of weights and matrix inputs/outputs: as close as a bf16 model (see
        # test_bfloat16_model_keeps_its_rope_table_and_decodes), not bit-exact
        torch.testing.assert_close(cached, full, atol=0.05, rtol=0)
        assert (cached.argmax(-1) == full.argmax(-1)).float().mean() > 0.9
    greedy = generate(model, tokens[:, :4], 20, sampling=SamplingConfig(temperature=0.0), decode_weights="bfloat16")
    assert greedy.shape == (2, 24)
    with pytest.raises(ValueError, match="decode weights"):
        generate(model, tokens[:, :4], 2, decode_weights="int4")
    with pytest.raises(ValueError, match="decode weights"):
        packed_model(model, "int4")


def test_bfloat16_decoding_weights_fall_back_to_float32_on_a_cpu_without_bf16_kernels(monkeypatch, capsys):
    """An AVX2-only CPU: bf16 packing would raise in oneDNN, so the weights pack as float32,
    with one warning line, and decoding equals the float32 packed path."""
    monkeypatch.setattr(cpu_features.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(cpu_features, "_onednn_bf16", lambda: False)
    packed_linear._warn_once.cache_clear()
    assert not cpu_features.cpu_bf16_kernels()
    model = tiny(max_seq_len=48)
    tokens = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        full = model(tokens)
        packed = packed_model(model, "bfloat16")
        assert packed is not None and packed.dtype == torch.float32
        assert all(p.dtype == torch.float32 for p in packed_copies(model).values())
        torch.testing.assert_close(_cached_logits(model, tokens, forward=packed), full, atol=1e-4, rtol=0)
        packed_model(model, "bfloat16")  # the warning is printed once per process
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "capability AVX2" in err[0] and "float32" in err[0]
    packed_linear._warn_once.cache_clear()
