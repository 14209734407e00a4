"""`audiolm eval continuation`: how well a pipeline continues held-out audio, in one table.

Four figures, each reported for speech and music separately:

1. Validation cross entropy of each stage (nats per predicted token), on the token shards of
   `--tokens` (the split given), or, without it, on the evaluated clips tokenized on the fly by
   the pipeline's own codec and tokenizer. Windows are laid out exactly as in training
   (`audiolm.models.lm.layouts`), one window per `window_frames` of each utterance, seeded by position.
2. Acoustic consistency (`audiolm.evaluation.consistency`): N prompts of `prompt_seconds`, one per
   voice / instrument, are continued by `seconds`. Prompt and continuation are each embedded
   (utterance statistics of log-mel frames by default, timbre-sensitive), and we count how
   often a continuation is closer (cosine, each side centred on its set mean) to its own prompt
   than to the other N-1 (top-1, chance 1/N), and the mean share of other prompts it is farther
   from than its own (rank score, chance 0.5). The same figures for the real continuation of
   each clip (the audio that follows the prompt), raw and passed through the codec at the
   pipeline's levels, are the ceilings: the second is what a perfect LM could reach.
3. External judges (`judges`, off with judges=False / --skip-judges), on the same prompts and
   continuations. Speech: Resemblyzer's GE2E speaker encoder (`audiolm.evaluation.judges`) --
   top-1 retrieval of the own prompt among the N by cosine, and the mean cosine to the own
   prompt and to the other prompts; DNSMOS P.835 OVRL / SIG / BAK of the continuations and of
   their prompts. Music (`audiolm.evaluation.music_judges`, librosa): agreement of the
   continuation's key (chroma + Krumhansl-Schmuckler, MIREX score; and graded: the correlation
   of the two clips' 24 key-profile scores) and tempo (beat tracking,
   8 %, octave errors forgiven) with its prompt's. Each beside its floor and ceiling. Ceiling:
   the real continuation of the clip through the codec (what a perfect LM gives back). Floor:
   for the pairwise judges, another clip's real continuation through the codec in its place
   (the mean over all other pairings); for top-1 retrieval, the expectation over a shuffled
   pairing, which is chance (1/N); for DNSMOS, white noise at the prompt's level.
4. Resynthesis: a clip's ground-truth semantic tokens -> coarse stage -> fine stage -> codec
   (no acoustic prompt), mel distance to the original (`audiolm.models.codec.metrics.mel_distance`),
   next to the codec's own round trip at the pipeline's levels (the floor).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from audiolm.core.audio import load_audio
from audiolm.core.corpus import read_manifest
from audiolm.core.errors import AudiolmError
from audiolm.evaluation import judges as J
from audiolm.evaluation import music_judges as MJ
from audiolm.evaluation.consistency import (
    DEFAULT_EMBEDDING,
    embed,
    own_and_others,
    rank_score,
    retrieval_accuracy,
    shuffled_top1,
    top1,
)
from audiolm.inference.stages import generate_coarse, generate_fine
from audiolm.models.codec.metrics import mel_distance
from audiolm.models.lm.config import STAGES
from audiolm.models.lm.layouts import IGNORE
from audiolm.models.lm.stage import complete_stage_config
from audiolm.training.data.shards import TokenShards

KINDS = ("speech", "music")
MIN_REAL_SECONDS = 1.0  # a clip needs at least this much real audio after its prompt (or `seconds`)
SEED_STRIDE = 1000  # draw s of clip i uses seed + SEED_STRIDE * s + i: draws never share a seed while N < 1000


@dataclass
class Clip:
    id: str
    kind: str
    audio: torch.Tensor  # [1, N] mono at the pipeline's sample rate


# -- data ---------------------------------------------------------------------------------------


def select_items(corpus: str | Path, split: str, kind: str, min_seconds: float) -> list:
    """Manifest items of `kind` at least `min_seconds` long, in an order that spreads over the
    manifest (so the first n do not all come from one speaker): 0, L/2, L/4, 3L/4, ..."""
    items = [it for it in read_manifest(corpus, split=split, kind=kind) if it.duration >= min_seconds - 1e-6]
    order: list[int] = []
    step = len(items)
    while step >= 1 and len(order) < len(items):
        order.extend(i for i in range(0, len(items), step) if i not in order)
        step //= 2
    return [items[i] for i in order]


def trim_leading_silence(audio: torch.Tensor, sample_rate: int, below_peak_db: float = 40.0) -> torch.Tensor:
    """Drop the start of audio [1, N] until the first 10 ms frame whose RMS is within
    `below_peak_db` of the loudest frame's (a prompt of silence has nothing to continue)."""
    hop = max(1, sample_rate // 100)
    n = audio.shape[-1] // hop
    if n == 0:
        return audio[:, :0]
    rms = audio[:, : n * hop].reshape(n, hop).pow(2).mean(-1).sqrt()  # [n]
    if float(rms.max()) < 1e-4:
        return audio[:, :0]
    first = int((rms >= rms.max() * 10 ** (-below_peak_db / 20)).nonzero()[0])
    return audio[:, first * hop :]


def load_clip(item, sample_rate: int, max_seconds: float | None = None) -> Clip:
    """A corpus item as mono [1, N] at `sample_rate`, leading silence trimmed, cut to max_seconds."""
    wav, _ = load_audio(item.audio_path, sample_rate=sample_rate, mono=True)  # [1, N]
    wav = trim_leading_silence(wav, sample_rate)
    if max_seconds is not None:
        wav = wav[:, : int(max_seconds * sample_rate)]
    return Clip(item.id, item.kind, wav)


def load_clips(
    corpus: str | Path,
    split: str,
    kind: str,
    n: int,
    sample_rate: int,
    prompt_seconds: float,
    seconds: float,
    distinct: bool = True,
) -> tuple[list, list[Clip]]:
    """Up to n (item, clip) pairs whose audio, after trimming leading silence, holds a prompt and
    at least min(seconds, MIN_REAL_SECONDS) of real continuation. With `distinct`, at most one
    clip per speaker (voice or piece), so that a continuation can only find its own prompt by
    sounding like it (two clips of one voice would be indistinguishable by timbre)."""
    need = prompt_seconds + min(seconds, MIN_REAL_SECONDS)
    items, clips, speakers = [], [], set()
    for item in select_items(corpus, split, kind, need):
        if distinct and item.speaker in speakers:
            continue
        clip = load_clip(item, sample_rate, prompt_seconds + seconds)
        if clip.audio.shape[-1] >= need * sample_rate - 1:
            items.append(item)
            clips.append(clip)
            speakers.add(item.speaker)
        if len(clips) == n:
            break
    return items, clips


# -- 1. cross entropy ---------------------------------------------------------------------------


@dataclass
class TokenUtterance:
    kind: str
    semantic: np.ndarray  # [Ts]
    acoustic: np.ndarray  # [Ta, Q] frame-major, as in the token shards


def shard_utterances(tokens_dir: str | Path, split: str, lm) -> Iterator[TokenUtterance]:
    """Utterances of a token directory, after checking its tokens are the pipeline's."""
    shards = TokenShards(tokens_dir, split)
    for name, stage in lm.stages.items():
        try:
            complete_stage_config(stage.config, shards.info)  # raises on a vocabulary / rate mismatch
        except AudiolmError as e:
            raise AudiolmError(f"{tokens_dir}: these tokens do not fit the {name} stage ({e})") from None
    for i in range(len(shards)):
        utt = shards[i]
        yield TokenUtterance(str(utt.meta.get("kind", "")), np.asarray(utt.semantic), np.asarray(utt.acoustic))


@torch.inference_mode()
def tokenize_clip(lm, clip: Clip) -> TokenUtterance:
    hop = lm.codec.hop_length
    audio = clip.audio[:, : clip.audio.shape[-1] // hop * hop]
    codes = lm.codec.encode(audio[None].to(lm.codec.device), lm.sample_rate, kbps=lm._kbps())  # [1, Q, T]
    semantic = lm.semantic_tokenizer.encode(audio.to(lm.device), lm.sample_rate)  # [1, Ts]
    return TokenUtterance(clip.kind, semantic[0].cpu().numpy(), codes[0].T.cpu().numpy())


@torch.inference_mode()
def stage_cross_entropy(
    lm, utterances: Iterable[TokenUtterance], max_windows: int = 256, batch_size: int = 16
) -> dict[str, float | None]:
    """Mean next-token cross entropy (nats) of each stage over training-style windows."""
    utterances = list(utterances)
    result: dict[str, float | None] = {}
    for name, stage in lm.stages.items():
        model, config, layout = stage.model, stage.config, stage.layout
        window = layout.sequence_length() if name == "semantic" else config.window_frames
        examples: list = []
        for u in utterances:
            n = len(u.semantic) if name == "semantic" else u.acoustic.shape[0]
            if n < 2:
                continue
            for _ in range(max(1, math.ceil(n / window))):
                rng = np.random.default_rng(len(examples))
                examples.append(layout.training_example(u.semantic, u.acoustic[:, : max(config.n_q, 1)], rng))
        examples = examples[:max_windows]
        total, count = 0.0, 0
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            inputs = torch.from_numpy(np.stack([x for x, _ in chunk])).to(lm.device)  # [B, L]
            targets = torch.from_numpy(np.stack([y for _, y in chunk])).to(lm.device)  # [B, L]
            logits = model(inputs)  # [B, L, V]
            loss = F.cross_entropy(
                logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="sum"
            )
            total += float(loss)
            count += int((targets != IGNORE).sum())
        result[name] = total / count if count else None
    return result


# -- 2. acoustic consistency (the embedding and the scores: audiolm/evaluation/consistency.py) --------


@torch.inference_mode()
def codec_roundtrip(lm, audio: torch.Tensor) -> torch.Tensor:
    """Audio [1, N] -> the codec's reconstruction at the pipeline's levels [1, N'], N' = N cut
    to whole codec frames: real audio as a perfect LM would give it back."""
    hop = lm.codec.hop_length
    audio = audio[:, : audio.shape[-1] // hop * hop]
    codes = lm.codec.encode(audio[None].to(lm.codec.device), lm.sample_rate, kbps=lm._kbps())[:, : lm.n_q]
    return lm.codec.decode(codes)[0].cpu()[:, : audio.shape[-1]]


# -- 3. external judges -----------------------------------------------------------------------

DNSMOS_FIGURES = ("ovrl", "sig", "bak")
JUDGED_SETS = ("real", "real_codec")  # beside the generated draws; real_codec is the ceiling
FLOOR_NOISE_SEED = 12345


def _mean_dicts(dicts: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in dicts[0]:
        values = [d[key] for d in dicts]
        present = [v for v in values if v is not None]
        out[key] = None if len(present) < len(values) else float(np.mean(present))
    return out


def speaker_figures(prompts: np.ndarray, continuations: np.ndarray) -> dict[str, float | None]:
    """GE2E unit embeddings [N, 256] of the prompts and of their continuations (same order) ->
    {"top1": share of continuations whose closest prompt (cosine) is their own, "cosine_own",
    "cosine_others": mean cosine to the own prompt / to each other prompt}."""
    sim = torch.from_numpy(np.asarray(continuations, np.float64) @ np.asarray(prompts, np.float64).T)  # [N, N]
    own, others = own_and_others(sim)
    return {"top1": top1(sim), "cosine_own": own, "cosine_others": others}


def pairwise_figures(scores: np.ndarray) -> dict[str, float | None]:
    """A pairwise judge's scores [N, N] (row i = continuation i against every prompt) ->
    {"agreement": mean with the own prompt, "agreement_others": mean with another prompt}."""
    own, others = own_and_others(torch.from_numpy(np.asarray(scores, np.float64)))
    return {"agreement": own, "agreement_others": others}


def floor_noise(prompt: torch.Tensor, n_samples: int, seed: int) -> torch.Tensor:
    """White noise [1, n_samples] at the RMS level of `prompt` (the DNSMOS floor)."""
    rms = float(prompt.float().pow(2).mean().sqrt()) if prompt.numel() else 0.0
    gen = torch.Generator().manual_seed(seed)
    return max(rms, 1e-4) * torch.randn(1, n_samples, generator=gen)


def judge_speech(
    audio: dict[str, list[torch.Tensor]], generated: list[list[torch.Tensor]], sample_rate: int, seeds: list[int]
) -> dict[str, Any]:
    """GE2E speaker retrieval / similarity and DNSMOS of N speech prompts and their continuations.

    audio: {"prompt", "real", "real_codec"} -> N clips [1, n] each; generated: one list of N
    continuations per draw (its seed in `seeds`)."""

    def embeddings(clips):
        return np.stack([J.speaker_embedding(c, sample_rate) for c in clips])  # [N, 256]

    prompts = embeddings(audio["prompt"])
    speaker: dict[str, Any] = {}
    by_seed = [{"seed": s, **speaker_figures(prompts, embeddings(g))} for s, g in zip(seeds, generated)]
    speaker["generated"] = _mean_dicts([{k: v for k, v in d.items() if k != "seed"} for d in by_seed])
    speaker["generated_by_seed"] = by_seed
    for name in JUDGED_SETS:
        speaker[name] = speaker_figures(prompts, embeddings(audio[name]))
    ceiling_sim = embeddings(audio["real_codec"]) @ prompts.T
    speaker["floor"] = {
        "top1": shuffled_top1(torch.from_numpy(ceiling_sim.astype(np.float64))),
        "cosine_own": speaker["real_codec"]["cosine_others"],
    }

    def mos(clips):
        scores = [J.dnsmos(c, sample_rate) for c in clips]
        return {k: float(np.mean([s[k] for s in scores])) for k in DNSMOS_FIGURES}

    quality: dict[str, Any] = {"prompt": mos(audio["prompt"])}
    by_seed_mos = [{"seed": s, **mos(g)} for s, g in zip(seeds, generated)]
    quality["generated"] = _mean_dicts([{k: v for k, v in d.items() if k != "seed"} for d in by_seed_mos])
    quality["generated_by_seed"] = by_seed_mos
    for name in JUDGED_SETS:
        quality[name] = mos(audio[name])
    length = max(c.shape[-1] for c in audio["real_codec"])
    quality["floor"] = mos([floor_noise(p, length, FLOOR_NOISE_SEED + i) for i, p in enumerate(audio["prompt"])])
    return {"speaker": speaker, "dnsmos": quality}


def judge_music(
    audio: dict[str, list[torch.Tensor]], generated: list[list[torch.Tensor]], sample_rate: int, seeds: list[int]
) -> dict[str, Any]:
    """Key and tempo agreement of N music prompts with their continuations (arguments as
    `judge_speech`), with each clip's estimates (generated: the first draw's)."""
    profiles = {name: [MJ.key_profile(c, sample_rate) for c in audio[name]] for name in ("prompt", *JUDGED_SETS)}
    tempi = {name: [MJ.estimate_tempo(c, sample_rate) for c in audio[name]] for name in ("prompt", *JUDGED_SETS)}
    gen_profiles = [[MJ.key_profile(c, sample_rate) for c in g] for g in generated]
    gen_tempi = [[MJ.estimate_tempo(c, sample_rate) for c in g] for g in generated]
    keys = {name: [MJ.key_from_profile(p) for p in v] for name, v in profiles.items()}
    gen_keys = [[MJ.key_from_profile(p) for p in g] for g in gen_profiles]

    def key_figures(cont_keys):
        return pairwise_figures(np.array([[MJ.key_agreement(p, c) for p in keys["prompt"]] for c in cont_keys]))

    def profile_figures(cont_profiles):
        return pairwise_figures(
            np.array([[MJ.profile_correlation(p, c) for p in profiles["prompt"]] for c in cont_profiles])
        )

    def tempo_figures(cont_tempi):
        return pairwise_figures(np.array([[MJ.tempo_agreement(p, c) for p in tempi["prompt"]] for c in cont_tempi]))

    out: dict[str, Any] = {}
    for judge, figures, estimates, gen_estimates in (
        ("key", key_figures, keys, gen_keys),
        ("key_profile", profile_figures, profiles, gen_profiles),
        ("tempo", tempo_figures, tempi, gen_tempi),
    ):
        by_seed = [{"seed": s, **figures(g)} for s, g in zip(seeds, gen_estimates)]
        result: dict[str, Any] = {
            "generated": _mean_dicts([{k: v for k, v in d.items() if k != "seed"} for d in by_seed]),
            "generated_by_seed": by_seed,
        }
        for name in JUDGED_SETS:
            result[name] = figures(estimates[name])
        result["floor"] = {"agreement": result["real_codec"]["agreement_others"]}
        out[judge] = result
    out["estimates"] = {
        "key": {name: [MJ.key_name(k) for k in v] for name, v in {**keys, "generated": gen_keys[0]}.items()},
        "tempo": {name: [round(t, 1) for t in v] for name, v in {**tempi, "generated": gen_tempi[0]}.items()},
    }
    return out


# -- 4. resynthesis ---------------------------------------------------------------------------


@torch.inference_mode()
def resynthesize(lm, audio: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio [1, N] -> (resynthesis from its semantic tokens, codec round trip), each [1, N'] with
    N' = N cut to whole codec frames."""
    hop = lm.codec.hop_length
    audio = audio[:, : audio.shape[-1] // hop * hop]
    codes = lm.codec.encode(audio[None].to(lm.codec.device), lm.sample_rate, kbps=lm._kbps())[:, : lm.n_q]  # [1, Q, T]
    semantic = lm.semantic_tokenizer.encode(audio.to(lm.device), lm.sample_rate)  # [1, Ts]
    coarse_stage, fine_stage = lm.stages["coarse"], lm.stages["fine"]
    coarse = generate_coarse(
        coarse_stage.model,
        coarse_stage.config,
        semantic,
        None,
        codes.shape[-1],
        sampling=lm._sampling("coarse", None, None, None),
        seeds=[seed],
    )
    full = generate_fine(
        fine_stage.model, fine_stage.config, coarse, sampling=lm._sampling("fine", None, None, None), seeds=[seed]
    )
    resynth = lm.codec.decode(full.to(lm.codec.device))[0].cpu()  # [1, N']
    roundtrip = lm.codec.decode(codes)[0].cpu()
    return resynth[:, : audio.shape[-1]], roundtrip[:, : audio.shape[-1]]


# -- the whole evaluation ---------------------------------------------------------------------


def evaluate_continuation(
    lm,
    corpus: str | Path,
    *,
    split: str = "valid",
    tokens_dir: str | Path | None = None,
    n: int = 8,
    prompt_seconds: float = 3.0,
    seconds: float = 4.0,
    seed: int = 0,
    embedding: str = DEFAULT_EMBEDDING,
    ce_windows: int = 256,
    progress: bool = True,
    seeds: int = 1,
    judges: bool = True,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, Any]:
    """The report `format_table` prints: {"pipeline", "split", "n", ..., "kinds": {kind: {...}}}.

    seeds: continue every prompt this many times (clip i with seed + SEED_STRIDE * s + i) and
    report the generated continuation's consistency as the mean over draws, each draw's figures
    in `generated_by_seed`. At N ~ 10 one draw's rank score moves by about +-0.1.
    judges: run the external judges (section 3 of the module doc; their wheels: the eval extra).
    kinds: the kinds to evaluate (default both); the others are reported as None."""
    if n < 1:
        raise AudiolmError(f"n must be at least 1, got {n}")
    if seeds < 1:
        raise AudiolmError(f"seeds must be at least 1, got {seeds}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise AudiolmError(f"kinds must be among {', '.join(KINDS)}, got {', '.join(kinds) or 'none'}")
    if not (prompt_seconds > 0 and seconds > 0):
        raise AudiolmError("prompt_seconds and seconds must be positive")
    sr = lm.sample_rate
    real_min = min(seconds, MIN_REAL_SECONDS)
    shard_utts = list(shard_utterances(tokens_dir, split, lm)) if tokens_dir is not None else None
    kinds_report: dict[str, Any] = {}
    for kind in KINDS:
        if kind not in kinds:
            kinds_report[kind] = None
            continue
        items, clips = load_clips(corpus, split, kind, n, sr, prompt_seconds, seconds)
        if not clips:
            kinds_report[kind] = None
            continue
        steps = (3 + seeds + judges) * len(clips)  # cross entropy, draws, real, judges, resynthesis
        bar = tqdm(total=steps, desc=f"eval {kind}", unit="step", disable=not progress, dynamic_ncols=True)
        # 1. cross entropy
        if shard_utts is not None:
            utts = [u for u in shard_utts if u.kind == kind]
        else:
            utts = [tokenize_clip(lm, c) for c in clips]
        ce = stage_cross_entropy(lm, utts, max_windows=ce_windows) if utts else dict.fromkeys(lm.stages)
        bar.update(len(clips))
        # 2. acoustic consistency
        cut = int(prompt_seconds * sr)
        emb: dict[str, list[torch.Tensor]] = {"prompt": [], "real": [], "real_codec": []}
        generated: list[list[torch.Tensor]] = [[] for _ in range(seeds)]
        judged_audio: dict[str, list[torch.Tensor]] = {"prompt": [], "real": [], "real_codec": []}
        generated_audio: list[list[torch.Tensor]] = [[] for _ in range(seeds)]
        for i, clip in enumerate(clips):
            prompt, real = clip.audio[:, :cut], clip.audio[:, cut:]
            for s in range(seeds):
                new = lm.continue_audio(
                    prompt, sr, seconds=seconds, seed=seed + SEED_STRIDE * s + i, continuation_only=True
                )
                generated[s].append(embed(lm, new[0], embedding))  # new [1, 1, N]
                generated_audio[s].append(new[0].cpu())
                bar.update(1)
            real_codec = codec_roundtrip(lm, real)
            emb["prompt"].append(embed(lm, prompt, embedding))
            emb["real"].append(embed(lm, real, embedding))
            emb["real_codec"].append(embed(lm, real_codec, embedding))
            for name, wav in (("prompt", prompt), ("real", real), ("real_codec", real_codec)):
                judged_audio[name].append(wav)
            bar.update(1)
        prompts = torch.stack(emb["prompt"])  # [N, D]
        consistency: dict[str, Any] = {"chance": 1.0 / len(clips)}
        by_seed = [
            {
                "seed": seed + SEED_STRIDE * s,
                "top1": retrieval_accuracy(prompts, torch.stack(g)),
                "rank": rank_score(prompts, torch.stack(g)),
            }
            for s, g in enumerate(generated)
        ]
        consistency["generated"] = float(np.mean([d["top1"] for d in by_seed]))
        ranks = [d["rank"] for d in by_seed]
        consistency["generated_rank"] = None if None in ranks else float(np.mean(ranks))  # type: ignore[arg-type]
        consistency["generated_by_seed"] = by_seed
        for name in ("real", "real_codec"):
            consistency[name] = retrieval_accuracy(prompts, torch.stack(emb[name]))
            consistency[f"{name}_rank"] = rank_score(prompts, torch.stack(emb[name]))
        # 3. external judges
        judged = None
        if judges:
            draw_seeds = [seed + SEED_STRIDE * s for s in range(seeds)]
            judge = judge_speech if kind == "speech" else judge_music
            judged = judge(judged_audio, generated_audio, sr, draw_seeds)
            bar.update(len(clips))
        # 4. resynthesis
        resynth, roundtrip = [], []
        for i, clip in enumerate(clips):
            audio = clip.audio[:, : int((prompt_seconds + seconds) * sr)]
            out, codec_out = resynthesize(lm, audio, seed=seed + i)
            resynth.append(mel_distance(audio[:, : out.shape[-1]], out, sr))
            roundtrip.append(mel_distance(audio[:, : codec_out.shape[-1]], codec_out, sr))
            bar.update(1)
        bar.close()
        kinds_report[kind] = {
            "n": len(clips),
            "cross_entropy": ce,
            "cross_entropy_windows_from": "tokens" if shard_utts is not None else "clips",
            "speakers": [item.speaker for item in items],
            "consistency": consistency,
            "judges": judged,
            "resynthesis_mel": float(np.mean(resynth)),
            "codec_mel": float(np.mean(roundtrip)),
        }
    if all(v is None for v in kinds_report.values()):
        raise AudiolmError(
            f"{corpus}: no {split} clip is at least {prompt_seconds + real_min:g} s long "
            f"after its leading silence (prompt {prompt_seconds:g} s + {real_min:g} s of real continuation)"
        )
    return {
        "pipeline": lm.recipe.name,
        "split": split,
        "n": n,
        "prompt_seconds": prompt_seconds,
        "seconds": seconds,
        "seed": seed,
        "seeds": seeds,
        "embedding": embedding,
        "judges": judges,
        "tokens": str(tokens_dir) if tokens_dir is not None else None,
        "kinds": kinds_report,
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


WHO = {
    "generated": "generated continuation",
    "real": "real continuation",
    "real_codec": "real continuation through the codec (ceiling)",
}


def _judge_rows(row, seeds: int) -> None:
    """The external judges' rows of `format_table` (a judge's cell is "-" in the other kind)."""

    def cell(judge: str, get):
        def fn(k):
            j = k.get("judges")
            return "-" if not j or judge not in j else get(j[judge])

        return fn

    for name, label in WHO.items():
        row(f"GE2E speaker top-1: {label} finds its prompt", cell("speaker", lambda j, n=name: _fmt(j[n]["top1"], 2)))
    row(
        "GE2E speaker top-1: shuffled pairing (floor; = chance)", cell("speaker", lambda j: _fmt(j["floor"]["top1"], 2))
    )
    for name, label in WHO.items():
        row(
            f"GE2E cosine to own prompt / to other prompts: {label}",
            cell("speaker", lambda j, n=name: f"{_fmt(j[n]['cosine_own'])} / {_fmt(j[n]['cosine_others'])}"),
        )
    row(
        "GE2E cosine to own prompt: another clip's real continuation through the codec (floor)",
        cell("speaker", lambda j: _fmt(j["floor"]["cosine_own"])),
    )

    def mos(d):
        return " / ".join(_fmt(d[f], 2) for f in DNSMOS_FIGURES)

    row("DNSMOS OVRL / SIG / BAK: prompts", cell("dnsmos", lambda j: mos(j["prompt"])))
    for name, label in WHO.items():
        row(f"DNSMOS OVRL / SIG / BAK: {label}", cell("dnsmos", lambda j, n=name: mos(j[n])))
    row("DNSMOS OVRL / SIG / BAK: white noise at the prompt's level (floor)", cell("dnsmos", lambda j: mos(j["floor"])))
    row(
        "DNSMOS OVRL: generated continuation minus its prompt",
        cell("dnsmos", lambda j: f"{j['generated']['ovrl'] - j['prompt']['ovrl']:+.2f}"),
    )
    for judge, what in (
        ("key", "key agreement with the prompt (MIREX score)"),
        ("key_profile", "key-profile correlation with the prompt (graded key agreement)"),
        ("tempo", "tempo agreement with the prompt (8 %, octave errors forgiven)"),
    ):
        for name, label in WHO.items():
            row(f"{what}: {label}", cell(judge, lambda j, n=name: _fmt(j[n]["agreement"], 2)))
        row(
            f"{what}: another piece's real continuation through the codec (floor)",
            cell(judge, lambda j: _fmt(j["floor"]["agreement"], 2)),
        )
    if seeds > 1:

        def draws(k):
            j = k.get("judges")
            if not j:
                return "-"
            if "speaker" in j:
                return ", ".join(
                    f"{d['top1']:.2f} / {e['ovrl']:.2f}"
                    for d, e in zip(j["speaker"]["generated_by_seed"], j["dnsmos"]["generated_by_seed"])
                )
            return ", ".join(
                f"{d['agreement']:.2f} / {e['agreement']:.2f}"
                for d, e in zip(j["key"]["generated_by_seed"], j["tempo"]["generated_by_seed"])
            )

        row("judges of each draw: GE2E top-1 / DNSMOS OVRL (speech), key / tempo agreement (music)", draws)


def format_table(report: dict[str, Any]) -> str:
    """One markdown table: a row per figure, a column per kind."""
    kinds = report["kinds"]
    header = "| figure | " + " | ".join(KINDS) + " |"
    rows = [header, "|---|" + "---:|" * len(KINDS)]

    def row(label: str, get) -> None:
        cells = []
        for kind in KINDS:
            k = kinds.get(kind)
            cells.append("-" if k is None else get(k))
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    row("clips (N)", lambda k: str(k["n"]))
    source = "token shards" if report.get("tokens") else "the clips"
    for stage in STAGES:
        row(f"{stage} stage cross entropy (nats/token, {source})", lambda k, s=stage: _fmt(k["cross_entropy"].get(s)))
    who = {
        "generated": "generated continuation",
        "real": "real continuation",
        "real_codec": "real continuation through the codec",
    }
    for name, label in who.items():
        row(
            f"consistency top-1: {label} finds its prompt ({report['embedding']})",
            lambda k, n=name: _fmt(k["consistency"][n], 2),
        )
    row("consistency top-1: chance (1/N)", lambda k: _fmt(k["consistency"]["chance"], 2))
    for name, label in who.items():
        row(f"consistency rank score: {label} (chance 0.50)", lambda k, n=name: _fmt(k["consistency"][f"{n}_rank"], 2))
    seeds = report.get("seeds", 1)
    if seeds > 1:
        row(
            "consistency top-1 / rank score of each draw: generated continuation",
            lambda k: ", ".join(
                f"{d['top1']:.2f} / {_fmt(d['rank'], 2)}" for d in k["consistency"]["generated_by_seed"]
            ),
        )
    if report.get("judges"):
        _judge_rows(row, seeds)
    row("resynthesis from semantic tokens: mel distance (lower is better)", lambda k: _fmt(k["resynthesis_mel"]))
    row("codec round trip: mel distance", lambda k: _fmt(k["codec_mel"]))
    drawn = (
        f"seed {report['seed']}"
        if seeds == 1
        else (
            f"{seeds} draws per prompt, seeds {report['seed']} + {SEED_STRIDE} × draw; generated-continuation figures are their mean"
        )
    )
    title = (
        f"Continuation of pipeline `{report['pipeline']}` on the {report['split']} split: "
        f"{report['prompt_seconds']:g} s prompts continued by {report['seconds']:g} s ({drawn})."
    )
    return title + "\n\n" + "\n".join(rows) + "\n"
