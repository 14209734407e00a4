"""The decoding engine, for every stage's layout: cached logits == full forward over the same
window (across sliding-window boundaries too), batched == per-sample with the same seeds."""

import pytest
import torch

from audiolm.inference.decode import decode, generate
from audiolm.inference.sampling import SamplingConfig
from audiolm.models.lm.config import StageConfig, TransformerConfig
from audiolm.models.lm.stage import complete_stage_config, make_layout
from audiolm.models.lm.transformer import Transformer

INFO = {
    "semantic": {"vocab_size": 12, "frame_rate": 25.0},
    "codec": {"codebook_size": 8, "frame_rate": 75.0, "n_q": 4},
}


def stage_model(stage, max_seq_len=24, seed=0):
    cfg = complete_stage_config(
        StageConfig(stage=stage, model=TransformerConfig(dim=32, n_layers=2, n_heads=2, max_seq_len=max_seq_len)), INFO
    )
    torch.manual_seed(seed)
    return Transformer(cfg.model), cfg


STAGES = ["semantic", "coarse", "fine"]


@pytest.mark.parametrize("stage", STAGES)
def test_cached_logits_equal_full_forward_across_window_slides(stage):
    model, cfg = stage_model(stage)
    V = cfg.model.vocab_size
    prompt = torch.randint(0, V, (2, 5))
    # 24-token context, keep 10: the window slides several times in 50 new tokens
    gen = decode(model, prompt, 50, window_keep=10, return_logits=True, seeds=[3, 4])
    assert len(set(gen.window_starts)) >= 3
    with torch.no_grad():
        for i, start in enumerate(gen.window_starts):
            end = 5 + i
            assert end - start <= 24
            full = model(gen.tokens[:, start:end])[:, -1]
            torch.testing.assert_close(gen.logits[:, i], full, atol=1e-4, rtol=0)


def test_long_prompt_starts_with_a_window():
    model, cfg = stage_model("semantic")
    prompt = torch.randint(0, 12, (1, 40))
    gen = decode(model, prompt, 3, return_logits=True)
    assert gen.window_starts[0] == 40 - (3 * 24) // 4
    with torch.no_grad():
        full = model(prompt[:, gen.window_starts[0] :])[:, -1]
    torch.testing.assert_close(gen.logits[:, 0], full, atol=1e-4, rtol=0)


@pytest.mark.parametrize("stage", STAGES)
def test_batched_generation_equals_per_sample(stage):
    model, cfg = stage_model(stage)
    V = cfg.model.vocab_size
    prompt = torch.randint(0, V, (3, 6))
    seeds = [11, 22, 33]
    sampling = SamplingConfig(temperature=1.0, top_k=8, top_p=0.9)
    batched = generate(model, prompt, 30, sampling=sampling, seeds=seeds, window_keep=12)
    for b in range(3):
        single = generate(model, prompt[b : b + 1], 30, sampling=sampling, seeds=[seeds[b]], window_keep=12)
        assert torch.equal(single[0], batched[b])
    # different seeds give different samples; the same seed the same
    again = generate(model, prompt, 30, sampling=sampling, seeds=seeds, window_keep=12)
    assert torch.equal(again, batched)
    other = generate(model, prompt, 30, sampling=sampling, seeds=[1, 2, 3], window_keep=12)
    assert not torch.equal(other, batched)


def test_logits_mask_restricts_every_position():
    model, cfg = stage_model("coarse")
    layout = make_layout(cfg)
    masks = layout.level_masks("cpu")
    prompt = torch.randint(0, cfg.model.vocab_size, (2, 4))
    out = generate(model, prompt, 20, logits_mask=lambda pos: masks[pos % 2])
    for pos in range(4, 24):
        q = pos % 2
        lo = layout.level_offsets[q]
        assert ((out[:, pos] >= lo) & (out[:, pos] < lo + 8)).all()


def test_progress_and_argument_checks():
    model, _ = stage_model("semantic")
    seen = []
    generate(model, torch.zeros(1, 3, dtype=torch.long), 4, progress=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(ValueError, match="window_keep"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), 4, window_keep=24)
    with pytest.raises(ValueError, match="seeds"):
        generate(model, torch.zeros(2, 3, dtype=torch.long), 4, seeds=[1])
    assert generate(model, torch.zeros(1, 3, dtype=torch.long), 0).shape == (1, 3)


def test_compiled_step_forms_of_rope_and_attention_equal_the_eager_ones():
    """The compiled step traces RoPE on (cos, sin) pairs and one-query attention as sums
    (`apply_rope` with a real rotation, `one_query_attention`): same values as the eager forms."""
    import torch.nn.functional as F

    from audiolm.inference.compiled_step import one_query_attention
    from audiolm.models.lm.transformer import apply_rope, rope_table

    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 16)  # [..., D]
    rotation = rope_table(10, 16, 10000.0)[[1, 5, 9]][:, None]  # [3, 1, D/2]
    torch.testing.assert_close(apply_rope(x, torch.view_as_real(rotation)), apply_rope(x, rotation))
    q, k, v = torch.randn(2, 3, 1, 16), torch.randn(2, 3, 7, 16), torch.randn(2, 3, 7, 16)
    torch.testing.assert_close(one_query_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
