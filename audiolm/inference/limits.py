"""What a continuation request may ask for, checked before any model loads.

- `check_request(seconds, num_samples, seed)`: finite, in range; seeds are integers in
  [0, 2^32 - num_samples] (the sampler's seed state is 32 bits; inside that range every seed
  gives its own stream, outside it two seeds would alias, so they are refused);
- `check_sampling(name, value, stage)`: temperature finite >= 0, top_k integer >= 0, top_p in
  (0, 1]; a per-stage dict may only name the three stages;
- `MemoryPlan`: how many samples fit in one batch under a memory budget, from the stage
  configs alone (config.json headers: no weights are read), so `continue --num-samples N`
  runs in batches of bounded size and a request that cannot fit even one sample is refused
  in one line; `plan_batches` is that plan for a loaded pipeline's stages, or a given batch size.

The estimate per sample (bytes, fp32): every stage's KV cache (layers x 2 x dim x S, they
stay allocated between stages), the largest prefill (attention H x S^2 + logits S x V +
MLP S x hidden x 3 + residual stream), and the audio and codes of prompt + continuation
(decoded, concatenated, written). `SAFETY` covers allocator slack and temporaries.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from audiolm.core.audio import as_float_audio, check_channels_first, check_sample_rate
from audiolm.core.checkpoint import read_checkpoint_header, resolve_checkpoint_dir
from audiolm.core.config import config_from_dict
from audiolm.core.errors import AudioError, AudiolmError
from audiolm.models.lm.config import STAGES, StageConfig

MAX_SEED = 2**32 - 1
MAX_SECONDS = 3600.0  # one continuation; longer requests are refused, not attempted
MAX_NUM_SAMPLES = 100_000
DEFAULT_BUDGET_BYTES = 2 * 1024**3  # per batch, on top of the loaded models
SAFETY = 2.0


class PipelineError(AudiolmError):
    """Pipeline components that do not fit together, or a bad prompt (defined here so the
    checks below can raise it; `audiolm.inference.pipeline.PipelineError` is the same class)."""


class RequestError(PipelineError):
    """A continuation request out of range, or too large for the memory budget."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_seconds(seconds) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise RequestError(f"seconds must be a positive finite number, got {seconds!r}")
    if seconds > MAX_SECONDS:
        raise RequestError(f"seconds {seconds:g} is more than the {MAX_SECONDS:g} s one continuation may ask for")
    return float(seconds)


def check_request(seconds, num_samples, seed) -> None:
    check_seconds(seconds)
    if not _is_int(num_samples) or not 1 <= num_samples <= MAX_NUM_SAMPLES:
        raise RequestError(f"num_samples must be an integer in [1, {MAX_NUM_SAMPLES}], got {num_samples!r}")
    check_seed(seed, num_samples)


def check_seed(seed, num_samples: int = 1) -> None:
    """Seeds are integers in [0, 2^32 - num_samples]: sample i uses seed + i."""
    if seed is None:
        return
    if not _is_int(seed):
        raise RequestError(f"seed must be an integer, got {seed!r}")
    top = MAX_SEED - (num_samples - 1)
    if not 0 <= seed <= top:
        raise RequestError(f"seed must be in [0, {top}] (sample i uses seed + i; seeds are 32-bit), got {seed}")


_SAMPLING_NAMES = ("temperature", "top_k", "top_p")


def check_sampling(name: str, value, label: str | None = None) -> None:
    """One sampling setting (`name` in temperature, top_k, top_p; `label` names it in messages,
    e.g. the CLI flag): a number, or a {stage: number} dict naming only known stages."""
    if name not in _SAMPLING_NAMES:
        raise ValueError(f"unknown sampling setting {name!r}")
    label = label or name
    if value is None:
        return
    if isinstance(value, dict):
        unknown = sorted(str(k) for k in set(value) - set(STAGES))
        if unknown:
            raise RequestError(f"{label}: unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
        for stage, v in value.items():
            _check_one(name, v, f"{label}[{stage}]")
        return
    _check_one(name, value, label)


def _check_one(name: str, value, label: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{label}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise RequestError(f"{label}: must be finite, got {value}")
    if name == "temperature" and value < 0:
        raise RequestError(f"{label}: must be >= 0 (0 = greedy), got {value:g}")
    if name == "top_k" and (value < 0 or not float(value).is_integer()):
        raise RequestError(f"{label}: must be a whole number >= 0 (0 = off), got {value:g}")
    if name == "top_p" and not 0 < value <= 1:
        raise RequestError(f"{label}: must be in (0, 1] (1 = off), got {value:g}")


def check_prompt_audio(wav, sample_rate) -> torch.Tensor:
    """Prompt audio for the Python API -> float32 [C, N] (dtype and layout rules of
    core/audio.as_float_audio and check_channels_first), or RequestError with the reason."""
    try:
        check_sample_rate(sample_rate, "prompt")
        wav = as_float_audio(wav, "prompt")
        if wav.dim() == 1:
            wav = wav[None]
        if wav.dim() != 2:
            raise RequestError(f"prompt audio must be [samples] or [channels, samples], got shape {list(wav.shape)}")
        check_channels_first(wav, "prompt")
    except AudioError as e:
        raise RequestError(str(e)) from None
    return wav


def check_prompt_tokens(audio, semantic, codes) -> None:
    """A saved / given prompt: one prompt (batch 1), integer token ids >= 0, float audio."""
    for name, tensor, dims in (("audio", audio, 2), ("semantic", semantic, 2), ("codes", codes, 3)):
        if not isinstance(tensor, torch.Tensor):
            raise RequestError(f"prompt {name}: expected a tensor, got {type(tensor).__name__}")
        if tensor.dim() != dims or tensor.shape[0] != 1 or tensor.numel() == 0:
            raise RequestError(
                f"prompt {name}: expected shape [1, ...] with {dims} dimensions, got {list(tensor.shape)}"
            )
    if audio.is_floating_point() is False or not torch.isfinite(audio).all():
        raise RequestError("prompt audio: expected finite float samples")
    for name, tensor in (("semantic", semantic), ("codes", codes)):
        if tensor.is_floating_point() or tensor.dtype == torch.bool or tensor.is_complex():
            raise RequestError(f"prompt {name}: token ids must be integers, got {tensor.dtype}")
        if int(tensor.min()) < 0:
            raise RequestError(f"prompt {name}: token ids must be >= 0, found {int(tensor.min())}")


# -- memory --------------------------------------------------------------------------------------


@dataclass
class MemoryPlan:
    per_sample_bytes: int
    budget_bytes: int
    batch_size: int
    num_samples: int

    @property
    def batches(self) -> int:
        return -(-self.num_samples // self.batch_size)


def stage_configs_for_recipe(recipe_dirs: dict[str, Path]) -> dict[str, StageConfig]:
    """Stage configs from their config.json (no weights read): {stage: StageConfig}."""
    configs = {}
    for stage, path in recipe_dirs.items():
        directory = resolve_checkpoint_dir(path)
        header = read_checkpoint_header(directory)
        configs[stage] = config_from_dict(StageConfig, header["config"], where=str(directory / "config.json"))
    return configs


def bytes_per_sample(
    stages: dict[str, StageConfig],
    seconds: float,
    prompt_seconds: float,
    sample_rate: int = 24_000,
    frame_rate: float = 75.0,
) -> int:
    kv = 0
    prefill = 0
    for config in stages.values():
        m = config.model
        S = m.max_seq_len
        kv += m.n_layers * 2 * m.dim * S * 4
        prefill = max(
            prefill, (m.n_heads * S * S + S * max(m.vocab_size, 1) + S * m.mlp_hidden_dim * 3 + S * m.dim * 4) * 4
        )
    total_seconds = seconds + prompt_seconds
    audio = total_seconds * sample_rate * 4 * 4  # decoded, continuation, concatenated, written
    codes = total_seconds * frame_rate * 32 * 8 * 3
    return int(SAFETY * (kv + prefill + audio + codes))


def default_budget() -> int:
    """DEFAULT_BUDGET_BYTES, or a quarter of the memory available now if that is less."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    return DEFAULT_BUDGET_BYTES if not available else max(64 * 1024**2, min(DEFAULT_BUDGET_BYTES, available // 4))


def plan_memory(
    per_sample: int, num_samples: int, budget: int | None = None, max_batch: int | None = None
) -> MemoryPlan:
    """Batch size that keeps a batch under `budget`, or RequestError if one sample does not fit."""
    budget = default_budget() if budget is None else budget
    if per_sample > budget:
        raise RequestError(
            f"one continuation needs about {_size(per_sample)} of memory, more than the {_size(budget)} "
            "budget; ask for fewer seconds"
        )
    batch = max(1, min(num_samples, budget // max(per_sample, 1), max_batch or num_samples))
    return MemoryPlan(per_sample, budget, batch, num_samples)


def plan_batches(
    stages: dict[str, StageConfig],
    seconds: float,
    prompt_seconds: float,
    num_samples: int,
    batch_size: int | None = None,
    budget: int | None = None,
) -> MemoryPlan:
    """How `num_samples` continuations of one prompt run: in batches of at most `batch_size`
    samples when it is given (and `budget` is not), else of as many as fit in `budget` bytes
    (default_budget()), at most `batch_size`. RequestError if one sample does not fit."""
    if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
        raise RequestError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < math.inf
    ):
        raise RequestError(f"the memory budget must be a positive number of bytes, got {budget!r}")
    per_sample = bytes_per_sample(stages, seconds, prompt_seconds)
    if batch_size is not None and budget is None:
        batch = min(batch_size, num_samples)
        return MemoryPlan(per_sample, per_sample * batch, batch, num_samples)
    return plan_memory(per_sample, num_samples, None if budget is None else int(budget), max_batch=batch_size)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"
