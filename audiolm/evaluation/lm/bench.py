"""`audiolm bench decode`: our decoder vs Hugging Face `generate()` with a KV cache, same run.

For each size (a stage-shaped transformer of ~10M / ~50M parameters with a coarse-stage
vocabulary) and batch size, both implementations continue a 16-token prompt by N tokens with
the same sampling (temperature 1, top-k 50); the HF peer is `LlamaForCausalLM` built from a
config of the same width, depth, heads, MLP width and vocabulary (the same architecture:
pre-norm RMSNorm, RoPE, SwiGLU, untied head), random weights, no download.

The bound: a one-token step must read every weight it uses once, so at best it takes
`weight bytes / read bandwidth` seconds; for a batch of B, B tokens come out of each step.
Weight bytes count every parameter except the embedding table (a step reads only B of its
rows), at the dtype the step reads them in. The read bandwidth is measured in the same run,
with the same number of threads as the decoding, by reducing a 1 GiB fp32 buffer (far larger
than a CPU's last-level cache) — a read-only stream, like a step's weights, not a copy (which
would count writes a step does not make); the best of two reductions (sum, amax) and of
several runs, before and after the timings.

Timings are the best of `repeats` rounds, ours and the peer alternating within each round.
`clock="cpu"` (one thread only) times with the process's CPU time instead of the wall clock:
on a shared machine a process is descheduled for whole time slices, which makes a long
operation (the 1 GiB read, a 128-token generation) look several times slower than it ran,
while the slowdown it really suffers from other jobs (shared caches and memory) still counts.
Small models can partly sit in the CPU's last-level cache and then run above this "bound".
`decode_weights="bfloat16"` packs our model's matrices in bfloat16 (lossy; the peer keeps
`dtype`); our bound then counts 2 bytes per matrix weight. `compile=True` (CPU) adds our
decoder with its compiled step (`compiled_step.CachedStep`, the step `continue` uses: compiled
once per machine and kept on disk), impl "audiolm-compiled", on the same model in the same
rounds; a compile (first run on a machine) or load happens in the untimed warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from audiolm.core.timing import synchronize
from audiolm.inference.decode import generate
from audiolm.inference.packed_step import packed_copies
from audiolm.inference.sampling import SamplingConfig
from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer

# coarse stage vocabulary: K=1024 semantic + PAD + SEP + 2 levels x 1024 codes
BENCH_VOCAB = 1024 + 2 + 2 * 1024
SIZES = {
    "10M": TransformerConfig(vocab_size=BENCH_VOCAB, dim=384, n_layers=6, n_heads=6, hidden_dim=1024, max_seq_len=512),
    "50M": TransformerConfig(
        vocab_size=BENCH_VOCAB, dim=640, n_layers=10, n_heads=10, hidden_dim=1664, max_seq_len=512
    ),
}
PROMPT_TOKENS = 16
SAMPLING = SamplingConfig(temperature=1.0, top_k=50)


@dataclass
class BenchResult:
    impl: str
    params: int
    batch: int
    device: str
    tokens_per_s: float
    bound_tokens_per_s: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _clock(device: torch.device, clock: str):
    if clock == "cpu":
        if device.type != "cpu" or torch.get_num_threads() != 1:
            raise ValueError("clock='cpu' needs device cpu and one torch thread")
        return time.process_time
    return time.perf_counter


def measure_bandwidth(device: torch.device, gibibytes: float = 1.0, repeats: int = 5, clock: str = "wall") -> float:
    """Read bandwidth in GB/s: bytes of a `gibibytes` fp32 buffer over the time to reduce it
    (best of sum and amax over `repeats` runs), with torch's current thread count."""
    n = int(gibibytes * 2**30) // 4
    buffer = torch.ones(n, dtype=torch.float32, device=device)  # written once: pages are touched
    now = _clock(device, clock)
    best = float("inf")
    for _ in range(repeats):
        for reduce in (torch.sum, torch.amax):
            synchronize(device)
            t = now()
            reduce(buffer)
            synchronize(device)
            best = min(best, now() - t)
    del buffer
    return n * 4 / best / 1e9


def streamed_weight_bytes(model: torch.nn.Module, embedding: torch.nn.Embedding, batch: int) -> int:
    """Bytes a one-token step reads: all weights but the embedding table, plus B of its rows;
    matrices that decode through packed copies (`inference/packed_step.py`) count at the
    packed dtype."""
    sizes: dict[torch.Tensor, int] = {p: p.numel() * p.element_size() for p in model.parameters()}
    if isinstance(model, Transformer):
        for layer, packed in packed_copies(model).items():
            sizes[layer.weight] = layer.weight.numel() * packed.dtype.itemsize
    table = embedding.weight
    return sum(sizes.values()) - table.numel() * table.element_size() + batch * table.shape[1] * table.element_size()


def hf_peer(config: TransformerConfig, device: torch.device):
    from transformers import LlamaConfig, LlamaForCausalLM  # lazy: transformers takes seconds to import

    hf_config = LlamaConfig(  # type: ignore[call-arg]  # rope_theta, attn_implementation: **kwargs
        vocab_size=config.vocab_size,
        hidden_size=config.dim,
        intermediate_size=config.mlp_hidden_dim,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        max_position_embeddings=config.max_seq_len,
        rms_norm_eps=config.norm_eps,
        rope_theta=config.rope_base,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(hf_config).to(device).eval()  # type: ignore[arg-type]  # transformers' .to stub


def _time_interleaved(fns: list, repeats: int, device: torch.device, clock: str = "wall") -> list[float]:
    """Best time of each function over `repeats` rounds; within a round the functions run
    one after the other, so a load spike on a shared machine hits them alike."""
    now = _clock(device, clock)
    for fn in fns:
        fn()  # warm-up (allocations, packing, graph capture, kernels)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            synchronize(device)
            t = now()
            fn()
            synchronize(device)
            best[i] = min(best[i], now() - t)
    return best


def bench_decode(
    sizes: list[str],
    batches: list[int],
    device: torch.device,
    *,
    new_tokens: int = 128,
    repeats: int = 3,
    with_hf: bool = True,
    progress: bool = True,
    dtype: torch.dtype = torch.float32,
    clock: str = "wall",
    decode_weights: str | None = None,
    compile: bool = False,
) -> tuple[float, list[BenchResult]]:
    """Returns (bandwidth GB/s, results) for every size x batch x implementation."""
    bandwidth = first_bandwidth = measure_bandwidth(device, clock=clock)
    results: list[BenchResult] = []
    jobs = [(s, b) for s in sizes for b in batches]
    bar = None
    if progress:
        bar = tqdm(total=len(jobs), desc="bench decode", unit="case", dynamic_ncols=True)
    for size, batch in jobs:
        config = SIZES[size]
        torch.manual_seed(0)
        prompt = torch.randint(0, config.vocab_size, (batch, PROMPT_TOKENS), device=device)
        ours = Transformer(config).to(device=device, dtype=dtype).eval()
        # decode_weights None: packed in the model's dtype (CPU)
        ours_kwargs = dict(sampling=SAMPLING, seeds=list(range(batch)), decode_weights=decode_weights)
        cases = [("audiolm", ours, ours.tok_embeddings)]

        def run_ours(compile_step: bool = False, ours=ours, prompt=prompt, kw=ours_kwargs) -> None:
            generate(ours, prompt, new_tokens, compile_step=compile_step, **kw)

        fns: list[Callable[[], object]] = [run_ours]
        if compile:
            cases.append(("audiolm-compiled", ours, ours.tok_embeddings))
            fns.append(lambda: run_ours(compile_step=True))
        if with_hf:
            peer = hf_peer(config, device).to(dtype)
            cases.append(("hf", peer, peer.model.embed_tokens))

            def run_hf(peer=peer, prompt=prompt):
                with torch.inference_mode():
                    peer.generate(
                        prompt,
                        attention_mask=torch.ones_like(prompt),
                        max_new_tokens=new_tokens,
                        min_new_tokens=new_tokens,
                        do_sample=True,
                        temperature=1.0,
                        top_k=50,
                        top_p=1.0,
                        use_cache=True,
                        pad_token_id=0,
                    )

            fns.append(run_hf)
        seconds = _time_interleaved(fns, repeats, device, clock)
        for (impl, model, embedding), secs in zip(cases, seconds):
            params = sum(p.numel() for p in model.parameters())
            bound = batch * bandwidth * 1e9 / streamed_weight_bytes(model, embedding, batch)
            results.append(BenchResult(impl, params, batch, device.type, batch * new_tokens / secs, bound))
        del ours, cases, fns
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    # the best of two measurements, before and after: like the timings, a best case
    bandwidth = max(bandwidth, measure_bandwidth(device, clock=clock))
    for r in results:
        r.bound_tokens_per_s *= bandwidth / first_bandwidth
    return bandwidth, results
