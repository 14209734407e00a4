"""Compiled one-token steps for CPU decoding: `CachedStep` (`decode(..., compile_step=True)`, the
pipeline's default on CPU), compiled ahead of time once per machine and loaded from disk, and
`CompiledStep` (`compile_step="jit"`), `torch.compile`d in the process.

At batch 1 an eager step is ~700 small ATen calls (norms, RoPE, attention, cache writes,
sampling) around a chain of matrix-vector products, each paying oneDNN call overhead.
`torch.compile` with inductor's C++ backend fuses the small ops into a few loops, and with
`freezing` + `max_autotune` (the CPP GEMM template) it packs every weight once and emits its
own GEMV kernels, which can read fp32 weights faster than oneDNN or MKL. The speed-up over the
eager step and the share of the bandwidth bound: BENCHMARKS.md, "LM decoding".

The step traced is `decode_one_token`'s, forward at one cache slot + sampling, both pure, with
the plain model's decoding forward (`fast_forward.decoding_forward`) in forms inductor fuses:
`F.linear` in the decoding matrices' dtype (inductor freezes and packs the weights itself),
RoPE on real (cos, sin) pairs, and one-query attention as products and sums.
One thing stays dynamic: `kv_len` (how many cache slots attention reads), passed in as the
length of a view `slots[:kv_len]` marked dynamic, so attention reads only the filled part of
the cache (reading all of it costs time at every step) without a recompile per
position. A length of 1 (the first step after a one-token prompt) or of the whole cache (the
last step before the window slides) would each get a specialised graph of their own: those
steps run eagerly instead.

Freezing bakes the weights into the compiled graph, so a step belongs to one model, batch
size, sampling config, mask use and matrix dtype, and is only valid while the model's
parameters are the ones it was compiled from; its guards also hold on to the KV-cache tensors
(`setup_caches` replaces them when the batch size changes). `compiled_step()` keeps one step
per key on the model and rebuilds one that is no longer `fresh`. Each step gets a private copy
of the traced function's code object: Dynamo keeps compiled graphs per code object, so steps of
different models neither share a recompile limit nor keep each other alive, and a step's code
object holds exactly one graph (which is what makes skipping its guards safe, see __call__).
Compiling takes tens of seconds on a CPU (figures in BENCHMARKS.md), which is why the default
path is `CachedStep`: the same step (same decoding forward, sampling and inductor settings)
exported with `torch.export` and compiled by AOTInductor into a package (a shared library and
the frozen weights) kept in the compile cache (`compile_cache.py`, keyed by model, shapes,
sampling, torch version and CPU capability). A later process loads it in a fraction of a
second. It differs from `CompiledStep` in one way: the exported step writes no KV cache (an
exported graph that mutates its inputs in place is not what AOTInductor handles well); it
attends over the cache's filled slots plus the new key/value and returns the new rows, which
`CachedStep` copies into the cache. kv_len is dynamic in [3, S-1] (kv_len 2 would specialise
the one-slot prefix); other lengths run the eager step.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import types
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.export import Dim

from audiolm.core.config import config_from_dict, config_to_dict
from audiolm.inference import compile_cache
from audiolm.inference.fast_forward import Linear, decoding_forward, plain_linear
from audiolm.inference.sampling import SamplingConfig, sample
from audiolm.inference.step import Forward, decode_one_token, plain_model
from audiolm.models.lm.config import TransformerConfig
from audiolm.models.lm.transformer import Transformer

# inductor settings while compiling: weights as constants, packed by inductor. fp32 matrices:
# GEMMs from the C++ template where its autotuning beats ATen's (here it reads fp32 weights
# faster than oneDNN or MKL). bfloat16 matrices: oneDNN's packed GEMM (the template's bf16
# kernel widens to fp32 and is slower than oneDNN). Patched into the global config around the
# compiling call (not `torch.compile(options=...)`: Dynamo reads `freezing` from the global
# config when it traces, to make parameters graph constants). `cpp_wrapper`: the code that
# calls the kernels is C++ too, not Python (less overhead per step; compiling takes longer).
FREEZE = {"freezing": True, "cpp_wrapper": True}
FREEZE_AUTOTUNE = {
    **FREEZE,
    "max_autotune": True,
    "max_autotune_gemm_backends": "CPP,ATEN",
    # inductor writes every autotuning table to stderr by default: a library stays quiet
    "autotune_num_choices_displayed": 0,
    "max_autotune_report_choices_stats": False,
}


@functools.cache
def compile_unavailable() -> str | None:
    """Why inductor's CPU backend cannot build kernels here (a one-line reason), or None."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler  # lazy: inductor loads only when compiling

        get_cpp_compiler()
    except Exception as e:  # noqa: BLE001 - any failure to find a compiler means "unavailable"
        return f"no C++ compiler for torch.compile (inductor needs g++): {e}".splitlines()[0]
    include = sysconfig.get_paths().get("include") or ""
    if not os.path.exists(os.path.join(include, "Python.h")):
        return f"no Python headers ({include}/Python.h) for torch.compile: install python3-dev"
    return None


def one_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v for one query, q [B, H, 1, D], k, v [B, H, L, D] -> [B, H, 1, D],
    written as products and sums, which inductor fuses into its own loops (SDPA's CPU kernel is
    a call whose fixed cost dominates at this size)."""
    scores = (q.float() * k.float()).sum(-1, keepdim=True) * (q.shape[-1] ** -0.5)  # [B, H, L, 1]
    probs = torch.softmax(scores, dim=-2)
    return (probs * v.float()).sum(-2, keepdim=True).type_as(q)


def _attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None
) -> torch.Tensor:
    if q.shape[2] == 1 and attn_mask is None:
        return one_query_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


def _linear_in(dtype: torch.dtype) -> Linear:
    """x @ W.T with the matrix product in `dtype` (e.g. bfloat16 decoding weights), result in x's dtype."""

    def linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        if x.dtype == dtype:
            return F.linear(x, layer.weight)
        return F.linear(x.to(dtype), layer.weight.to(dtype)).to(x.dtype)

    return linear


def _traced_step(model: Transformer, sampling: SamplingConfig, dtype: torch.dtype) -> types.FunctionType:
    """The function compiled: decode_one_token's step with kv_len = the (dynamic) length of
    slots, on a private code object (see the module docstring)."""
    linear = plain_linear if dtype == model.output.weight.dtype else _linear_in(dtype)

    def one_token(token, input_pos, slots, seeds, step, allowed):
        rope = torch.view_as_real(model.rope)  # [S, D/2, 2]: real pairs, see apply_rope
        logits = decoding_forward(
            model, token, input_pos, slots.shape[0], linear=linear, rope=rope, attention=_attention
        )[:, -1]
        return sample(logits, sampling, seeds, step, allowed), logits

    fn = one_token
    code = fn.__code__.replace()  # a new code object, same bytecode
    return types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


class CompiledStep:
    """Drop-in replacement for `decode_one_token` (same call signature; kv_len = the filled
    cache slots, like the eager step), compiled on its first call."""

    check_guards = False  # True: evaluate Dynamo's guards on every call (tests)

    def __init__(
        self,
        model: Transformer,
        batch_size: int,
        sampling: SamplingConfig,
        masked: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        """dtype: the decoding matrices' dtype (default: the weights')."""
        reason = compile_unavailable()
        if reason:
            raise RuntimeError(reason)
        if model.output.weight.device.type != "cpu":
            raise ValueError("CompiledStep is for CPU models (CUDA decoding uses CudaGraphStep)")
        self.model = model
        self.batch_size = batch_size
        self.sampling = sampling
        self.masked = masked
        self.params = [(p, p._version, p.data_ptr()) for p in model.parameters()]
        self.caches = [weakref.ref(t) for t in _cache_tensors(model)]
        self.dtype = dtype or model.output.weight.dtype
        self.options = FREEZE_AUTOTUNE if self.dtype == torch.float32 else FREEZE
        self.slots = torch.arange(model.config.max_seq_len)
        # the caller's token is a column of its output buffer, whose stride changes per call
        self.token = torch.zeros(batch_size, 1, dtype=torch.long)
        self.compiled = torch.compile(_traced_step(model, sampling, self.dtype), fullgraph=True)
        self.calls = 0

    def fresh(self) -> bool:
        """Whether the model's parameters are still the ones frozen into the step, and its
        KV caches the ones the step was built for."""
        caches = _cache_tensors(self.model)
        return (
            all(p._version == v and p.data_ptr() == ptr for p, v, ptr in self.params)
            and len(caches) == len(self.caches)
            and all(ref() is t for ref, t in zip(self.caches, caches))
        )

    def __call__(
        self,
        model: Forward,
        token: torch.Tensor,
        input_pos: torch.Tensor,
        seeds: torch.Tensor,
        step: torch.Tensor,
        sampling: SamplingConfig,
        allowed: torch.Tensor | None = None,
        kv_len: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if plain_model(model) is not self.model or sampling != self.sampling or token.shape[0] != self.batch_size:
            raise ValueError("CompiledStep was built for another model, batch size or sampling config")
        if (allowed is not None) != self.masked:
            raise ValueError("CompiledStep: pass `allowed` on every call iff it was built with masked=True")
        if kv_len is None:
            raise ValueError("CompiledStep needs kv_len (the filled cache slots)")
        if not 2 <= kv_len < len(self.slots):  # would be specialised into another graph: the eager step
            return decode_one_token(model, token, input_pos, seeds, step, sampling, allowed, kv_len=kv_len)
        B = self.batch_size
        if (
            input_pos.shape != (1,)
            or seeds.shape != (B,)
            or step.shape != (1,)
            or token.shape != (B, 1)
            or not input_pos.dtype == seeds.dtype == step.dtype == torch.int64
            or (allowed is not None and allowed.dtype != torch.bool)
        ):
            raise ValueError(
                "CompiledStep: expected int64 token [B, 1], input_pos [1], seeds [B], step [1] and a bool mask"
            )
        if allowed is not None:  # one layout, [B, V] contiguous, so guards never see another
            allowed = allowed.expand(B, -1).contiguous()
        slots = self.slots[:kv_len]
        torch._dynamo.mark_dynamic(slots, 0, min=2, max=len(self.slots) - 1)
        self.token.copy_(token)
        args = (self.token, input_pos, slots, seeds, step, allowed)
        if self.calls == 0:  # the call that compiles
            with torch._inductor.config.patch(self.options), warnings.catch_warnings():
                # torch's own autotuner calls a deprecated storage API: not the user's concern
                warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
                out = self.compiled(*args)
        elif self.check_guards:
            out = self.compiled(*args)
        else:
            # Dynamo's guards re-check ~100 facts per layer on every call, a visible share
            # of a small model's step. They are skipped: this code object has exactly one compiled graph, the
            # model and its caches are pinned (`fresh`, checked per decode), and the inputs'
            # shapes, dtypes and kv_len range are checked above.
            with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
                out = self.compiled(*args)
        self.calls += 1
        return out


def _cache_tensors(model: Transformer) -> list[torch.Tensor]:
    caches = [layer.attention.kv_cache for layer in model.layers]
    return [t for c in caches if c is not None for t in (c.k_cache, c.v_cache)]


# -- the step compiled ahead of time and kept on disk (the default CPU path) -------------------


class _PrefixCache(nn.Module):
    """Stands in for a layer's KVCache while the step is exported: `update` records the new
    key/value [B, H, 1, D] instead of writing them, and returns the cache's filled slots before
    the new one; `_two_part_attention` then adds the new slot. The exported step so writes
    nothing: the caller copies the new rows into the real cache (`CachedStep.__call__`)."""

    def __init__(self, index: int, state: dict) -> None:
        super().__init__()
        self.index = index
        self.state = state  # shared with the exported module's forward: inputs of this trace

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.state["new"].append((k, v))
        n = self.state["kv_len"] - 1  # slots before the one at input_pos (= kv_len - 1)
        return self.state["k"][self.index][:, :, :n], self.state["v"][self.index][:, :, :n]


class _ExportedStep(nn.Module):
    """decode_one_token's step as a module to export: (token [B, 1], input_pos [1], slots [L]
    (kv_len = L), seeds [B], step [1], k caches, v caches [B, H, S, D] each, allowed [B, V]?)
    -> (next token [B], logits [B, V], new keys, new values [n_layers, B, H, 1, D])."""

    def __init__(self, model: Transformer, sampling: SamplingConfig, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.sampling = sampling
        self.linear = plain_linear if dtype == model.output.weight.dtype else _linear_in(dtype)
        self.state: dict = {}

    def _attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """one_query_attention over the cached slots k, v [B, H, L-1, D] and the new one."""
        k_new, v_new = self.state["new"][-1]  # [B, H, 1, D]
        scale = q.shape[-1] ** -0.5
        old = (q.float() * k.float()).sum(-1, keepdim=True) * scale  # [B, H, L-1, 1]
        new = (q.float() * k_new.float()).sum(-1, keepdim=True) * scale  # [B, H, 1, 1]
        probs = torch.softmax(torch.cat([old, new], dim=-2), dim=-2)
        out = (probs[:, :, :-1] * v.float()).sum(-2, keepdim=True) + probs[:, :, -1:] * v_new.float()
        return out.type_as(q)

    def forward(self, token, input_pos, slots, seeds, step, k_caches, v_caches, allowed=None):
        model = self.model
        self.state.clear()
        self.state.update(k=k_caches, v=v_caches, kv_len=slots.shape[0], new=[])
        rope = torch.view_as_real(model.rope)  # [S, D/2, 2]: real pairs, see apply_rope
        logits = decoding_forward(
            model, token, input_pos, slots.shape[0], linear=self.linear, rope=rope, attention=self._attention
        )[:, -1]
        new = self.state["new"]
        k_new = torch.stack([k for k, _ in new])
        v_new = torch.stack([v for _, v in new])
        self.state.clear()
        return sample(logits, self.sampling, seeds, step, allowed), logits, k_new, v_new


def export_step(
    model: Transformer, batch_size: int, sampling: SamplingConfig, masked: bool, dtype: torch.dtype, path: Path
) -> None:
    """Export the step and compile it with AOTInductor into a package at `path`, in a child
    process: the model's config and weights go to a temporary folder, the child rebuilds the
    model and compiles. A package loaded in the process that compiled it (max_autotune on) was
    seen to read wrong inputs, while the same file loads and runs correctly in any other
    process; compiling apart also keeps inductor's compile-time memory out of this process."""
    options = FREEZE_AUTOTUNE if dtype == torch.float32 else FREEZE  # read now: tests patch them
    with tempfile.TemporaryDirectory(prefix="audiolm-compile-") as tmp:
        spec = {
            "config": config_to_dict(model.config),
            "batch_size": batch_size,
            "sampling": [sampling.temperature, sampling.top_k, sampling.top_p],
            "masked": masked,
            "dtype": str(dtype).removeprefix("torch."),
            "options": {k: v for k, v in options.items() if k != "cpp_wrapper"},
            "path": str(path),
        }
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, os.path.join(tmp, "model.safetensors"))
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump(spec, f)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding this audiolm package
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        code = "import sys; from audiolm.inference.compiled_step import _export_from_folder; _export_from_folder(sys.argv[1])"
        done = subprocess.run([sys.executable, "-c", code, tmp], env=env, capture_output=True, text=True)
        if done.returncode != 0 or not path.is_file():
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()] or ["(no output)"]
            raise RuntimeError(f"compiling in a child process failed: {lines[-1]}")


def _export_from_folder(folder: str) -> None:
    """The child's side of `export_step`: rebuild the model from folder/ and compile."""
    with open(os.path.join(folder, "spec.json")) as f:
        spec = json.load(f)
    model = Transformer(config_from_dict(TransformerConfig, spec["config"]))
    model.load_state_dict(load_file(os.path.join(folder, "model.safetensors")))
    model.setup_caches(spec["batch_size"])
    temperature, top_k, top_p = spec["sampling"]
    sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    dtype = getattr(torch, spec["dtype"])
    _export_in_process(model, spec["batch_size"], sampling, spec["masked"], dtype, Path(spec["path"]), spec["options"])


def _export_in_process(
    model: Transformer,
    batch_size: int,
    sampling: SamplingConfig,
    masked: bool,
    dtype: torch.dtype,
    path: Path,
    options: dict,
) -> None:
    S = model.config.max_seq_len
    H, D = model.config.n_heads, model.config.head_dim
    module = _ExportedStep(model, sampling, dtype)
    caches = [layer.attention.kv_cache for layer in model.layers]
    cache_dtype = caches[0].k_cache.dtype if caches[0] is not None else model.output.weight.dtype
    zeros = [torch.zeros(batch_size, H, S, D, dtype=cache_dtype) for _ in model.layers]
    args: tuple = (
        torch.zeros(batch_size, 1, dtype=torch.long),
        torch.tensor([3]),
        torch.arange(4),
        torch.zeros(batch_size, dtype=torch.long),
        torch.zeros(1, dtype=torch.long),
        zeros,
        [z.clone() for z in zeros],
    )
    dynamic: tuple = (
        None,
        None,
        {0: Dim("kv_len", min=3, max=S - 1)},
        None,
        None,
        [None] * len(zeros),
        [None] * len(zeros),
    )
    if masked:
        args += (torch.ones(batch_size, model.config.vocab_size, dtype=torch.bool),)
        dynamic += (None,)
    was_training = model.training
    model.eval()
    try:
        for i, layer in enumerate(model.layers):  # no cache buffers in the package: they are inputs
            layer.attention.kv_cache = _PrefixCache(i, module.state)  # type: ignore[assignment]
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            program = torch.export.export(module, args, dynamic_shapes=dynamic, strict=False)
            torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs=options)
    finally:
        for layer, cache in zip(model.layers, caches):
            layer.attention.kv_cache = cache
        model.train(was_training)


COMPILE_ENV = "AUDIOLM_COMPILE"


def compile_by_default() -> bool:
    """Whether CPU decoding in the pipeline uses the cached compiled step unless told
    otherwise: yes, unless AUDIOLM_COMPILE=0 (read on every call)."""
    return os.environ.get(COMPILE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def compile_estimate(model: Transformer) -> int:
    """Seconds a compile takes here, roughly (BENCHMARKS.md, "Compiled CPU step by default, cached per machine")."""
    return int(30 + 4 * model.config.n_layers)


# notify(line): where the one-line first-compile message goes (the CLI's stderr by default)
def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


notify: Callable[[str], None] = _stderr


class CachedStep:
    """Drop-in replacement for `decode_one_token` (same call signature), loaded from the
    compile cache (`compile_cache.py`) and compiled into it first where no entry fits: the
    step of `CompiledStep`, exported and compiled ahead of time with AOTInductor, so a new
    process loads it in well under a second instead of compiling for tens of seconds.

    Unlike `CompiledStep` it writes no cache itself: it returns the new keys and values and
    this wrapper copies them into the model's KV cache, so the package holds no cache tensors
    and works with whatever caches the model has."""

    def __init__(
        self,
        model: Transformer,
        batch_size: int,
        sampling: SamplingConfig,
        masked: bool = False,
        dtype: torch.dtype | None = None,
        root: Path | None = None,
    ) -> None:
        reason = compile_unavailable()
        if reason:
            raise RuntimeError(reason)
        if model.output.weight.device.type != "cpu":
            raise ValueError("CachedStep is for CPU models (CUDA decoding uses CudaGraphStep)")
        self.model = model
        self.batch_size = batch_size
        self.sampling = sampling
        self.masked = masked
        self.dtype = dtype or model.output.weight.dtype
        self.params = [(p, p._version, p.data_ptr()) for p in model.parameters()]
        self.slots = torch.arange(model.config.max_seq_len)
        self.token = torch.zeros(batch_size, 1, dtype=torch.long)
        self.key = compile_cache.current_key(
            compile_cache.model_hash(model, model.config),
            batch_size,
            model.config.max_seq_len,
            masked,
            self.dtype,
            f"temperature={sampling.temperature},top_k={sampling.top_k},top_p={sampling.top_p}",
        )
        path = compile_cache.lookup(self.key, root)
        self.built = path is None  # compiled by this process (False: loaded from the cache)
        if path is None:
            where = root or compile_cache.cache_root()
            notify(
                f"compiling the decoding step for this machine, once: ~{compile_estimate(model)} s "
                f"({model.num_parameters() / 1e6:.1f}M-parameter stage, batch {batch_size}; kept in {where}; "
                "--no-compile or compile_step=False skips it)"
            )
            path = compile_cache.store(
                self.key, lambda tmp: export_step(model, batch_size, sampling, masked, self.dtype, tmp), root
            )
        self.path = path
        self.runner = torch._inductor.aoti_load_package(str(path))

    def fresh(self) -> bool:
        """Whether the model's parameters are still the ones frozen into the package."""
        return all(p._version == v and p.data_ptr() == ptr for p, v, ptr in self.params)

    def __call__(
        self,
        model: Forward,
        token: torch.Tensor,
        input_pos: torch.Tensor,
        seeds: torch.Tensor,
        step: torch.Tensor,
        sampling: SamplingConfig,
        allowed: torch.Tensor | None = None,
        kv_len: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if plain_model(model) is not self.model or sampling != self.sampling or token.shape[0] != self.batch_size:
            raise ValueError("CachedStep was built for another model, batch size or sampling config")
        if (allowed is not None) != self.masked:
            raise ValueError("CachedStep: pass `allowed` on every call iff it was built with masked=True")
        if kv_len is None:
            raise ValueError("CachedStep needs kv_len (the filled cache slots)")
        caches = [c for layer in self.model.layers if (c := layer.attention.kv_cache) is not None]
        if (
            not 3 <= kv_len < len(self.slots)
            or len(caches) != len(self.model.layers)
            or caches[0].k_cache.shape[0] != self.batch_size
        ):
            return decode_one_token(model, token, input_pos, seeds, step, sampling, allowed, kv_len=kv_len)
        self.token.copy_(token)
        args: tuple = (
            self.token,
            input_pos,
            self.slots[:kv_len],
            seeds,
            step,
            [c.k_cache for c in caches],
            [c.v_cache for c in caches],
        )
        if allowed is not None:
            args += (allowed.expand(self.batch_size, -1).contiguous(),)
        next_token, logits, k_new, v_new = self.runner(*args)
        for i, cache in enumerate(caches):  # the new slot, written here (see the class docstring)
            cache.k_cache.index_copy_(2, input_pos, k_new[i])
            cache.v_cache.index_copy_(2, input_pos, v_new[i])
        return next_token, logits


_CACHED: OrderedDict[tuple, CachedStep] = OrderedDict()
_FAILED: set[tuple] = set()
_WARNED: set[str] = set()


def cached_step(
    model: Transformer,
    batch_size: int,
    sampling: SamplingConfig,
    masked: bool,
    dtype: torch.dtype | None = None,
    root: Path | None = None,
) -> CachedStep | None:
    """The model's step from the compile cache (compiled into it on first use on this
    machine), kept per key for this process; None, after one warning, where compiling fails
    (no C++ compiler, an unsupported model): the caller decodes with the eager step."""
    dtype = dtype or model.output.weight.dtype
    key = (id(model), batch_size, sampling.temperature, sampling.top_k, sampling.top_p, masked, dtype, root)
    if key in _FAILED:
        return None
    current = _CACHED.pop(key, None)
    if current is None or current.model is not model or not current.fresh():
        try:
            current = CachedStep(model, batch_size, sampling, masked, dtype, root)
        except Exception as e:  # noqa: BLE001 - any failure to build means: decode eagerly
            _FAILED.add(key)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if reason not in _WARNED:  # once per reason: every stage would fail alike
                _WARNED.add(reason)
                warnings.warn(
                    f"compiling the decoding step failed, decoding with the eager step: {reason}", stacklevel=3
                )
            return None
    _CACHED[key] = current
    while len(_CACHED) > LIMIT:
        _CACHED.popitem(last=False)
    return current


# The compiled steps in use, most recent last: a bounded cache, so a step (which holds its model
# and frozen copies of its weights) is let go once LIMIT newer ones were built.
_STEPS: OrderedDict[tuple, CompiledStep] = OrderedDict()
LIMIT = 8


def compiled_step(
    model: Transformer, batch_size: int, sampling: SamplingConfig, masked: bool, dtype: torch.dtype | None = None
) -> CompiledStep:
    """The model's compiled step for this key, built (or rebuilt, when its weights or caches
    changed) on demand. dtype: the decoding matrices' dtype (default: the weights')."""
    dtype = dtype or model.output.weight.dtype
    key = (id(model), batch_size, sampling.temperature, sampling.top_k, sampling.top_p, masked, dtype)
    current = _STEPS.pop(key, None)
    if current is None or current.model is not model or not current.fresh():
        current = CompiledStep(model, batch_size, sampling, masked, dtype)
    _STEPS[key] = current
    while len(_STEPS) > LIMIT:
        _STEPS.popitem(last=False)
    return current


def compiled_steps(model: Transformer) -> list[CompiledStep]:
    """The cached compiled steps of this model."""
    return [step for step in _STEPS.values() if step.model is model]
