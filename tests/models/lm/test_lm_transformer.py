"""The transformer: cached (prefill + one-token steps) logits equal the full forward pass."""

import pytest
import torch

from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer


def tiny(mlp="swiglu", max_seq_len=24, vocab=40):
    torch.manual_seed(0)
    return Transformer(
        TransformerConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=4, mlp=mlp, max_seq_len=max_seq_len)
    ).eval()


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
