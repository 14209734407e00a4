"""AudioLM: codec + semantic tokenizer + three LM stages, composed from a pipeline recipe.

    lm = AudioLM.from_pretrained()            # the embedded default (pipelines/default.json)
    audio = lm.continue_audio(wav, sample_rate, seconds=4.0, seed=0)   # [num_samples, 1, N]
    for first, result in lm.generate_batches(wav, sample_rate, num_samples=1000): ...  # bounded batches
    result = lm.generate_continuation(wav, sample_rate, seconds=4.0)    # Continuation: audio + tokens + timings
    for chunk in lm.stream(wav, sample_rate, seconds=10.0, seed=0): ...  # [num_samples, 1, n] as made
    results = lm.continue_prompts([p1, p2], seconds=4.0)                 # encoded prompts, batched

Data flow of one continuation (B = num_samples, seeds seed, seed+1, ...):

    prompt wav ─► 16 kHz ─► SemanticTokenizer ─► s_prompt [1, Ts]
               └► 24 kHz ─► Codec.encode       ─► a_prompt [1, Q, Tp]   (75 Hz)
    semantic stage: s_prompt                  ─► s [B, Ts + n_s]
    coarse stage:   s, a_prompt[:, :Qc]       ─► coarse [B, Qc, Tp + n_a]
    fine stage:     coarse                    ─► codes [B, Q, Tp + n_a]
    Codec.decode(codes)[..., Tp * hop:]       ─► continuation; returned after the prompt audio

Each stage is a `stages.Track` filled on demand: `continue_audio` fills them one after the
other, `stream` asks the fine track for one window at a time (which pulls coarse frames, which
pull semantic tokens) and decodes each chunk with `codec_chunks.ChunkedDecoder.push_ready`.

A recipe (pipelines/*.json, see `PipelineRecipe`) names the component checkpoints and the
sampling defaults per stage. Components that do not fit together (codebook size, number of
levels, frame rates, semantic vocabulary) fail at load with a message naming the mismatch.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audiolm.core.audio import resample
from audiolm.core.checkpoint import load_tensors, save_tensors
from audiolm.core.config import config_from_dict
from audiolm.core.errors import CheckpointError, ConfigError
from audiolm.core.paths import PIPELINES_DIR, resolve_checkpoint
from audiolm.core.timing import synced_clock
from audiolm.inference.codec_chunks import ChunkedDecoder, decode_chunked
from audiolm.inference.compiled_step import compile_by_default
from audiolm.inference.fine_draws import FineDrawMean
from audiolm.inference.limits import (
    MemoryPlan,
    PipelineError,
    check_prompt_audio,
    check_prompt_tokens,
    check_request,
    check_sampling,
    plan_batches,
)
from audiolm.inference.progress import progress_bars
from audiolm.inference.sampling import SamplingConfig
from audiolm.inference.stages import Track, coarse_track, fine_track, semantic_track
from audiolm.inference.voice_anchor import RunningVoiceAnchor, VoiceAnchor, fit_voice_anchor
from audiolm.models.codec.codec import Codec
from audiolm.models.lm.config import STAGES
from audiolm.models.lm.stage import Stage, load_stage
from audiolm.models.semantic.tokenizer import SemanticTokenizer

DEFAULT_PIPELINE = "default"
DECODE_CHUNK_SECONDS = 10.0  # longer outputs are decoded in chunks of this length (bounded memory)
STAGE_NAMES = STAGES

# progress(stage, done, total): stage in "semantic" | "coarse" | "fine" | "codec", and "samples"
# (samples done) when many samples run in several batches
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
    """pipelines/NAME.json. Paths are relative to the recipe file; those that land in the shipped
    checkpoints folder follow AUDIOLM_CHECKPOINTS (`core.paths.resolve_checkpoint`)."""

    name: str
    codec: str
    semantic_tokenizer: str
    semantic_stage: str
    coarse_stage: str
    fine_stage: str
    kbps: float = 6.0  # acoustic levels used = the fine stage's n_q; kbps is informational
    sampling: dict[str, StageSampling] = field(default_factory=dict)
    # match the continuation's codec latents to the prompt's before decoding (voice_anchor.py;
    # `stream` frame by frame on the frames so far)
    voice_anchor: bool = False
    # decode the fine levels as the mean latent of this many fine-stage draws (fine_draws.py; 1 =
    # one draw, as sampled). Not in `stream`, which decodes one draw as it comes
    fine_draws: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.fine_draws, bool) or not isinstance(self.fine_draws, int) or not 1 <= self.fine_draws <= 16:
            raise ValueError(f"fine_draws must be an integer in [1, 16], got {self.fine_draws!r}")
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
    """What `AudioLM.generate_continuation` returns: the audio and the tokens behind it."""

    audio: torch.Tensor  # [B, 1, N]: prompt + continuation, or continuation only
    sample_rate: int
    prompt_samples: int  # where the continuation starts in `audio` (0 with continuation_only)
    semantic: torch.Tensor  # [B, Ts] prompt + generated
    codes: torch.Tensor  # [B, Q, T] prompt + generated
    # wall seconds per step: "encode" (prompt tokenization; 0 for a given prompt), "semantic",
    # "coarse", "fine", "codec" (decoding); CUDA is synchronised at each boundary
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Run:
    """One generation in progress: its prompts and the three stage tracks (`stages.Track`)."""

    prompts: list[PromptTokens]
    batch: int  # rows in all: num_samples per prompt, prompt after prompt
    prompt_frames: list[int]  # per prompt: its acoustic frames
    total_frames: list[int]  # per prompt: prompt + continuation frames (its rows' length in `fine`)
    total_semantic: list[int]  # per prompt: its rows' length in `semantic`
    semantic: Track
    coarse: Track
    fine: Track
    seeds: list[int]  # per row
    fine_sampling: SamplingConfig

    @property
    def prompt_of_row(self) -> list[int]:
        per_prompt = self.batch // len(self.prompts)  # row i * per_prompt + j: sample j of prompt i
        return [i for i in range(len(self.prompts)) for _ in range(per_prompt)]


def _random_seed() -> int:
    return int.from_bytes(os.urandom(4), "little") >> 1


class AudioLM:
    """The three-stage continuation pipeline. Build with `from_pretrained`."""

    def __init__(
        self,
        codec: Codec,
        semantic_tokenizer: SemanticTokenizer,
        stages: Mapping[str, Stage],
        recipe: PipelineRecipe,
        source: Path | None = None,
        compile_step: bool | None = None,
    ):
        self.codec = codec
        self.semantic_tokenizer = semantic_tokenizer
        self.stages = dict(stages)  # {"semantic": Stage, "coarse": Stage, "fine": Stage}
        self.recipe = recipe
        self.source = source
        # decode continuations with the prompt's voice statistics (`voice_anchor.py`); the
        # recipe's setting, and an attribute to switch it per object
        self.voice_anchor = recipe.voice_anchor
        # fine levels decoded as the mean of this many draws (`fine_draws.py`); likewise switchable
        self.fine_draws = recipe.fine_draws
        # CPU decoding through the compiled step kept on disk per machine (`compiled_step.py`):
        # None = the default (on, unless AUDIOLM_COMPILE=0), False = the eager step
        self.compile_step = compile_step
        self._check_components()

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, name_or_dir: str | os.PathLike | None = None, device: str = "cpu", compile_step: bool | None = None
    ) -> AudioLM:
        """compile_step: on CPU, decode with the compiled step (compiled once per machine, then
        loaded from the cache; None: on unless AUDIOLM_COMPILE=0), or False: the eager step."""
        recipe_path = find_recipe(name_or_dir)
        recipe = load_recipe(recipe_path)
        root = recipe_path.parent

        def where(p: str) -> Path:
            # relative to the recipe; into the shipped checkpoints folder -> $AUDIOLM_CHECKPOINTS if set
            return resolve_checkpoint(root / p)

        codec = Codec.from_pretrained(where(recipe.codec), device=device)
        tokenizer = SemanticTokenizer.from_pretrained(where(recipe.semantic_tokenizer), device=device)
        stages: dict[str, Stage] = {
            name: load_stage(where(getattr(recipe, f"{name}_stage")), name, device=device) for name in STAGE_NAMES
        }
        return cls(codec, tokenizer, stages, recipe, source=recipe_path, compile_step=compile_step)

    def _check_components(self) -> None:
        """Fail at load, naming the mismatch, when components cannot work together."""
        where = str(self.source or self.recipe.name)
        sem_cfg = self.stages["semantic"].config
        coarse_cfg = self.stages["coarse"].config
        fine_cfg = self.stages["fine"].config
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
        return self.stages["fine"].config.n_q

    @property
    def context_seconds(self) -> float:
        """The longest prompt the semantic stage sees at once (longer prompts are trimmed)."""
        cfg = self.stages["semantic"].config
        return (cfg.model.max_seq_len - 1) / cfg.semantic_frame_rate

    @property
    def min_prompt_samples(self) -> int:
        """The shortest prompt (at `sample_rate`): one codec frame and two semantic frames."""
        semantic = math.ceil(2 * self.sample_rate / self.semantic_tokenizer.frame_rate)
        return max(self.codec.hop_length, semantic)

    @property
    def device(self) -> torch.device:
        return self.stages["semantic"].device

    def _compiled(self) -> bool:
        """Whether the stages decode with the cached compiled step (CPU only)."""
        wanted = compile_by_default() if self.compile_step is None else self.compile_step
        return wanted and self.device.type == "cpu"

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
        progress: Progress | bool | None = None,
        prompt: PromptTokens | None = None,
        continuation_only: bool = False,
        first_chunk_seconds: float | None = None,
        batch_size: int | None = None,
        max_memory: int | None = None,
    ) -> torch.Tensor:
        """Continue `wav` (or an already encoded `prompt`) by `seconds`.

        Returns audio [num_samples, 1, N] at `self.sample_rate`: the prompt followed by the
        continuation (only the continuation with `continuation_only`). Sampling settings are
        one value for every stage or a {stage: value} dict; None takes the recipe's default.
        `generate_continuation` takes the same arguments and returns the tokens too;
        first_chunk_seconds: the fine stage's window schedule of `stream` (default: unchanged).
        The samples run in batches of bounded size (`generate_batches`: `batch_size`, or as many
        as fit in `max_memory` bytes); sample i uses seed + i whatever the batching.
        progress: a callback progress(stage, done, total), or True for tqdm bars on stderr.
        """
        close = None
        callback: Progress | None
        if progress is True:
            callback, close = progress_bars()
        else:
            callback = progress or None  # False: none
        try:
            parts = [
                result.audio
                for _, result in self.generate_batches(
                    wav,
                    sample_rate,
                    seconds=seconds,
                    seed=seed,
                    num_samples=num_samples,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    progress=callback,
                    prompt=prompt,
                    continuation_only=continuation_only,
                    first_chunk_seconds=first_chunk_seconds,
                    batch_size=batch_size,
                    max_memory=max_memory,
                )
            ]
        finally:
            if close is not None:
                close()
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def plan_batches(
        self,
        seconds: float,
        num_samples: int,
        prompt: PromptTokens | None = None,
        batch_size: int | None = None,
        max_memory: int | None = None,
    ) -> MemoryPlan:
        """The batches `generate_batches` runs `num_samples` samples in (limits.plan_batches on
        this pipeline's stage configs): `batch_size` if given, else as many samples as fit in
        `max_memory` bytes (default: 2 GB or a quarter of the free memory). RequestError if one
        sample does not fit."""
        check_request(seconds, num_samples, None)
        prompt_seconds = 0.0 if prompt is None else prompt.audio.shape[-1] / self.sample_rate
        configs = {name: stage.config for name, stage in self.stages.items()}
        return plan_batches(configs, seconds, prompt_seconds, num_samples, batch_size, max_memory)

    def generate_batches(
        self,
        wav: torch.Tensor | np.ndarray | None,
        sample_rate: int | None = None,
        seconds: float = 4.0,
        seed: int | None = None,
        num_samples: int = 1,
        temperature: float | dict[str, float] | None = None,
        top_k: int | dict[str, int] | None = None,
        top_p: float | dict[str, float] | None = None,
        progress: Progress | None = None,
        prompt: PromptTokens | None = None,
        continuation_only: bool = False,
        first_chunk_seconds: float | None = None,
        batch_size: int | None = None,
        max_memory: int | None = None,
    ) -> Generator[tuple[int, Continuation], None, None]:
        """`generate_continuation` of `num_samples` samples in batches of bounded size (see
        `plan_batches`): yields (index of the batch's first sample, its Continuation), one batch
        at a time, so a caller that writes each batch out holds one batch in memory (what
        `audiolm continue --num-samples N` does). The prompt is encoded once; sample i uses
        seed + i, so the samples do not depend on the batching. Everything is checked before the
        first batch runs. With several batches, progress also gets ("samples", done, num_samples)."""
        check_request(seconds, num_samples, seed)
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
            check_sampling(name, value)
        timings: dict[str, float] = {"encode": 0.0}
        if prompt is None:
            clock = _Stopwatch(self.device, timings)
            prompt = self._encode_given(wav, sample_rate)
            clock.lap("encode")
        self._check_prompt(prompt)
        plan = self.plan_batches(seconds, num_samples, prompt, batch_size, max_memory)
        if seed is None:
            seed = _random_seed()
        for batch in range(plan.batches):
            first = batch * plan.batch_size
            count = min(plan.batch_size, num_samples - first)
            if progress is not None and plan.batches > 1:
                progress("samples", first, num_samples)
            result = self.generate_continuation(
                None,
                None,
                seconds=seconds,
                seed=seed + first,
                num_samples=count,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                progress=progress,
                prompt=prompt,
                continuation_only=continuation_only,
                first_chunk_seconds=first_chunk_seconds,
            )
            if batch == 0:
                result.timings["encode"] = timings["encode"]
            yield first, result
            del result
        if progress is not None and plan.batches > 1:
            progress("samples", num_samples, num_samples)

    @torch.inference_mode()
    def generate_continuation(
        self,
        wav: torch.Tensor | np.ndarray | None,
        sample_rate: int | None = None,
        seconds: float = 4.0,
        seed: int | None = None,
        num_samples: int = 1,
        temperature: float | dict[str, float] | None = None,
        top_k: int | dict[str, int] | None = None,
        top_p: float | dict[str, float] | None = None,
        progress: Progress | None = None,
        prompt: PromptTokens | None = None,
        continuation_only: bool = False,
        first_chunk_seconds: float | None = None,
    ) -> Continuation:
        """`continue_audio`, returning a `Continuation`: the audio, the semantic tokens and codes
        (prompt + generated) and the wall time of each step. first_chunk_seconds: as in
        `stream` (the same value gives the same tokens)."""
        timings: dict[str, float] = {"encode": 0.0}
        clock = _Stopwatch(self.device, timings)
        if prompt is None:
            prompt = self._encode_given(wav, sample_rate)
            clock.lap("encode")
        run = self._start(
            [prompt], seconds, seed, num_samples, temperature, top_k, top_p, progress, first_chunk_seconds
        )
        run.semantic.fill()
        clock.lap("semantic")
        run.coarse.fill()
        clock.lap("coarse")
        codes = run.fine.fill()
        latent_map = self._latent_map(run, codes)  # more fine draws, if any, and the voice anchor
        clock.lap("fine")
        if progress is not None:
            progress("codec", 0, 1)
        decoded = self._decode(codes, latent_map)  # [B, 1, N]
        clock.lap("codec")
        if progress is not None:
            progress("codec", 1, 1)
        return self._result(run, 0, decoded, continuation_only, timings)

    @torch.inference_mode()
    def continue_prompts(
        self,
        prompts: list[PromptTokens],
        seconds: float = 4.0,
        seed: int | None = None,
        num_samples: int = 1,
        temperature: float | dict[str, float] | None = None,
        top_k: int | dict[str, int] | None = None,
        top_p: float | dict[str, float] | None = None,
        progress: Progress | None = None,
        continuation_only: bool = False,
    ) -> list[Continuation]:
        """Continue several encoded prompts, one `Continuation` per prompt (its `num_samples`
        samples), each equal to `generate_continuation` of that prompt alone with the same seed.
        All prompts run through the stages as one batch, whatever their lengths: rows of other
        lengths are left-padded and masked in each stage's decoder (`stages`, `decode.py`);
        the codec decodes the prompts of each length together. `timings` are the batch's."""
        if seed is None:
            seed = _random_seed()
        if not prompts:
            return []
        timings: dict[str, float] = {"encode": 0.0}
        clock = _Stopwatch(self.device, timings)
        run = self._start(prompts, seconds, seed, num_samples, temperature, top_k, top_p, progress)
        for name, track in (("semantic", run.semantic), ("coarse", run.coarse), ("fine", run.fine)):
            track.fill()
            if name == "fine":
                latent_map = self._latent_map(run, run.fine.data)
            clock.lap(name)
        groups: dict[int, list[int]] = {}  # total frames -> prompts
        for i, frames in enumerate(run.total_frames):
            groups.setdefault(frames, []).append(i)
        decoded: dict[int, torch.Tensor] = {}
        for frames, members in groups.items():
            rows = torch.tensor([i * num_samples + j for i in members for j in range(num_samples)])
            audio = self._decode(run.fine.data[rows.to(self.device), :, :frames], latent_map and latent_map.rows(rows))
            for k, i in enumerate(members):
                decoded[i] = audio[k * num_samples : (k + 1) * num_samples]
        clock.lap("codec")
        return [
            self._result(run, i, decoded[i], continuation_only, timings, slice(i * num_samples, (i + 1) * num_samples))
            for i in range(len(prompts))
        ]

    def stream(
        self,
        wav: torch.Tensor | np.ndarray | None,
        sample_rate: int | None = None,
        seconds: float = 4.0,
        seed: int | None = None,
        num_samples: int = 1,
        temperature: float | dict[str, float] | None = None,
        top_k: int | dict[str, int] | None = None,
        top_p: float | dict[str, float] | None = None,
        progress: Progress | None = None,
        prompt: PromptTokens | None = None,
        continuation_only: bool = False,
        chunk_seconds: float = 0.2,
        first_chunk_seconds: float | None = None,
    ) -> Generator[torch.Tensor, None, None]:
        """`continue_audio` as audio chunks [num_samples, 1, n] yielded as soon as they are made.

        The stages run interleaved: the fine stage asks for the coarse frames of its next window,
        which asks the semantic stage for just the tokens those frames need, and the codec
        decodes each chunk of finished frames incrementally (`codec_chunks.ChunkedDecoder`). The
        tokens are those `continue_audio` samples with the same arguments (same loops, same
        draws); the audio is too, up to float rounding in the codec (its LSTM state is carried
        across chunks instead of run over the whole sequence at once), except for voice
        anchoring: `continue_audio` fits it on the whole continuation, a stream frame by frame on
        the frames so far (`voice_anchor.RunningVoiceAnchor`). Without
        `continuation_only` the first chunk is the prompt audio. A chunk holds at least
        `chunk_seconds` of audio where the stages allow (the last may be shorter).

        The first audio can come no sooner than the fine stage's first window (with the shipped
        Bark-style stage, 96 frames = 1.28 s of audio, whose coarse frames must all be made
        first). `first_chunk_seconds` ends that first window this long after the prompt, so
        audio starts sooner, and lets each next window make at most twice as many frames as the
        one before until they are full, so the audio keeps ahead of playback meanwhile. The
        semantic and coarse tokens are unchanged; the fine levels are sampled over different
        window boundaries, so they (and the audio) differ from `continue_audio`'s — and equal
        `generate_continuation(..., first_chunk_seconds=...)`'s. Default None: no change.

        The stages' KV caches belong to this object: run one generation at a time per AudioLM.
        """
        if not chunk_seconds >= 0:
            raise PipelineError(f"chunk_seconds must be >= 0, got {chunk_seconds}")
        with torch.inference_mode():
            if prompt is None:
                prompt = self._encode_given(wav, sample_rate)
            run = self._start(
                [prompt], seconds, seed, num_samples, temperature, top_k, top_p, progress, first_chunk_seconds
            )
            # the prompt's frames go through the decoder too (the continuation's audio depends on
            # them) without making their audio: the prompt itself is what comes first
            prompt_codes = run.fine.data[..., : run.prompt_frames[0]]
            anchor = RunningVoiceAnchor(self.codec, prompt_codes) if self.voice_anchor else None
            decoder = ChunkedDecoder(self.codec, latent_map=anchor)
            decoder.skip(prompt_codes)
            fed = run.prompt_frames[0]  # frames handed to the decoder
            min_frames = max(1, round(chunk_seconds * self.codec.frame_rate))
        if not continuation_only:
            yield prompt.audio[None].expand(run.batch, -1, -1).clone()
        fine = run.fine
        while decoder.frames_done < fine.length:
            with torch.inference_mode():
                if not fine.done:
                    fine.advance()
                if fine.ready - decoder.frames_done < min_frames + decoder.lookahead_frames and not fine.done:
                    continue
                audio = decoder.push_ready(fine.data[..., fed : fine.ready], final=fine.done)
                fed = fine.ready
            if audio.shape[-1]:
                yield audio.float().cpu()

    # -- continuation internals ---------------------------------------------------------------

    def _decode(self, codes: torch.Tensor, latent_map: VoiceAnchor | FineDrawMean | None = None) -> torch.Tensor:
        """codes [B, Q, T] -> audio [B, 1, T * hop] on the CPU, through `latent_map` if given. Beyond
        DECODE_CHUNK_SECONDS of frames the codec decodes chunk by chunk
        (`codec_chunks.decode_chunked`, equal up to float rounding), so its activations, not
        only the stages' caches, stay bounded in length."""
        chunk = round(DECODE_CHUNK_SECONDS * self.codec.frame_rate)
        codes = codes.to(self.codec.device)
        if codes.shape[-1] <= chunk:
            return self.codec.decode(codes, latent_map).cpu()
        return torch.cat([piece.cpu() for piece in decode_chunked(self.codec, codes, chunk, latent_map)], dim=-1)

    def _latent_map(self, run: _Run, codes: torch.Tensor) -> VoiceAnchor | FineDrawMean | None:
        """What a finished run's codes [B, Q, T] go through before the codec's decoder: the mean
        with more fine-stage draws (`fine_draws` > 1, drawn here), then the voice anchor (fitted
        on that mean); None when neither is on."""
        mean = None
        if self.fine_draws > 1:
            mean = FineDrawMean(self.codec, self._more_fine_draws(run, codes, self.fine_draws - 1))
        anchor = None
        if self.voice_anchor:
            rows = run.prompt_of_row
            anchor = fit_voice_anchor(
                self.codec,
                codes,
                [run.prompt_frames[i] for i in rows],
                [run.total_frames[i] for i in rows],
                latent=None if mean is None else mean.mean_latent(codes),
            )
        if mean is None:
            return anchor
        mean.then = anchor
        return mean

    def _more_fine_draws(self, run: _Run, codes: torch.Tensor, count: int) -> torch.Tensor:
        """`count` more fine-stage draws for a finished run's coarse codes: [count, B, Q, T], draw
        s of row b seeded apart from every row's own draw. One batch of count * B rows."""
        stage = self.stages["fine"]
        B, Qc = codes.shape[0], stage.config.coarse_levels
        rows = run.prompt_of_row * count
        lengths = [run.total_frames[i] for i in rows]
        coarse = Track(codes[:, :Qc].repeat(count, 1, 1), codes.shape[-1], lambda track: iter(()), lengths=lengths)
        seeds = [(seed + 0x9E3779B9 * (s + 1)) % 2**32 for s in range(count) for seed in run.seeds]
        fine = fine_track(
            stage.model,
            stage.config,
            coarse,
            codes[..., : max(run.prompt_frames)].repeat(count, 1, 1),
            sampling=run.fine_sampling,
            seeds=seeds,
            fine_prompt_frames=[run.prompt_frames[i] for i in rows],
            compile_step=self._compiled(),
        )
        return fine.fill().view(count, B, *codes.shape[1:])

    def _encode_given(self, wav, sample_rate) -> PromptTokens:
        if wav is None or sample_rate is None:
            raise PipelineError("give prompt audio and its sample rate, or an encoded prompt")
        return self.encode_prompt(wav, sample_rate)

    def _start(
        self, prompts, seconds, seed, num_samples, temperature, top_k, top_p, progress, first_chunk_seconds=None
    ) -> _Run:
        """Check the request and set up the three stage tracks (nothing is generated yet).
        prompts: encoded prompts, of one length or not; sample j of prompt i is row
        i * num_samples + j, with seed `seed + j`. Prompts of different lengths run as one
        batch of rows of different lengths (`stages`), each row as it would run alone."""
        check_request(seconds, num_samples, seed)  # ranges, finiteness, 32-bit seeds (limits.py)
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)):
            check_sampling(name, value)
        for prompt in prompts:
            self._check_prompt(prompt)
        if seed is None:
            seed = _random_seed()
        seeds = [seed + j for _ in prompts for j in range(num_samples)]
        device = self.device
        B = len(seeds)
        semantic_stage, coarse_stage, fine_stage = (self.stages[name] for name in STAGE_NAMES)
        sem_cfg = semantic_stage.config

        def rows(values: list) -> list:  # one value per prompt -> one per row
            return [v for v in values for _ in range(num_samples)]

        def padded(tensors: list[torch.Tensor]) -> torch.Tensor:  # [1, ..., T_i] -> [B, ..., max T_i], zeros after
            out = tensors[0].new_zeros(B, *tensors[0].shape[1:-1], max(t.shape[-1] for t in tensors))
            for b, t in enumerate(rows(tensors)):
                out[b, ..., : t.shape[-1]] = t[0]
            return out.to(device)

        new_frames = max(1, round(seconds * self.codec.frame_rate))
        prompt_frames = [p.codes.shape[-1] for p in prompts]
        total_frames = [n + new_frames for n in prompt_frames]
        # semantic tokens covering every acoustic frame of prompt + continuation
        total_semantic = [math.ceil(n * sem_cfg.semantic_frame_rate / self.codec.frame_rate) for n in total_frames]
        s_lengths = [min(p.semantic.shape[-1], n) for p, n in zip(prompts, total_semantic)]
        s_prompt = padded([p.semantic[:, :n] for p, n in zip(prompts, s_lengths)])
        codes_prompt = padded([p.codes[:, : self.n_q] for p in prompts])
        # one length for every prompt: ints, the batch-of-equals path
        even = len(set(prompt_frames)) == 1 and len(set(s_lengths)) == 1
        n_semantic: int | list[int] = (
            max(0, total_semantic[0] - s_lengths[0])
            if even
            else rows([max(0, t - n) for t, n in zip(total_semantic, s_lengths)])
        )

        def stage_progress(stage, offset=0):
            if progress is None:
                return None
            return lambda done, total: progress(stage, done - offset, total - offset)

        def sampling(stage):
            return self._sampling(stage, temperature, top_k, top_p)

        compiled = self._compiled()

        semantic = semantic_track(
            semantic_stage.model,
            sem_cfg,
            s_prompt,
            n_semantic,
            sampling=sampling("semantic"),
            seeds=seeds,
            progress=stage_progress("semantic", min(s_lengths)),
            prompt_lengths=None if even else rows(s_lengths),
            compile_step=compiled,
        )
        coarse = coarse_track(
            coarse_stage.model,
            coarse_stage.config,
            semantic,
            codes_prompt,
            total_frames[0] if even else rows(total_frames),
            sampling=sampling("coarse"),
            seeds=seeds,
            progress=stage_progress("coarse"),
            prompt_frames=None if even else rows(prompt_frames),
            compile_step=compiled,
        )
        first_window = None
        if first_chunk_seconds is not None:
            if not first_chunk_seconds > 0:
                raise PipelineError(f"first_chunk_seconds must be positive, got {first_chunk_seconds}")
            first_window = max(1, round(first_chunk_seconds * self.codec.frame_rate))
        fine = fine_track(
            fine_stage.model,
            fine_stage.config,
            coarse,
            codes_prompt,
            sampling=sampling("fine"),
            seeds=seeds,
            progress=stage_progress("fine"),
            first_window_frames=first_window,
            fine_prompt_frames=None if even else rows(prompt_frames),
            compile_step=compiled,
        )
        return _Run(
            prompts, B, prompt_frames, total_frames, total_semantic, semantic, coarse, fine, seeds, sampling("fine")
        )

    def _result(self, run, index, decoded, continuation_only, timings, rows=slice(None)) -> Continuation:
        """The Continuation of prompt `index` of a run from its decoded audio [n, 1, N]."""
        prompt = run.prompts[index]
        continuation = decoded[..., run.prompt_frames[index] * self.codec.hop_length :]
        n = continuation.shape[0]
        if continuation_only:
            audio, start = continuation, 0
        else:
            audio = torch.cat([prompt.audio[None].expand(n, -1, -1), continuation], dim=-1)
            start = prompt.audio.shape[-1]
        semantic = run.semantic.data[rows, : run.total_semantic[index]].cpu()
        codes = run.fine.data[rows, :, : run.total_frames[index]].cpu()
        return Continuation(audio, self.sample_rate, start, semantic, codes, dict(timings))

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
