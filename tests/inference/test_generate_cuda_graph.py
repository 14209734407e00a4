"""The CUDA-graph-captured step equals the eager step (needs a GPU; skipped without one)."""

import pytest
import torch

from audiolm.inference.decode import decode
from audiolm.inference.sampling import SamplingConfig
from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer


def test_cuda_graph_step_needs_cuda():
    from audiolm.inference.cuda_graph import CudaGraphStep

    model = Transformer(TransformerConfig(vocab_size=10, dim=16, n_layers=1, n_heads=2, max_seq_len=8))
    with pytest.raises(ValueError, match="CUDA"):
        CudaGraphStep(model, 1, SamplingConfig())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("masked", [False, True])
def test_graph_captured_decoding_equals_eager(masked):
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=64, dim=64, n_layers=2, n_heads=4, max_seq_len=32)).cuda()
    prompt = torch.randint(0, 64, (3, 5), device="cuda")
    masks = torch.rand(2, 64, device="cuda") > 0.3
    kwargs = dict(
        sampling=SamplingConfig(temperature=0.9, top_k=20, top_p=0.95),
        seeds=[1, 2, 3],
        window_keep=12,
        return_logits=True,
        logits_mask=(lambda pos: masks[pos % 2]) if masked else None,
    )
    # 40 new tokens with a 32-token context: the window slides (eager re-prefill) in between
    eager = decode(model, prompt, 40, cuda_graph=False, **kwargs)
    graph = decode(model, prompt, 40, cuda_graph=True, **kwargs)
    torch.testing.assert_close(graph.logits, eager.logits, atol=1e-4, rtol=0)
    assert torch.equal(graph.tokens, eager.tokens)
