"""Acoustic consistency: does a continuation sound like its own prompt (same voice, same instrument)?

N prompts and their N continuations are each embedded as one vector; continuation i "finds its
prompt" when, of the N prompts, prompt i is the most similar. Chance is 1/N. Two figures:

- `retrieval_accuracy`: the share of continuations whose most similar prompt is their own (ties
  share the hit, so N identical items score exactly 1/N);
- `rank_score`: for each continuation, the share of the other N-1 prompts that are less similar
  than its own (ties count half), averaged: chance 0.5, perfect 1. It uses every pair, not only
  the top one, so with N of 10-20 it is far less noisy than top-1.

The same set scores on any pairwise judge's [N, N] matrix (row i = continuation i against
every prompt; the external judges of `audiolm eval continuation` use them): `top1`,
`shuffled_top1` (the expectation of top-1 over a uniformly random pairing: chance, the floor)
and `own_and_others` (the mean score with the own prompt, and with another prompt: the
shuffled-pairing floor of the first).

Embeddings (`embed`), utterance-level statistics over frames, so that timbre (voice,
instrument) rather than content decides:

- "logmel-stats" (default): mean and standard deviation over active frames of 64-band log-mel
  frames at 100 Hz (16 kHz audio) -> [128]. Means carry the spectral envelope (vocal tract,
  instrument body), standard deviations how much it moves.
- "mfcc-stats": the same statistics of 13 MFCCs + deltas + delta-deltas -> [78].
- "codec-stats": the same statistics of the codec encoder's frames -> [2 * D].
- "codec": the mean codec-encoder frame -> [D].
- "semantic": the mean frame of the semantic tokenizer's source features.

Active frames are those within 40 dB of the clip's loudest frame, so pauses do not count.
Before the cosine similarity each side (the N prompts; the N continuations) is centred on its
own set mean. Without it the direction every clip shares dominates the cosine, and generated
audio, which always comes out of the codec, sits apart from raw prompts as a group; with it,
what is compared is how an item differs from the others of its set.

The default (centred logmel-stats) was chosen on real continuations of the corpus (prompt = a
clip's first 3 s, continuation = its next 4 s, one clip per voice / instrument), raw and passed
through the codec (what a perfect LM would give back): it retrieves its prompt best on average
over speech and music. Centring only, not dividing by the set standard deviation as well: full
standardization gives many noisy dimensions the weight of the few informative ones. Figures:
BENCHMARKS.md, "Choosing the embedding on real continuations".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audiolm.core.audio import resample
from audiolm.core.errors import AudiolmError
from audiolm.models.semantic.spectral import ANALYSIS_HOP, analysis_frames, log_mel, mfcc

EMBEDDINGS = ("logmel-stats", "mfcc-stats", "codec-stats", "codec", "semantic")
DEFAULT_EMBEDDING = "logmel-stats"
ACTIVE_DB = 40.0  # frames quieter than the loudest by more than this are left out of the statistics
FEATURE_RATE = 16000  # mfcc / log-mel statistics are computed at 16 kHz
_TIE = 1e-6


def active_mask(energy: torch.Tensor, below_peak_db: float = ACTIVE_DB) -> torch.Tensor:
    """energy [T] (power, >= 0) -> bool [T]: frames within `below_peak_db` of the loudest.
    All frames when the clip is silent throughout (nothing to choose from)."""
    if energy.numel() == 0 or float(energy.max()) <= 0:
        return torch.ones_like(energy, dtype=torch.bool)
    return energy >= energy.max() * 10 ** (-below_peak_db / 10)


def frame_statistics(frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """frames [T, D] (rows where mask [T] is True) -> [2D]: per-dimension mean, then std."""
    if mask is not None and bool(mask.any()):
        frames = frames[mask]
    if frames.shape[0] == 0:
        raise AudiolmError("cannot embed a clip shorter than one analysis frame")
    mean = frames.mean(0)
    std = frames.std(0, unbiased=False)
    return torch.cat([mean, std])


def _spectral_frames(audio: torch.Tensor, sample_rate: int, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    """audio [1, N] -> (frames [T, D], energy [T]) at 100 Hz from 16 kHz audio."""
    wav = audio.float().cpu()
    if sample_rate != FEATURE_RATE:
        wav = resample(wav, sample_rate, FEATURE_RATE)
    if wav.shape[-1] < ANALYSIS_HOP:
        raise AudiolmError("cannot embed a clip shorter than one analysis frame (10 ms)")
    energy = analysis_frames(wav, ANALYSIS_HOP).sum(-1)[0]  # [T]
    if how == "mfcc-stats":
        frames = mfcc(wav, frame_rate=FEATURE_RATE // ANALYSIS_HOP)[0]  # [T, 39]
    else:
        frames = log_mel(wav, ANALYSIS_HOP, n_mels=64)[0]  # [T, 64]
    return frames, energy


@torch.inference_mode()
def embed(lm, audio: torch.Tensor, how: str = DEFAULT_EMBEDDING) -> torch.Tensor:
    """Audio [1, N] at the pipeline's rate (`lm.sample_rate`) -> one vector [D] (see module doc).
    `lm` is only used by the codec and semantic embeddings."""
    if how not in EMBEDDINGS:
        raise AudiolmError(f"unknown embedding {how!r}; choose one of {', '.join(EMBEDDINGS)}")
    if how in ("mfcc-stats", "logmel-stats"):
        frames, energy = _spectral_frames(audio, lm.sample_rate, how)
        return frame_statistics(frames, active_mask(energy))
    if how in ("codec", "codec-stats"):
        hop = lm.codec.hop_length
        wav = audio[:, : audio.shape[-1] // hop * hop]
        if wav.shape[-1] == 0:
            raise AudiolmError("cannot embed a clip shorter than one codec frame")
        feats = lm.codec.model.encoder(wav[None].to(lm.codec.device))[0].T.float().cpu()  # [T, D]
        if how == "codec":
            return feats.mean(0)
        energy = wav.float().cpu().reshape(-1, hop).square().mean(-1)[: feats.shape[0]]  # [T]
        return frame_statistics(feats, active_mask(energy))
    feats = lm.semantic_tokenizer.features(audio.to(lm.device), lm.sample_rate)  # [1, T, D]
    return feats.mean(1)[0].float().cpu()


def center(x: torch.Tensor) -> torch.Tensor:
    """x [N, D] -> [N, D] minus the set mean (rows that were equal stay equal)."""
    return x - x.mean(0, keepdim=True)


def similarity(prompts: torch.Tensor, continuations: torch.Tensor, centred: bool = True) -> torch.Tensor:
    """prompts, continuations [N, D] -> cosine similarity [N, N]: row i = continuation i against
    every prompt. With `centred`, each side is centred on its own set mean first."""
    if prompts.shape != continuations.shape or prompts.ndim != 2:
        raise AudiolmError(
            f"prompts and continuations must both be [N, D], got {tuple(prompts.shape)} and "
            f"{tuple(continuations.shape)}"
        )
    p, c = prompts.double(), continuations.double()
    if centred:
        p, c = center(p), center(c)
    return F.normalize(c, dim=-1) @ F.normalize(p, dim=-1).T


def retrieval_accuracy(prompts: torch.Tensor, continuations: torch.Tensor, centred: bool = True) -> float:
    """The share of continuations whose most similar prompt is their own, among all N (chance
    1/N). A continuation tied between k prompts, its own among them, counts 1/k."""
    return top1(similarity(prompts, continuations, centred))


def hits(sim: torch.Tensor) -> torch.Tensor:
    """sim [N, N] (row i = continuation i against every prompt) -> [N, N]: 1/k where the prompt
    is one of continuation i's k most similar (tied) prompts, else 0. Rows sum to 1."""
    sim = torch.as_tensor(sim, dtype=torch.float64)
    top = (sim >= sim.max(dim=-1, keepdim=True).values - _TIE).double()
    return top / top.sum(-1, keepdim=True)


def top1(sim: torch.Tensor) -> float:
    """Retrieval accuracy from a similarity matrix [N, N] (row i = continuation i): the share of
    continuations whose most similar prompt is their own, ties shared."""
    return float(hits(sim).diagonal().mean())


def shuffled_top1(sim: torch.Tensor) -> float:
    """The floor of `top1`: its expectation when the continuations are paired with the prompts
    by a uniformly random permutation, computed exactly (continuation j is the partner of prompt
    i in 1/N of all pairings). Every row of `hits` sums to 1, so this is 1/N: chance."""
    return float(hits(sim).mean())


def own_and_others(scores: torch.Tensor) -> tuple[float, float | None]:
    """scores [N, N] of a pairwise judge (row i = continuation i against every prompt) -> (mean
    score of a continuation with its own prompt, mean with another prompt; None for N < 2).
    The second is the shuffled-pairing floor: another prompt's continuation in its place."""
    scores = torch.as_tensor(scores, dtype=torch.float64)
    n = scores.shape[0]
    if scores.ndim != 2 or scores.shape[1] != n or n == 0:
        raise AudiolmError(f"pairwise scores must be [N, N] with N >= 1, got {tuple(scores.shape)}")
    own = float(scores.diagonal().mean())
    others = None if n < 2 else float((scores.sum() - scores.diagonal().sum()) / (n * (n - 1)))
    return own, others


def rank_score(prompts: torch.Tensor, continuations: torch.Tensor, centred: bool = True) -> float | None:
    """Mean over continuations of the share of other prompts less similar than its own (ties
    half): chance 0.5, perfect 1.0. None for N < 2 (nothing to rank against)."""
    n = prompts.shape[0]
    if n < 2:
        return None
    sim = similarity(prompts, continuations, centred)  # [N, N]
    own = sim.diagonal()[:, None]  # [N, 1]
    below = (sim < own - _TIE).double()
    tied = ((sim - own).abs() <= _TIE).double()
    others = 1 - torch.eye(n, dtype=torch.float64)
    return float((((below + 0.5 * tied) * others).sum(-1) / (n - 1)).mean())
