"""Rows of different lengths in one batch (left padding + a key-padding mask + per-row
positions): every row's logits and tokens are those of the row run alone, in the full forward
pass, the KV-cached steps (across window slides), the packed step, and the decoding loop; the
compiled and graph-captured steps are bypassed for such a batch."""

import pytest
import torch

from audiolm.inference import decode as decode_module
from audiolm.inference.decode import decode, left_padded
from audiolm.inference.packed_step import packed_model
from audiolm.inference.sampling import SamplingConfig
from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer

V = 40


def tiny(causal=True, max_seq_len=24):
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4, max_seq_len=max_seq_len, causal=causal)
    return Transformer(config).eval()


def rows(*lengths, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, V, (n,), generator=gen) for n in lengths]


@pytest.mark.parametrize("causal", [True, False])
def test_padded_full_forward_equals_each_row_alone(causal):
    model = tiny(causal)
    seqs = rows(5, 17, 11, 1)
    tokens, lengths = left_padded(seqs)
    assert tokens.shape == (4, 17) and lengths == [5, 17, 11, 1]
    tokens[0, :12] = 7  # the padding's values do not matter
    left_pad = torch.tensor([17 - n for n in lengths])
    with torch.no_grad():
        batch = model(tokens, left_pad=left_pad)
        assert torch.isfinite(batch).all()  # padding rows too: no empty softmax row
        for b, seq in enumerate(seqs):
            alone = model(seq[None])[0]
            torch.testing.assert_close(batch[b, 17 - len(seq) :], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("packed", [False, True])
def test_padded_cached_steps_equal_each_row_alone(packed):
    """Prefill of the padded prompts, then one-token steps at shared cache slots: each row's
    logits equal its own full forward pass (the plain model, and the packed oneDNN step)."""
    model = tiny()
    seqs = rows(3, 9, 6)
    full_seqs = rows(3 + 10, 9 + 10, 6 + 10, seed=2)  # prompt + 10 more tokens per row
    for b, seq in enumerate(seqs):
        full_seqs[b][: len(seq)] = seq
    with torch.no_grad():
        tokens, lengths = left_padded(seqs)
        left_pad = torch.tensor([9 - n for n in lengths])
        model.setup_caches(3)
        forward = (packed_model(model) or model) if packed else model
        pre = forward(tokens, torch.arange(9), kv_len=9, left_pad=left_pad)
        alone = [model(s[None])[0] for s in full_seqs]
        for b, n in enumerate(lengths):
            torch.testing.assert_close(pre[b, 9 - n :], alone[b][:n], atol=1e-5, rtol=0)
        for t in range(10):
            step_tokens = torch.stack([s[n + t] for s, n in zip(full_seqs, lengths)])[:, None]
            step = forward(step_tokens, torch.tensor([9 + t]), kv_len=10 + t, left_pad=left_pad)
            for b, n in enumerate(lengths):
                torch.testing.assert_close(step[b, 0], alone[b][n + t], atol=1e-5, rtol=0)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("weights", [None, "float32"])
def test_ragged_decode_equals_each_row_alone(temperature, weights):
    """Prompts of 4, 15 and 30 tokens (30 > the 24-token context: it starts with a window),
    50 new tokens: every row slides its window at its own times, as it would alone; per-row
    seeds and draw offsets."""
    model = tiny()
    seqs = rows(4, 15, 30)
    tokens, lengths = left_padded(seqs)
    sampling = SamplingConfig(temperature=temperature, top_k=10)
    seeds, offsets = [3, 9, 4], [0, 7, 2]
    gen = decode(
        model,
        tokens,
        50,
        sampling=sampling,
        seeds=seeds,
        step_offset=offsets,
        prompt_lengths=lengths,
        return_logits=True,
        decode_weights=weights,
        window_keep=12,
    )
    assert gen.tokens.shape == (3, 80)
    for b, seq in enumerate(seqs):
        alone = decode(
            model,
            seq[None],
            50,
            sampling=sampling,
            seeds=[seeds[b]],
            step_offset=offsets[b],
            return_logits=True,
            decode_weights=weights,
            window_keep=12,
        )
        assert torch.equal(gen.tokens[b, 30 - len(seq) :], alone.tokens[0]), b
        torch.testing.assert_close(gen.logits[b], alone.logits[0], atol=1e-4, rtol=0)
        assert torch.equal(gen.tokens[b, : 30 - len(seq)], torch.zeros(30 - len(seq), dtype=torch.long))


def test_ragged_logits_mask_gets_columns():
    model = tiny()
    tokens, lengths = left_padded(rows(2, 6))
    allowed = torch.zeros(2, V, dtype=torch.bool)
    allowed[0, :5], allowed[1, 30:] = True, True  # per row
    seen = []

    def mask(pos):
        seen.append(pos)
        return allowed

    out = decode(model, tokens, 8, prompt_lengths=lengths, logits_mask=mask, seeds=[0, 1]).tokens
    assert seen == list(range(6, 14))
    assert (out[0, 6:] < 5).all() and (out[1, 6:] >= 30).all()


def test_fast_steps_are_bypassed_for_a_ragged_batch(monkeypatch):
    """The compiled step and the CUDA-graph step take neither a padding mask nor per-row draw
    numbers: a ragged batch runs the packed/eager step instead (even when they are asked for),
    a batch of equals still gets them."""
    built = []

    def fake_compiled(model, B, sampling, **kwargs):
        built.append(B)
        return decode_module.decode_one_token

    monkeypatch.setattr(decode_module, "compiled_step", fake_compiled)  # compile_step="jit"
    monkeypatch.setattr(decode_module, "cached_step", fake_compiled)  # compile_step=True / "cached"
    model = tiny()
    tokens, lengths = left_padded(rows(3, 8))
    ragged = decode(model, tokens, 6, prompt_lengths=lengths, compile_step=True, cuda_graph=True).tokens
    assert built == []  # (CudaGraphStep on a CPU model would have raised)
    assert torch.equal(ragged, decode(model, tokens, 6, prompt_lengths=lengths).tokens)
    decode(model, tokens, 6, step_offset=[0, 3], compile_step=True)
    assert built == []
    decode(model, tokens, 6, compile_step=True)
    decode(model, tokens, 6, compile_step="jit")
    assert built == [2, 2]


def test_ragged_arguments_are_checked():
    model = tiny()
    tokens = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="prompt_lengths"):
        decode(model, tokens, 3, prompt_lengths=[5, 6])
    with pytest.raises(ValueError, match="prompt_lengths"):
        decode(model, tokens, 3, prompt_lengths=[5])
    with pytest.raises(ValueError, match="step offsets"):
        decode(model, tokens, 3, step_offset=[0, 1, 2])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_ragged_decode_on_cuda_equals_graph_captured_rows_alone():
    """On CUDA a ragged batch runs eager masked steps; each row alone runs the graph-captured
    step: the same tokens, logits to float rounding."""
    model = tiny().cuda()
    seqs = [s.cuda() for s in rows(4, 15, 30)]
    tokens, lengths = left_padded(seqs)
    sampling = SamplingConfig(temperature=0.9, top_k=10)
    gen = decode(
        model,
        tokens,
        50,
        sampling=sampling,
        seeds=[3, 9, 4],
        prompt_lengths=lengths,
        return_logits=True,
        window_keep=12,
    )
    for b, seq in enumerate(seqs):
        alone = decode(
            model,
            seq[None],
            50,
            sampling=sampling,
            seeds=[[3, 9, 4][b]],
            return_logits=True,
            window_keep=12,
            cuda_graph=True,
        )
        assert torch.equal(gen.tokens[b, 30 - len(seq) :], alone.tokens[0]), b
        torch.testing.assert_close(gen.logits[b], alone.logits[0], atol=1e-4, rtol=0)
