"""AudioLM: codec + semantic tokenizer + three LM stages, composed from a pipeline recipe.

    lm = AudioLM.from_pretrained()            # the embedded default (pipelines/default.json)
    audio = lm.continue_audio(wav, sample_rate, seconds=4.0, seed=0)   # [num_samples, 1, N]

Data flow of one continuation (B = num_samples, seeds seed, seed+1, ...):

    prompt wav ─► 16 kHz ─► SemanticTokenizer ─► s_prompt [1, Ts]
               └► 24 kHz ─► Codec.encode       ─► a_prompt [1, Q, Tp]   (75 Hz)
    semantic stage: s_prompt                  ─► s [B, Ts + n_s]
    coarse stage:   s, a_prompt[:, :Qc]       ─► coarse [B, Qc, Tp + n_a]
    fine stage:     coarse                    ─► codes [B, Q, Tp + n_a]
    Codec.decode(codes)[..., Tp * hop:]       ─► continuation; returned after the prompt audio

A recipe (pipelines/*.json, see `PipelineRecipe`) names the component checkpoints and the
sampling defaults per stage. Components that do not fit together (codebook size, number of
levels, frame rates, semantic vocabulary) fail at load with a message naming the mismatch.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audiolm.core.audio import resample
from audiolm.core.checkpoint import load_tensors, save_tensors
from audiolm.core.config import config_from_dict
from audiolm.core.errors import CheckpointError, ConfigError
from audiolm.core.paths import PIPELINES_DIR
from audiolm.core.timing import synced_clock
from audiolm.inference.limits import PipelineError, check_prompt_audio, check_prompt_tokens, check_request, check_sampling
from audiolm.inference.sampling import SamplingConfig
from audiolm.inference.stages import generate_coarse, generate_fine, generate_semantic
from audiolm.models.codec.codec import Codec
from audiolm.models.lm.config import STAGES
from audiolm.models.lm.stage import load_stage
from audiolm.models.semantic.tokenizer import SemanticTokenizer

DEFAULT_PIPELINE = "default"
STAGE_NAMES = STAGES

# progress(stage, done, total): stage in "semantic" | "coarse" | "fine" | "codec"
Progress = Callable[[str, int, int], None]


class _Stopwatch:
    """Wall time between laps, synchronising CUDA so each lap holds its own work."""

    def __init__(self, device: torch.device, into: dict[str, float]) -> None:
        self._now = synced_clock(device)
        self.into = into
        self.last = self._now()

    def lap(self, name: str) -> None:
        now = self._now()
        self.into[name] = self.into.get(name, 0.0) + now - self.last
        self.last = now


@dataclass
class StageSampling:
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    top_p: float = 1.0  # 1.0: no nucleus filter

    def __post_init__(self) -> None:
        for name in ("temperature", "top_k", "top_p"):
            check_sampling(name, getattr(self, name))  # RequestError -> ConfigError naming the recipe


@dataclass
class PipelineRecipe:
    """pipelines/NAME.json. Paths are relative to the recipe file."""

    name: str
    codec: str
    semantic_tokenizer: str
    semantic_stage: str
    coarse_stage: str
    fine_stage: str
    kbps: float = 6.0  # acoustic levels used = the fine stage's n_q; kbps is informational
    sampling: dict[str, StageSampling] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.sampling) - set(STAGE_NAMES)
        if unknown:
            raise ValueError(f"sampling has unknown stage(s) {sorted(unknown)}; stages are {list(STAGE_NAMES)}")
        self.sampling = {
            k: v if isinstance(v, StageSampling) else config_from_dict(StageSampling, v, where=f"sampling.{k}")
            for k, v in self.sampling.items()
        }


def available_pipelines() -> list[str]:
    return sorted(p.stem for p in PIPELINES_DIR.glob("*.json"))


def find_recipe(name_or_dir: str | os.PathLike | None) -> Path:
    """A pipeline name (pipelines/NAME.json), a recipe JSON file, or a directory holding
    pipeline.json."""
    if name_or_dir is None:
        name_or_dir = DEFAULT_PIPELINE
    text = str(name_or_dir)
    path = Path(text)
    if path.is_dir():
        if (path / "pipeline.json").is_file():
            return path / "pipeline.json"
        raise PipelineError(f"{path}: directory holds no pipeline.json")
    if path.is_file():
        return path
    if "/" not in text and not text.endswith(".json"):
        candidate = PIPELINES_DIR / f"{text}.json"
        if candidate.is_file():
            return candidate
        raise PipelineError(f"unknown pipeline '{text}'; available: {', '.join(available_pipelines()) or 'none'}")
    raise PipelineError(f"{text}: pipeline recipe not found")


def load_recipe(path: Path) -> PipelineRecipe:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    return config_from_dict(PipelineRecipe, data, where=str(path))


@dataclass
class PromptTokens:
    """An encoded prompt: everything a continuation needs from the prompt audio."""

    audio: torch.Tensor  # [1, N] at the codec's sample rate (mono)
    semantic: torch.Tensor  # [1, Ts]
    codes: torch.Tensor  # [1, Q, Tp]

    def save(self, path: str | Path) -> None:
        save_tensors(path, {"audio": self.audio, "semantic": self.semantic, "codes": self.codes})

    @classmethod
    def load(cls, path: str | Path) -> PromptTokens:
        try:
            t = load_tensors(path)
        except CheckpointError as e:
            raise PipelineError(str(e)) from None
        missing = {"audio", "semantic", "codes"} - set(t)
        if missing:
            raise PipelineError(f"{path}: not a saved prompt (missing {', '.join(sorted(missing))})")
        try:
            check_prompt_tokens(t["audio"], t["semantic"], t["codes"])
        except PipelineError as e:
            raise PipelineError(f"{path}: {e}") from None
        return cls(audio=t["audio"], semantic=t["semantic"].long(), codes=t["codes"].long())


@dataclass
class Continuation:
    audio: torch.Tensor  # [B, 1, N]: prompt + continuation, or continuation only
    sample_rate: int
    prompt_samples: int  # where the continuation starts in `audio` (0 with continuation_only)
    semantic: torch.Tensor | None = None  # [B, Ts] prompt + generated
    codes: torch.Tensor | None = None  # [B, Q, T] prompt + generated
    # wall seconds per step: "encode" (prompt tokenization; 0 for a given prompt), "semantic",
    # "coarse", "fine", "codec" (decoding); CUDA is synchronised at each boundary
    timings: dict[str, float] = field(default_factory=dict)


class AudioLM:
    """The three-stage continuation pipeline. Build with `from_pretrained`."""

    def __init__(self, codec, semantic_tokenizer, stages: dict, recipe: PipelineRecipe, source: Path | None = None):
        self.codec = codec
        self.semantic_tokenizer = semantic_tokenizer
        self.stages = stages  # {"semantic": (Transformer, StageConfig), "coarse": ..., "fine": ...}
        self.recipe = recipe
        self.source = source
        self._check_components()

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike | None = None, device: str = "cpu") -> AudioLM:
        recipe_path = find_recipe(name_or_dir)
        recipe = load_recipe(recipe_path)
        root = recipe_path.parent

        def where(p: str) -> Path:
            return (root / p).resolve()

        codec = Codec.from_pretrained(where(recipe.codec), device=device)
        tokenizer = SemanticTokenizer.from_pretrained(where(recipe.semantic_tokenizer), device=device)
        stages = {
            name: load_stage(where(getattr(recipe, f"{name}_stage")), name, device=device) for name in STAGE_NAMES
        }
        return cls(codec, tokenizer, stages, recipe, source=recipe_path)

    def _check_components(self) -> None:
        """Fail at load, naming the mismatch, when components cannot work together."""
        where = str(self.source or self.recipe.name)
        sem_cfg = self.stages["semantic"][1]
        coarse_cfg = self.stages["coarse"][1]
        fine_cfg = self.stages["fine"][1]
        tok = self.semantic_tokenizer
        problems = []
        for name, cfg in (("semantic", sem_cfg), ("coarse", coarse_cfg)):
            if cfg.semantic_vocab != tok.vocab_size:
                problems.append(
                    f"{name} stage expects {cfg.semantic_vocab} semantic tokens, the tokenizer has {tok.vocab_size}"
                )
            if not math.isclose(cfg.semantic_frame_rate, tok.frame_rate):
                problems.append(
                    f"{name} stage expects semantic tokens at {cfg.semantic_frame_rate:g} Hz, "
                    f"the tokenizer gives {tok.frame_rate:g} Hz"
                )
        for name, cfg in (("coarse", coarse_cfg), ("fine", fine_cfg)):
            if cfg.codebook_size != self.codec.codebook_size:
                problems.append(
                    f"{name} stage expects codebooks of {cfg.codebook_size}, the codec has {self.codec.codebook_size}"
                )
            if not math.isclose(cfg.acoustic_frame_rate, self.codec.frame_rate):
                problems.append(
                    f"{name} stage expects {cfg.acoustic_frame_rate:g} Hz acoustic frames, "
                    f"the codec gives {self.codec.frame_rate:g} Hz"
                )
        if fine_cfg.n_q > self.codec.n_q:
            problems.append(f"fine stage predicts {fine_cfg.n_q} levels, the codec has only {self.codec.n_q}")
        else:
            decodable = sorted({self.codec.levels_for_kbps(b) for b in self.codec.bandwidths})
            if fine_cfg.n_q not in decodable:
                problems.append(
                    f"fine stage predicts {fine_cfg.n_q} levels, the codec decodes "
                    f"{', '.join(map(str, decodable))} levels (one per bit rate)"
                )
        if sem_cfg.dedup_semantic:
            problems.append(
                "semantic stage was trained on deduplicated tokens (dedup_semantic), which lose the timing "
                "the coarse stage needs"
            )
        for name, cfg in (("semantic", sem_cfg), ("coarse", coarse_cfg), ("fine", fine_cfg)):
            if cfg.stage != name:
                problems.append(f"the {name} stage checkpoint holds a {cfg.stage} stage")
        if coarse_cfg.coarse_levels != fine_cfg.coarse_levels:
            problems.append(
                f"coarse stage models {coarse_cfg.coarse_levels} levels, the fine stage expects {fine_cfg.coarse_levels}"
            )
        if problems:
            raise PipelineError(f"{where}: components do not fit: " + "; ".join(problems))

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def n_q(self) -> int:
        return self.stages["fine"][1].n_q

    @property
    def context_seconds(self) -> float:
        """The longest prompt the semantic stage sees at once (longer prompts are trimmed)."""
        cfg = self.stages["semantic"][1]
        return (cfg.model.max_seq_len - 1) / cfg.semantic_frame_rate

    @property
    def min_prompt_samples(self) -> int:
        """The shortest prompt (at `sample_rate`): one codec frame and two semantic frames."""
        semantic = math.ceil(2 * self.sample_rate / self.semantic_tokenizer.frame_rate)
        return max(self.codec.hop_length, semantic)

    @property
    def device(self) -> torch.device:
        return next(self.stages["semantic"][0].parameters()).device

    # -- prompts ------------------------------------------------------------------------------

    def encode_prompt(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> PromptTokens:
        """Mono-mix, resample, check and tokenize a prompt. wav: [N] or [C, N]."""
        wav = check_prompt_audio(wav, sample_rate)  # dtype / layout / range rules (limits.py)
        mono = wav.mean(0, keepdim=True)
        audio = resample(mono, sample_rate, self.sample_rate) if sample_rate != self.sample_rate else mono
        hop = self.codec.hop_length
        if audio.shape[-1] < self.min_prompt_samples:
            raise PipelineError(
                f"prompt is {audio.shape[-1] / self.sample_rate * 1000:.1f} ms long, shorter than the "
                f"{self.min_prompt_samples / self.sample_rate * 1000:.1f} ms this pipeline needs (one codec "
                f"frame is {hop / self.sample_rate * 1000:.1f} ms, two semantic frames "
                f"{2000 / self.semantic_tokenizer.frame_rate:.1f} ms)"
            )
        if float(audio.abs().max()) < 1e-4:
            raise PipelineError("prompt is silent (peak below -80 dBFS): there is nothing to continue")
        max_samples = int(self.context_seconds * self.sample_rate)
        if audio.shape[-1] > max_samples:
            warnings.warn(
                f"prompt is {audio.shape[-1] / self.sample_rate:.1f} s, longer than the model context "
                f"({self.context_seconds:.1f} s): using its last {self.context_seconds:.1f} s",
                stacklevel=2,
            )
            audio = audio[:, -max_samples:]
        audio = audio[:, : audio.shape[-1] // hop * hop]  # whole codec frames: the seam lies on a frame edge
        with torch.inference_mode():
            codes = self.codec.encode(audio[None].to(self.codec.device), self.sample_rate, kbps=self._kbps())
            semantic = self.semantic_tokenizer.encode(audio.to(self.device), self.sample_rate)
        if semantic.shape[-1] < 1:
            raise PipelineError("prompt is too short to give one semantic token")
        return PromptTokens(audio=audio.cpu(), semantic=semantic.cpu().long(), codes=codes.cpu().long())

    def _kbps(self) -> float:
        """The codec bandwidth whose level count the fine stage models."""
        for kbps in sorted(self.codec.bandwidths):
            if self.codec.levels_for_kbps(kbps) >= self.n_q:
                return kbps
        return max(self.codec.bandwidths)

    # -- continuation -------------------------------------------------------------------------

    def _sampling(self, stage: str, temperature, top_k, top_p):
        base = self.recipe.sampling.get(stage, StageSampling())

        def pick(value, default):
            if isinstance(value, dict):
                return value.get(stage, default)
            return default if value is None else value

        return SamplingConfig(
            temperature=float(pick(temperature, base.temperature)),
            top_k=int(pick(top_k, base.top_k)),
            top_p=float(pick(top_p, base.top_p)),
        )

    @torch.inference_mode()
    def continue_audio(
        self,
        wav: torch.Tensor | np.ndarray | None,
        sample_rate: int | None = None,
        seconds: float = 4.0,
        seed: int | None = None,
        num_samples: int = 1,
        temperature: float | dict[str, float] | None = None,
        top_k: int | dict[str, int] | None = None,
        top_p: float | dict[str, float] | None = None,
        return_tokens: bool = False,
        progress: Progress | None = None,
        prompt: PromptTokens | None = None,
        continuation_only: bool = False,
    ) -> torch.Tensor | Continuation:
        """Continue `wav` (or an already encoded `prompt`) by `seconds`.

        Returns audio [num_samples, 1, N] at `self.sample_rate`: the prompt followed by the
        continuation (only the continuation with `continuation_only`). Sampling settings are
        one value for every stage or a {stage: value} dict; None takes the recipe's default.
        With `return_tokens`, returns a `Continuation` holding the tokens too.
        """
        check_request(seconds, num_samples, seed)  # ranges, finiteness, 32-bit seeds (limits.py)
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
            check_sampling(name, value)
        timings: dict[str, float] = {"encode": 0.0}
        clock = _Stopwatch(self.device, timings)
        if prompt is None:
            if wav is None or sample_rate is None:
                raise PipelineError("give prompt audio and its sample rate, or an encoded prompt")
            prompt = self.encode_prompt(wav, sample_rate)
            clock.lap("encode")
        self._check_prompt(prompt)
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little") >> 1
        seeds = [seed + i for i in range(num_samples)]
        device = self.device
        B = num_samples
        sem_model, sem_cfg = self.stages["semantic"]
        coarse_model, coarse_cfg = self.stages["coarse"]
        fine_model, fine_cfg = self.stages["fine"]

        prompt_frames = prompt.codes.shape[-1]
        total_frames = prompt_frames + max(1, round(seconds * self.codec.frame_rate))
        # semantic tokens covering every acoustic frame of prompt + continuation
        total_semantic = math.ceil(total_frames * sem_cfg.semantic_frame_rate / self.codec.frame_rate)
        s_prompt = prompt.semantic.to(device).expand(B, -1)[:, :total_semantic]
        n_semantic = max(0, total_semantic - s_prompt.shape[1])

        def stage_progress(stage):
            if progress is None:
                return None
            return lambda done, total: progress(stage, done, total)

        semantic = generate_semantic(
            sem_model, sem_cfg, s_prompt, n_semantic,
            sampling=self._sampling("semantic", temperature, top_k, top_p), seeds=seeds,
            progress=stage_progress("semantic"),
        )
        clock.lap("semantic")
        coarse = generate_coarse(
            coarse_model, coarse_cfg, semantic, prompt.codes.to(device).expand(B, -1, -1), total_frames,
            sampling=self._sampling("coarse", temperature, top_k, top_p), seeds=seeds,
            progress=stage_progress("coarse"),
        )
        clock.lap("coarse")
        codes = generate_fine(
            fine_model, fine_cfg, coarse, prompt.codes[:, : self.n_q].to(device).expand(B, -1, -1),
            sampling=self._sampling("fine", temperature, top_k, top_p), seeds=seeds,
            progress=stage_progress("fine"),
        )
        clock.lap("fine")
        if progress is not None:
            progress("codec", 0, 1)
        decoded = self.codec.decode(codes.to(self.codec.device)).cpu()  # [B, 1, N]
        clock.lap("codec")
        if progress is not None:
            progress("codec", 1, 1)
        hop = self.codec.hop_length
        continuation = decoded[..., prompt_frames * hop :]
        if continuation_only:
            audio, start = continuation, 0
        else:
            audio = torch.cat([prompt.audio[None].expand(B, -1, -1), continuation], dim=-1)
            start = prompt.audio.shape[-1]
        if return_tokens:
            return Continuation(audio, self.sample_rate, start, semantic.cpu(), codes.cpu(), timings)
        return audio

    def _check_prompt(self, prompt: PromptTokens) -> None:
        check_prompt_tokens(prompt.audio, prompt.semantic, prompt.codes)  # batch 1, integer ids >= 0 (limits.py)
        shapes = (prompt.audio.dim(), prompt.semantic.dim(), prompt.codes.dim())
        if shapes != (2, 2, 3) or prompt.semantic.shape[-1] < 1 or prompt.codes.shape[-1] < 1:
            raise PipelineError(
                f"the prompt's tensors have shapes audio {list(prompt.audio.shape)}, semantic "
                f"{list(prompt.semantic.shape)}, codes {list(prompt.codes.shape)}; expected [1, N], [1, Ts >= 1], "
                "[1, Q, T >= 1]"
            )
        q = prompt.codes.shape[1]
        if q < self.n_q:
            raise PipelineError(f"the prompt holds {q} codec levels, this pipeline needs {self.n_q}")
        if int(prompt.codes.max()) >= self.codec.codebook_size:
            raise PipelineError("the prompt's codes do not fit this codec's codebooks (saved with another codec?)")
        if int(prompt.semantic.max()) >= self.semantic_tokenizer.vocab_size:
            raise PipelineError("the prompt's semantic tokens do not fit this tokenizer (saved with another one?)")
