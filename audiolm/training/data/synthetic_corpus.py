"""A tiny synthetic corpus in the real corpus format, made with numpy alone (no synthesizers).

Tests everywhere need a few seconds of speech-like and music-like audio with labels and phone
alignments; building it from espeak-ng / flite / fluidsynth takes too long and needs system
packages, so this writes stand-ins in milliseconds:

- "speech": a glottal-pulse-like harmonic buzz whose pitch glides per voice, shaped by formant
  envelopes that move from phone to phone (vowels) with noise bursts (fricatives), and a
  phones file listing those segments;
- "music": notes built from harmonic partials with attack/decay envelopes, one timbre per
  "instrument", one melody per "piece".

The split is disjoint by voice (speech) and by piece (music), like the real builder's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audiolm.core.audio import normalize_loudness, save_audio
from audiolm.core.corpus import CorpusItem, write_manifest, write_phones

# (F1, F2, F3) in Hz for a few vowels; None marks a fricative (shaped noise)
_PHONES: dict[str, tuple[int, int, int] | None] = {
    "aa": (730, 1090, 2440),
    "iy": (270, 2290, 3010),
    "uw": (300, 870, 2240),
    "eh": (530, 1840, 2480),
    "ao": (570, 840, 2410),
    "s": None,
    "f": None,
    "sh": None,
}
_INSTRUMENTS = {  # relative amplitudes of the first partials
    "synth-flute": [1.0, 0.3, 0.1, 0.05],
    "synth-reed": [1.0, 0.0, 0.6, 0.0, 0.4, 0.0, 0.25],
    "synth-string": [1.0, 0.7, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15],
}


def _speech(rng: np.random.Generator, f0: float, seconds: float, sr: int) -> tuple[np.ndarray, list]:
    n = int(seconds * sr)
    n_phones = 10
    names = list(_PHONES)
    inner = rng.choice(names, size=n_phones - 2).tolist()
    # segment boundaries: short pauses at both ends, random lengths inside
    cuts = np.sort(rng.uniform(0.08, 0.92, size=n_phones - 1)) * n
    bounds = np.concatenate([[0], cuts.astype(int), [n]])
    labels = ["pau"] + inner + ["pau"]
    t = np.arange(n) / sr
    pitch = f0 * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    out = np.zeros(n)
    for (start, end), name in zip(zip(bounds[:-1], bounds[1:]), labels):
        if end <= start or name == "pau":
            continue
        seg = slice(start, end)
        ramp = np.hanning(end - start)
        formants = _PHONES[name]
        if formants is None:  # fricative: differentiated (high-passed) noise
            noise = np.diff(rng.normal(size=end - start + 1)) * 0.15
            out[seg] += noise * ramp
            continue
        f1, f2, f3 = formants
        for k in range(1, int(5000 / f0)):
            freq = k * pitch[seg]
            amp = sum(np.exp(-(((freq - f) / (0.08 * f + 60)) ** 2)) / (i + 1) for i, f in enumerate((f1, f2, f3)))
            out[seg] += amp / k**0.5 * np.sin(k * phase[seg]) * ramp
    phones = [(b0 / sr, b1 / sr, name) for b0, b1, name in zip(bounds[:-1], bounds[1:], labels) if b1 > b0]
    return out, phones


def _music(rng: np.random.Generator, partials: list[float], seconds: float, sr: int) -> np.ndarray:
    n = int(seconds * sr)
    out = np.zeros(n)
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    root = int(rng.integers(55, 67))  # MIDI note
    start = 0
    while start < n:
        length = int(sr * rng.choice([0.125, 0.25, 0.375, 0.5]))
        length = min(length, n - start)
        note = root + scale[int(rng.integers(len(scale)))]
        freq = 440.0 * 2 ** ((note - 69) / 12)
        t = np.arange(length) / sr
        env = np.minimum(t / 0.01, 1.0) * np.exp(-3.0 * t)
        env[-min(200, length) :] *= np.linspace(1, 0, min(200, length))  # note-off
        tone = sum(
            a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(partials) if freq * (k + 1) < sr / 2
        )
        out[start : start + length] += env * tone
        start += length
    return out


def make_synthetic_corpus(
    out_dir: str | Path, n_speech: int = 8, n_music: int = 6, sample_rate: int = 24000, seed: int = 0
) -> Path:
    """Write a small synthetic corpus (1-2 s items) to `out_dir`; returns `out_dir`.

    Speech: 6 voices alternating between the 'flite' and 'espeak' phone inventories; voices
    4 and 5 (one of each) form the valid split. Music: one piece per item, instruments cycling;
    the last piece is valid.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    items: list[CorpusItem] = []
    n_voices = 6
    for i in range(n_speech):
        v = i % n_voices
        engine = "flite" if v % 2 == 0 else "espeak"
        voice = f"synth{v}"
        f0 = 95.0 + 35.0 * v
        seconds = float(rng.uniform(1.0, 2.0))
        samples, phones = _speech(rng, f0, seconds, sample_rate)
        wav = normalize_loudness(_as_tensor(samples), target_db=-23.0)
        rel = f"speech/{engine}-{voice}/s{i:04d}.wav"
        save_audio(out_dir / rel, wav, sample_rate)
        phones_rel = rel[:-4] + ".phones.json"
        write_phones(out_dir / phones_rel, engine, phones)
        items.append(
            CorpusItem(
                id=f"s{i:04d}",
                path=rel,
                kind="speech",
                split="valid" if v >= 4 else "train",
                duration=wav.shape[-1] / sample_rate,
                sample_rate=sample_rate,
                labels={"engine": engine, "voice": voice, "f0": f0},
                speaker=f"{engine}:{voice}",
                text=" ".join(p for _, _, p in phones),
                phones=phones_rel,
            )
        )
    names = list(_INSTRUMENTS)
    for j in range(n_music):
        instrument = names[j % len(names)]
        piece = f"piece{j}"
        seconds = float(rng.uniform(1.0, 2.0))
        wav = normalize_loudness(_as_tensor(_music(rng, _INSTRUMENTS[instrument], seconds, sample_rate)))
        rel = f"music/{piece}/m{j:04d}.wav"
        save_audio(out_dir / rel, wav, sample_rate)
        items.append(
            CorpusItem(
                id=f"m{j:04d}",
                path=rel,
                kind="music",
                split="valid" if j == n_music - 1 else "train",
                duration=wav.shape[-1] / sample_rate,
                sample_rate=sample_rate,
                labels={"instrument": instrument, "piece": piece},
                speaker=f"gm:{instrument}",
                text=None,
                phones=None,
            )
        )
    write_manifest(out_dir, items)
    return out_dir


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32))[None]  # [1, N]
