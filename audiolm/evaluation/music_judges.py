"""Music judges: the key and the tempo of a clip, from librosa (the eval extra), and how well two
clips agree on them. The speech judges (GE2E, DNSMOS, F0) are in `audiolm.evaluation.judges`.

    estimate_key(wav, sr)        (tonic 0..11 from C, "major" | "minor"): mean CQT chroma
                                 (librosa.feature.chroma_cqt) correlated with the 24 rotations of
                                 the Krumhansl-Schmuckler key profiles, the best one wins
    key_profile(wav, sr)         the 24 correlations behind that choice ([major C..B, minor C..B])
    profile_correlation(a, b)    Pearson correlation of two clips' key profiles: a graded key
                                 agreement, -1..1 (on real music: ~0.8 for a piece's next
                                 seconds, ~0.3-0.4 for another piece)
    key_agreement(a, b)          MIREX key score, made symmetric: 1 same key, 0.5 a fifth apart
                                 (same mode), 0.3 relative major / minor, 0.2 parallel, else 0
    estimate_tempo(wav, sr)      beats per minute of librosa.beat.beat_track (0 when it finds
                                 no beat)
    tempo_agreement(a, b)        1 when the tempi agree within 8 % (MIREX' tolerance), also
                                 after doubling or halving one (beat trackers' octave errors), else 0

Clips are analysed mono at 16 kHz (as every judge here). librosa is imported where it is first
needed; its beat tracker's first call in a process costs seconds (numba loads its cache).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from audiolm.core.audio import mono_float32
from audiolm.evaluation.judges import JUDGE_RATE, JudgeUnavailable

__all__ = [
    "KEY_NAMES",
    "estimate_key",
    "estimate_tempo",
    "key_agreement",
    "key_name",
    "key_profile",
    "profile_correlation",
    "tempo_agreement",
]

# Krumhansl & Kessler's probe-tone profiles (Krumhansl 1990), as used by the Krumhansl-Schmuckler
# key-finding algorithm; index 0 = the tonic
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
TEMPO_TOLERANCE = 0.08  # MIREX tempo estimation tolerance
TEMPO_FACTORS = (1.0, 2.0, 0.5)

Key = tuple[int, str]  # (tonic pitch class, mode)


@functools.lru_cache(maxsize=1)
def _librosa():
    try:
        import librosa  # optional dependency (eval extra)
    except ImportError as e:
        raise JudgeUnavailable(f"key and tempo need librosa (pip install 'audiolm[eval]'): {e}") from None
    return librosa


def _mono(wav, sample_rate: int) -> np.ndarray:
    return mono_float32(wav, sample_rate, JUDGE_RATE)


def key_scores(chroma: np.ndarray) -> np.ndarray:
    """chroma [12] (C..B) -> Pearson correlations [2, 12] with the major (row 0) and minor (row 1)
    profiles rotated to each tonic (column)."""
    scores = np.zeros((2, 12))
    for row, profile in enumerate((MAJOR_PROFILE, MINOR_PROFILE)):
        for tonic in range(12):
            scores[row, tonic] = np.corrcoef(chroma, np.roll(profile, tonic))[0, 1]
    return scores


def profile_from_chroma(chroma: np.ndarray) -> np.ndarray | None:
    """chroma [12] -> its key profile [24] (`key_scores` flattened); None when the chroma is
    flat (no pitch)."""
    chroma = np.asarray(chroma, dtype=np.float64)
    if chroma.shape != (12,) or not np.all(np.isfinite(chroma)) or np.ptp(chroma) <= 1e-9:
        return None
    return key_scores(chroma).ravel()


def key_from_profile(profile: np.ndarray | None) -> Key | None:
    """The best of the 24 keys of a key profile [24] (None stays None)."""
    if profile is None:
        return None
    row, tonic = divmod(int(np.argmax(profile)), 12)
    return tonic, ("major", "minor")[row]


def key_from_chroma(chroma: np.ndarray) -> Key | None:
    """The Krumhansl-Schmuckler key of a chroma vector [12]; None when it is flat (no pitch)."""
    return key_from_profile(profile_from_chroma(chroma))


def key_name(key: Key | None) -> str:
    return "none" if key is None else f"{KEY_NAMES[key[0]]} {key[1]}"


def estimate_key(wav, sample_rate: int) -> Key | None:
    """(tonic, mode) of a clip from its mean CQT chroma; None for silence."""
    return key_from_profile(key_profile(wav, sample_rate))


def profile_correlation(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Pearson correlation of two key profiles [24] (0 when either clip has none)."""
    if a is None or b is None:
        return 0.0
    r = float(np.corrcoef(a, b)[0, 1])
    return r if math.isfinite(r) else 0.0


def key_profile(wav, sample_rate: int) -> np.ndarray | None:
    """A clip's key profile [24]: the correlations of its mean CQT chroma with the major (first
    12, tonic C..B) and minor (last 12) Krumhansl-Schmuckler profiles; None for silence."""
    audio = _mono(wav, sample_rate)
    if audio.size == 0 or not np.any(audio):
        return None
    with warnings.catch_warnings():  # a clip shorter than the CQT's longest filter is analysed all the same
        warnings.filterwarnings("ignore", message="n_fft=.* is too large for input signal")
        warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty frequency set")  # no pitch
        chroma = _librosa().feature.chroma_cqt(y=audio, sr=JUDGE_RATE)  # [12, frames]
    return profile_from_chroma(chroma.mean(axis=1))


def key_agreement(a: Key | None, b: Key | None) -> float:
    """MIREX key score between two keys, symmetric: 1 same, 0.5 a perfect fifth above or below
    in the same mode, 0.3 relative (C major / A minor), 0.2 parallel (C major / C minor), else 0
    (also when either has no key)."""
    if a is None or b is None:
        return 0.0
    (ta, ma), (tb, mb) = a, b
    if a == b:
        return 1.0
    if ma == mb and (tb - ta) % 12 in (5, 7):
        return 0.5
    if ma != mb:
        major, minor = (ta, tb) if ma == "major" else (tb, ta)
        if (major - 3) % 12 == minor:
            return 0.3
        if major == minor:
            return 0.2
    return 0.0


def estimate_tempo(wav, sample_rate: int) -> float:
    """Tempo (beats per minute) of librosa's beat tracker; 0 when it finds no beat."""
    audio = _mono(wav, sample_rate)
    if audio.size == 0 or not np.any(audio):
        return 0.0
    tempo, _ = _librosa().beat.beat_track(y=audio, sr=JUDGE_RATE)
    tempo = float(np.atleast_1d(tempo)[0])
    return tempo if math.isfinite(tempo) else 0.0


def tempo_agreement(a: float, b: float, tolerance: float = TEMPO_TOLERANCE) -> float:
    """1.0 when tempo b is within `tolerance` (relative) of a, a doubled or a halved; else 0.0
    (also when either is 0: no beat)."""
    if not (a > 0 and b > 0):
        return 0.0
    return float(any(abs(b - a * f) <= tolerance * a * f for f in TEMPO_FACTORS))
