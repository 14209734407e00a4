"""A CUDA-graph-captured one-token step (used only on CUDA).

At batch 1 a small transformer's step is a few hundred tiny kernels; launching them from
Python costs more than running them. Capturing `decode_one_token` (forward + sampling) once
into a `torch.cuda.CUDAGraph` and replaying it launches the whole step at once. This works
because the step is pure and static: the KV cache is preallocated, attention runs over the
whole cache with a causal mask (no data-dependent shapes), and sampling uses a counter-based
hash instead of generator state. Inputs are copied into static buffers before each replay;
outputs live in the graph's own buffers and are valid until the next replay.
"""

from __future__ import annotations

import torch

from audiolm.inference.sampling import SamplingConfig
from audiolm.inference.step import decode_one_token
from audiolm.models.lm.transformer import Transformer


class CudaGraphStep:
    """Drop-in replacement for `decode_one_token` (same call signature), captured lazily."""

    def __init__(self, model: Transformer, batch_size: int, sampling: SamplingConfig, masked: bool = False) -> None:
        device = model.output.weight.device
        if device.type != "cuda":
            raise ValueError("CudaGraphStep needs a model on a CUDA device")
        self.model = model
        self.sampling = sampling
        self.masked = masked
        self.token = torch.zeros(batch_size, 1, dtype=torch.long, device=device)
        self.input_pos = torch.zeros(1, dtype=torch.long, device=device)
        self.seeds = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.step = torch.zeros(1, dtype=torch.long, device=device)
        self.allowed: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def _run(self) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_one_token(
            self.model, self.token, self.input_pos, self.seeds, self.step, self.sampling, self.allowed, kv_len=None
        )

    def _capture(self) -> None:
        # warm up on a side stream (cuBLAS / SDPA workspaces), then capture. The warm-up runs
        # see the real inputs, so the cache slot they write holds the right values anyway.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._run()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self._run()

    def __call__(
        self,
        model: Transformer,
        token: torch.Tensor,
        input_pos: torch.Tensor,
        seeds: torch.Tensor,
        step: torch.Tensor,
        sampling: SamplingConfig,
        allowed: torch.Tensor | None = None,
        kv_len: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if model is not self.model or sampling != self.sampling:
            raise ValueError("CudaGraphStep was captured for another model or sampling config")
        if (allowed is not None) != self.masked:
            raise ValueError("CudaGraphStep: pass `allowed` on every call iff it was built with masked=True")
        self.token.copy_(token)
        self.input_pos.copy_(input_pos)
        self.seeds.copy_(seeds)
        self.step.copy_(step)
        if allowed is not None:
            if self.allowed is None:
                self.allowed = torch.empty_like(allowed)
            self.allowed.copy_(allowed)
        if self.graph is None:
            self._capture()  # capturing records the kernels without running them
        assert self.graph is not None
        self.graph.replay()
        assert self.outputs is not None
        return self.outputs
