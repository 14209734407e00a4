"""`audiolm corpus build`: the offline training corpus from espeak-ng, flite, Festival, MBROLA and fluidsynth.

Speech: espeak-ng (8 English base voices x every variant +m1..+f5, +klatt..., rate, pitch and
pitch range varied), flite (kal16, awb, rms, slt; speed and mean F0 varied), Festival's
non-English voices reading English text (speed varied) and, where installed, MBROLA's recorded
diphone voices of many languages reading English through espeak-ng (MBROLA_TRAINING_VOICES;
rate and pitch varied); `engines` keeps some of them only. Every utterance is also warped in
sample rate by 0.9-1.1, which moves pitch and formants together (a vocal-tract-length change),
and carries a phone alignment. Music: music21 scores rendered by fluidsynth through several
General MIDI soundfonts over ~70 instruments and 0.6-1.5x tempi.

The voices and soundfonts a corpus draws from (its inventory) are those installed when its
build starts; they are written to corpus.json and reused by every resume. Item `i` of each kind
is then a pure function of (seed, inventory, i): its split, voice or piece, soundfont,
instrument, tempo, text and window. Building walks i = 0, 1, 2, ... in chunks until the kind's
minutes are reached, so:
- a rebuild skips every finished file (a file is written atomically, the audio last, so a kill
  never leaves a half file that counts as done) and writes the same manifest — idempotent;
- a killed build resumes where it stopped; a build with more minutes extends a smaller one.

Audio is reproducible up to espeak-ng's timing: its wave generator carries state from one
utterance to the next, so phone boundaries jitter by a few milliseconds between runs (texts,
voices, parameters and splits do not change).

Split (disjoint by speaker and by piece): speech item i is valid when i % 10 == 3 and then
uses only valid voices — ESPEAK_VALID_VARIANTS (with any base voice), the flite voice rms,
FESTIVAL_VALID_VOICES and MBROLA_VALID_VOICES; train never uses them. Music items come
ITEMS_PER_PIECE per piece; piece slot j = i // ITEMS_PER_PIECE is valid when j % 10 == 1.

The held-out voices and soundfont (audiolm/training/data/reserved.py) never enter this corpus: the
inventory and every job are checked. `--heldout` builds the evaluation set from them alone
(every item valid): speech from the reserved Festival (and MBROLA, where installed) voices,
music through MuseScore_General on the valid pieces.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from audiolm.core.audio import audio_duration, check_sample_rate, normalize_loudness, resample, save_audio
from audiolm.core.checkpoint import atomic_write_json
from audiolm.core.corpus import CorpusItem, write_manifest, write_phones
from audiolm.core.errors import AudiolmError
from audiolm.training.data.festival_synth import FESTIVAL_VOICES, festival_synth, festival_voices
from audiolm.training.data.music_render import (
    INSTRUMENTS,
    SOUNDFONTS,
    _corpus_root,
    available_soundfonts,
    choose_window,
    find_heldout_soundfont,
    find_soundfont,
    music_pieces,
    piece_id,
    read_notes,
    render_midi,
    score_to_midi,
    write_excerpt_midi,
)
from audiolm.training.data.reserved import (
    RESERVED_FESTIVAL_VOICES,
    RESERVED_MBROLA_VOICES,
    is_reserved_soundfont,
    is_reserved_voice,
    refuse_reserved_soundfont,
    refuse_reserved_voice,
)
from audiolm.training.data.speech_synth import (
    ESPEAK_VARIANTS,
    ESPEAK_VOICES,
    FLITE_VOICES,
    EspeakEngine,
    flite_synth,
    require_program,
)
from audiolm.training.data.text_source import SentenceSource

BUILD_FILE = "corpus.json"
ERRORS_FILE = "build_errors.json"
STATS_FILE = "build_stats.json"
FORMAT_VERSION = 2
CHUNK = 8  # items planned together; a build covers whole chunks (independent of --jobs)
ITEMS_PER_PIECE = 4

ESPEAK_VALID_VARIANTS = ("m4", "f2", "Andy", "belinda", "iven3", "klatt3", "steph2", "travis", "robosoft3", "zac")
FLITE_VALID_VOICES = ("rms",)
FESTIVAL_VALID_VOICES = ("hy_fi_mv_diphone",)
# MBROLA voices (diphones of recorded speakers, many languages) that read English text through
# espeak-ng's mb-XX voices with at most 4 unknown diphones (each a short gap) in two test
# sentences; the others (ar, es, hb, jp, nl1, ...) lose dozens. Measured 2026-11-30 on Debian's
# mbrola-* packages (contrib/non-free). The reserved us1-3 / en1 are never among them.
MBROLA_TRAINING_VOICES = (
    "af1", "br1", "br2", "br3", "br4", "ca1", "ca2", "cr1", "cz2", "de1", "de2", "de3", "de4", "de5", "de6",
    "de7", "ee1", "fr1", "fr2", "fr3", "fr4", "fr5", "fr6", "fr7", "gr2", "hu1", "id1", "ir1", "it3", "it4",
    "lt1", "lt2", "nl2", "nl3", "pl1", "ro1", "sw1", "sw2",
)  # fmt: skip
MBROLA_VALID_VOICES = ("br3", "de6", "fr6", "ro1")
_FLITE_F0 = {"kal16": 105.0, "awb": 115.0, "rms": 100.0, "slt": 170.0}
# of the engines a corpus has (a corpus without MBROLA voices draws as before)
_ENGINE_WEIGHTS = {"espeak": 0.6, "flite": 0.2, "festival": 0.2, "mbrola": 0.4}
SPEECH_ENGINES = tuple(_ENGINE_WEIGHTS)
_ENGINE_KEYS = {"espeak": ("espeak_voices", "espeak_variants"), "flite": ("flite",), "festival": ("festival",)}
_ENGINE_PACKAGES = {
    "espeak": "espeak-ng",
    "flite": "flite",
    "festival": "festival festvox-italp16k",
    "mbrola": "mbrola mbrola-de1 mbrola-fr1 ... (Debian contrib / non-free)",
}


@dataclass
class Job:
    """Everything needed to render one corpus item (plain data: crosses process boundaries)."""

    id: str
    kind: str
    split: str
    path: str  # relative to the output folder
    speaker: str
    labels: dict[str, Any]
    text: str | None = None
    phones: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def item(self, duration: float, sample_rate: int, root: Path) -> CorpusItem:
        return CorpusItem(
            id=self.id,
            path=self.path,
            kind=self.kind,
            split=self.split,
            duration=duration,
            sample_rate=sample_rate,
            labels=self.labels,
            speaker=self.speaker,
            text=self.text,
            phones=self.phones,
            root=root,
        )


# ---------------------------------------------------------------------------------------------
# inventory: the voices and soundfonts a corpus draws from


def training_inventory(engines: list[str] | None = None) -> dict[str, list[str]]:
    """The training voices and soundfonts installed here (never a reserved one); `engines`
    (default: all) limits the speech engines drawn from. AudiolmError for an unknown engine or
    one requested by name with no voice installed."""
    inventory = {
        "espeak_voices": list(ESPEAK_VOICES),
        "espeak_variants": list(ESPEAK_VARIANTS),
        "flite": list(FLITE_VOICES),
        "festival": [v for v in festival_voices() if v not in RESERVED_FESTIVAL_VOICES],
        "mbrola": mbrola_voices(MBROLA_TRAINING_VOICES),
        "soundfonts": list(available_soundfonts()),
    }
    if engines is None:
        return inventory
    unknown = sorted(set(engines) - set(SPEECH_ENGINES))
    if unknown or not engines:
        raise AudiolmError(f"speech engines are {', '.join(SPEECH_ENGINES)}; got {', '.join(unknown) or 'none'}")
    for engine in engines:
        if not inventory[_ENGINE_KEYS.get(engine, (engine,))[-1]]:
            raise AudiolmError(f"no {engine} voice is installed here (apt-get install {_ENGINE_PACKAGES[engine]})")
    kept = {key for engine in engines for key in _ENGINE_KEYS.get(engine, (engine,))}
    return {key: voices for key, voices in inventory.items() if key in kept or key == "soundfonts"}


def inventory_engines(inventory: dict[str, list[str]]) -> list[str]:
    """The speech engines an inventory has voices for."""
    return [e for e in SPEECH_ENGINES if all(inventory.get(key) for key in _ENGINE_KEYS.get(e, (e,)))]


def mbrola_voices(candidates: tuple[str, ...] = RESERVED_MBROLA_VOICES) -> list[str]:
    """The `candidates` espeak-ng can speak through here (the mbrola program + the voice file);
    by default the reserved ones (the held-out set)."""
    if shutil.which("mbrola") is None:
        return []
    roots = (Path("/usr/share/mbrola"), Path("/usr/share/mbrola/voices"))
    return [v for v in candidates if any((r / v / v).is_file() or (r / v).is_file() for r in roots)]


def heldout_inventory() -> dict[str, list[str]]:
    """The reserved voices and soundfont installed here (the held-out evaluation set)."""
    return {
        "festival": [v for v in festival_voices() if v in RESERVED_FESTIVAL_VOICES],
        "mbrola": mbrola_voices(),
        "soundfonts": ["MuseScore_General"] if find_heldout_soundfont() is not None else [],
    }


def check_training_inventory(inventory: dict[str, list[str]]) -> None:
    """AudiolmError when a training inventory names a reserved voice or soundfont."""
    for base in inventory.get("espeak_voices", []):
        refuse_reserved_voice("espeak", base)
    for voice in inventory.get("festival", []):
        refuse_reserved_voice("festival", voice)
    for voice in inventory.get("mbrola", []):
        refuse_reserved_voice("mbrola", voice)
    paths = {name: path for name, path, _ in SOUNDFONTS}
    for name in inventory.get("soundfonts", []):
        if name not in paths or is_reserved_soundfont(paths[name]) or name.lower().startswith("musescore"):
            refuse_reserved_soundfont(paths.get(name, name))
            raise AudiolmError(f"unknown training soundfont {name!r}")


# ---------------------------------------------------------------------------------------------
# planning: item i -> Job


def speech_split(index: int) -> str:
    return "valid" if index % 10 == 3 else "train"


def _safe(name: str) -> str:
    return name.replace(" ", "_")


def plan_speech(index: int, seed: int, inventory: dict[str, list[str]], heldout: bool = False) -> Job:
    rng = np.random.default_rng([seed, 1, index])
    split = "valid" if heldout else speech_split(index)
    source = SentenceSource()
    text = " ".join(source.sentences(rng, 2 if rng.random() < 0.3 else 1))
    item_id = f"{'h' if heldout else 's'}{index:06d}"
    if heldout:  # every reserved voice equally often, near its natural rate, no warp
        voices = [("festival", v) for v in inventory.get("festival", [])] + [
            ("mbrola", v) for v in inventory.get("mbrola", [])
        ]
        if not voices:
            raise AudiolmError(
                "no held-out voice is installed (apt-get install festival festvox-kallpc16k "
                "festvox-kdlpc16k festvox-us-slt-hts)"
            )
        engine, voice = voices[int(rng.integers(len(voices)))]
        warp = 1.0
    else:
        valid = split == "valid"
        held = {
            "espeak": set(ESPEAK_VALID_VARIANTS),
            "flite": set(FLITE_VALID_VOICES),
            "festival": set(FESTIVAL_VALID_VOICES),
            "mbrola": set(MBROLA_VALID_VOICES),
        }
        pools = {
            "espeak": [v for v in inventory.get("espeak_variants", []) if (v in held["espeak"]) == valid],
            "flite": [v for v in inventory.get("flite", []) if (v in held["flite"]) == valid],
            "festival": [v for v in inventory.get("festival", []) if (v in held["festival"]) == valid],
            "mbrola": [v for v in inventory.get("mbrola", []) if (v in held["mbrola"]) == valid],
        }
        engines = [e for e in _ENGINE_WEIGHTS if pools[e] and (e != "espeak" or inventory.get("espeak_voices"))]
        if not engines:
            raise AudiolmError(
                f"this corpus' voices hold no {split} voice (its inventory: {inventory_engines(inventory)})"
            )
        weights = np.array([_ENGINE_WEIGHTS[e] for e in engines])
        engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
        voice = str(rng.choice(pools[engine]))
        warp = round(float(rng.uniform(0.9, 1.1)), 3)
    params: dict[str, Any]
    if engine == "espeak":
        base = str(rng.choice(inventory["espeak_voices"]))
        params = {
            "rate": int(rng.integers(130, 211)),
            "pitch": int(rng.integers(25, 76)),
            "range": int(rng.integers(20, 81)),
        }
        name = f"{base}+{voice}"
        labels = {"engine": "espeak", "voice": name, "base_voice": base, "variant": voice, **params}
    elif engine == "mbrola":  # through espeak-ng's mb-XX voices; held-out near their natural pitch
        rate, pitch = ((150, 191), (40, 61)) if heldout else ((140, 201), (30, 71))
        params = {
            "rate": int(rng.integers(*rate)),
            "pitch": int(rng.integers(*pitch)),
            "range": int(rng.integers(*pitch)),
        }
        name = f"mb-{voice}"
        labels = {"engine": "mbrola", "voice": name, **params}
    elif engine == "flite":
        lo, hi = (0.92, 1.08) if heldout else (0.85, 1.2)
        params = {
            "stretch": round(float(rng.uniform(lo, hi)), 3),
            "f0_mean": round(_FLITE_F0[voice] * float(rng.uniform(lo, hi)), 1),
        }
        name = voice
        labels = {"engine": "flite", "voice": voice, **params}
    else:
        lo, hi = (0.92, 1.08) if heldout else (0.8, 1.25)
        params = {"stretch": round(float(rng.uniform(lo, hi)), 3)}
        name = voice
        labels = {"engine": "festival", "voice": voice, "language": FESTIVAL_VOICES[voice][0], **params}
    labels["warp"] = warp
    speaker = f"{labels['engine']}:{name}"
    folder = _safe(f"{labels['engine']}-{name}")
    path = f"speech/{folder}/{item_id}.wav"
    return Job(
        item_id,
        "speech",
        split,
        path,
        speaker,
        labels,
        text,
        path[:-4] + ".phones.json",
        {"engine": engine, "voice": name, "warp": warp, "heldout": heldout, **params},
    )


def music_split(index: int) -> str:
    return "valid" if (index // ITEMS_PER_PIECE) % 10 == 1 else "train"


def plan_music(
    index: int,
    seed: int,
    pieces: list[str],
    inventory: dict[str, list[str]],
    max_seconds: float = 20.0,
    heldout: bool = False,
) -> Job:
    rng = np.random.default_rng([seed, 2, index])
    slot = index // ITEMS_PER_PIECE
    # held-out music plays the training corpus' valid pieces (slots 1, 11, 21, ...)
    piece = pieces[(10 * slot + 1 if heldout else slot) % len(pieces)]
    if not inventory.get("soundfonts"):
        raise AudiolmError(
            "no soundfont for this corpus' music"
            + (
                " (the held-out set needs MuseScore_General: apt-get install musescore-general-soundfont-small)"
                if heldout
                else ""
            )
        )
    soundfont = str(rng.choice(inventory["soundfonts"]))
    instrument = str(rng.choice(sorted(INSTRUMENTS)))
    stretch = round(float(rng.uniform(0.6, 1.5)), 3)
    length = round(float(rng.uniform(5.0, max(5.0, min(20.0, max_seconds)))), 2)  # seconds of audio
    item_id = f"{'hm' if heldout else 'm'}{index:06d}"
    labels = {
        "instrument": instrument,
        "program": INSTRUMENTS[instrument],
        "piece": piece_id(piece),
        "score": piece,
        "tempo_scale": round(1.0 / stretch, 3),
        "soundfont": soundfont,
    }
    split = "valid" if heldout else music_split(index)
    return Job(
        item_id,
        "music",
        split,
        f"music/{piece_id(piece)}/{item_id}.wav",
        f"{soundfont}:{instrument}",
        labels,
        params={
            "piece": piece,
            "program": INSTRUMENTS[instrument],
            "stretch": stretch,
            "seconds": length / stretch,
            "window_seed": [seed, 3, index],
            "soundfont": soundfont,
            "heldout": heldout,
        },
    )


# ---------------------------------------------------------------------------------------------
# rendering one job (runs in worker processes)


def _finish(samples: np.ndarray, from_rate: int, to_rate: int, out_wav: Path) -> float:
    """Resample, set the level (-23 dB RMS, peaks under 0.99), save atomically; returns seconds."""
    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).reshape(1, -1)
    wav = resample(wav, from_rate, to_rate)
    wav = normalize_loudness(wav, target_db=-23.0)
    save_audio(out_wav, wav, to_rate)
    return wav.shape[-1] / to_rate


def is_done(job: Job, out_dir: Path) -> bool:
    """A job is done when its audio exists (written last, atomically) and its phones file too."""
    return (out_dir / job.path).is_file() and (job.phones is None or (out_dir / job.phones).is_file())


def render_job(job: Job, out_dir: str | Path, sample_rate: int, cache_dir: str | Path | None = None) -> float:
    """Render `job` under `out_dir` unless its files exist; returns the audio's duration in seconds."""
    out_dir = Path(out_dir)
    wav_path = out_dir / job.path
    phones_path = out_dir / job.phones if job.phones else None
    if is_done(job, out_dir):
        return audio_duration(wav_path)
    if job.kind == "speech":
        return _render_speech(job, wav_path, phones_path, sample_rate)
    return _render_music(job, wav_path, sample_rate, Path(cache_dir or out_dir / ".cache"))


def _render_speech(job: Job, wav_path: Path, phones_path: Path | None, sample_rate: int) -> float:
    p = job.params
    assert job.text is not None, "a speech job carries its text"
    if not p.get("heldout"):
        refuse_reserved_voice(p["engine"], p["voice"])
    elif not is_reserved_voice(p["engine"], p["voice"]):
        raise AudiolmError(f"{job.id}: the held-out set takes only reserved voices, not {p['voice']!r}")
    if p["engine"] in ("espeak", "mbrola"):
        base, _, variant = p["voice"].partition("+")
        utt = EspeakEngine.shared().synth(job.text, base, variant or None, p["rate"], p["pitch"], p["range"])
        inventory = "espeak"
    elif p["engine"] == "flite":
        utt = flite_synth(job.text, p["voice"], p["stretch"], p["f0_mean"])
        inventory = "flite"
    else:
        utt = festival_synth(job.text, p["voice"], p["stretch"])
        inventory = "festival"
    # warp: read the samples as if recorded at rate * warp -> pitch and formants x warp, time / warp
    warp = float(p.get("warp", 1.0))
    source_rate = int(round(utt.sample_rate * warp))
    n_out = int(round(len(utt.samples) * sample_rate / source_rate))
    duration = n_out / sample_rate
    scale = utt.sample_rate / source_rate
    phones = [(s * scale, min(e * scale, duration), ph) for s, e, ph in utt.phones if s * scale < duration]
    if phones_path is not None:  # phones first, audio last: the audio file marks the item done
        write_phones(phones_path, inventory, phones)
    return _finish(utt.samples, source_rate, sample_rate, wav_path)


def _render_music(job: Job, wav_path: Path, sample_rate: int, cache_dir: Path) -> float:
    p = job.params
    if p.get("heldout"):
        soundfont = find_heldout_soundfont()
        if soundfont is None:
            raise AudiolmError("MuseScore_General is not installed: apt-get install musescore-general-soundfont-small")
    else:
        soundfont = find_soundfont(p.get("soundfont"))  # refuses a reserved one
        refuse_reserved_soundfont(soundfont)
    notes = read_notes(score_to_midi(p["piece"], cache_dir / "midi"))
    if len(notes) < 4:
        raise AudiolmError(f"{p['piece']}: too few notes for an excerpt")
    window = choose_window(notes, p["seconds"], np.random.default_rng(p["window_seed"]))
    render_rate = sample_rate if 8000 <= sample_rate <= 96000 else 44100
    with tempfile.TemporaryDirectory(prefix="audiolm-render-") as tmp:
        mid, raw = Path(tmp) / "excerpt.mid", Path(tmp) / "render.wav"
        seconds = write_excerpt_midi(notes, window, p["stretch"], p["program"], mid)
        render_midi(mid, raw, render_rate, seconds, soundfont)
        data, rate = sf.read(str(raw), dtype="float32", always_2d=True)
    samples = trim_trailing_silence(data.mean(axis=1), rate)
    if not np.abs(samples).max() > 1e-4:
        raise AudiolmError(f"{p['piece']}: the rendered excerpt is silent")
    return _finish(samples, rate, sample_rate, wav_path)


def trim_trailing_silence(samples: np.ndarray, rate: int, below_db: float = 50.0, keep_s: float = 0.3) -> np.ndarray:
    """Cut the tail after the last 50 ms frame within `below_db` of the loudest frame (+ `keep_s`).

    fluidsynth renders a few seconds of near-silence after the last release; it carries no
    music and would teach models that pieces end in silence.
    """
    hop = max(1, int(0.05 * rate))
    n_frames = len(samples) // hop
    if n_frames < 2:
        return samples
    frames = samples[: n_frames * hop].reshape(n_frames, hop)
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = np.nonzero(level > level.max() - below_db)[0]
    end = min(len(samples), (int(loud[-1]) + 1) * hop + int(keep_s * rate))
    return samples[:end]


def _render_safely(job: Job, out_dir: Path, sample_rate: int) -> tuple[float | None, str | None]:
    try:
        return render_job(job, out_dir, sample_rate), None
    except AudiolmError as e:
        return None, f"{job.id}: {e}"


# ---------------------------------------------------------------------------------------------
# the build


def check_tools(speech: bool, music: bool, heldout: bool = False, engines: list[str] | None = None) -> None:
    """Fail early, naming the apt package, when a synthesizer or soundfont is missing.
    `engines`: the speech engines the corpus draws from (default espeak and flite)."""
    engines = ["espeak", "flite"] if engines is None else engines
    if speech and heldout:
        require_program("festival", "festival")
    elif speech:
        if "espeak" in engines or "mbrola" in engines:
            require_program("espeak-ng", "espeak-ng")
            EspeakEngine.shared()  # the library itself (libespeak-ng1)
        if "flite" in engines:
            require_program("flite", "flite")
        if "mbrola" in engines:
            require_program("mbrola", "mbrola")
    if music:
        require_program("fluidsynth", "fluidsynth")
        if heldout:
            if find_heldout_soundfont() is None:
                raise AudiolmError(
                    "the held-out music needs MuseScore_General: "
                    "`apt-get install musescore-general-soundfont-small` (or --music-minutes 0)"
                )
        else:
            find_soundfont()
        _corpus_root()
        try:
            import mido  # noqa: F401 - an optional dependency (the `corpus` extra)
        except ImportError:
            raise AudiolmError("mido is not installed: `pip install mido` (the `corpus` extra)") from None


def _previous_build(out_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    build_file = out_dir / BUILD_FILE
    if build_file.is_file():
        try:
            previous = json.loads(build_file.read_text())
        except json.JSONDecodeError:
            raise AudiolmError(f"{build_file}: not valid JSON; remove the folder to rebuild") from None
        for key in ("sample_rate", "seed", "format_version", "heldout"):
            if previous.get(key, False) != settings[key]:
                raise AudiolmError(
                    f"{out_dir} holds a corpus built with {key}={previous.get(key, False)!r}, not {settings[key]!r}: "
                    "use another folder"
                )
        return previous
    if out_dir.exists() and any(out_dir.iterdir()):
        raise AudiolmError(f"{out_dir} exists and is not a corpus folder: choose an empty or new folder")
    return None


def build_corpus(
    out_dir: str | Path,
    speech_minutes: float,
    music_minutes: float,
    sample_rate: int = 24000,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    heldout: bool = False,
    inventory: dict[str, list[str]] | None = None,
    engines: list[str] | None = None,
) -> list[CorpusItem]:
    """Build (or resume, or extend) a corpus in `out_dir`; returns the manifest's items.

    heldout: build the evaluation set from the reserved voices and soundfont (all valid).
    inventory: the voices and soundfonts to draw from (default: what is installed, or what
    `out_dir`'s corpus.json recorded when its build began).
    engines: the speech engines of a new training corpus (default: every one installed); a
    resumed corpus keeps its own, and naming others is an error.
    """
    began, cpu_began = time.monotonic(), _cpu_seconds()
    out_dir = Path(out_dir)
    sample_rate = check_sample_rate(sample_rate, "--sample-rate")
    if speech_minutes < 0 or music_minutes < 0:
        raise AudiolmError("--speech-minutes and --music-minutes must be >= 0")
    settings = {"format_version": FORMAT_VERSION, "sample_rate": sample_rate, "seed": seed, "heldout": heldout}
    previous = _previous_build(out_dir, settings)
    if engines is not None and heldout:
        raise AudiolmError("the held-out set's voices are the reserved ones: it takes no --engines")
    if inventory is None:
        if previous and "inventory" in previous:
            inventory = previous["inventory"]
            if engines is not None and sorted(engines) != sorted(inventory_engines(inventory)):
                raise AudiolmError(
                    f"{out_dir} was started with the engines {', '.join(inventory_engines(inventory))}; "
                    "a resumed corpus keeps them (use another folder for others)"
                )
        else:
            inventory = heldout_inventory() if heldout else training_inventory(engines)
    if not heldout:
        check_training_inventory(inventory)
    check_tools(speech_minutes > 0, music_minutes > 0, heldout, inventory_engines(inventory))
    out_dir.mkdir(parents=True, exist_ok=True)
    requested = {"speech_minutes": speech_minutes, "music_minutes": music_minutes}
    atomic_write_json(out_dir / BUILD_FILE, {**settings, **requested, "inventory": inventory})

    pieces: list[str] = []
    if music_minutes > 0:
        pieces = music_pieces(seed)
    music_max = max(5.0, music_minutes * 60 / 3)  # small builds still get several excerpts

    def plan(kind: str, i: int) -> Job:
        if kind == "speech":
            return plan_speech(i, seed, inventory, heldout)
        return plan_music(i, seed, pieces, inventory, music_max, heldout)

    items: list[CorpusItem] = []
    errors: list[str] = []
    for orphan in out_dir.rglob(".*.tmp"):  # temp files of a build that was killed mid-write
        orphan.unlink(missing_ok=True)

    pool = None  # started on the first job that needs rendering: a no-op rebuild starts none
    completed = False
    try:
        for kind, minutes in (("speech", speech_minutes), ("music", music_minutes)):
            budget = minutes * 60.0
            bar = tqdm(total=int(np.ceil(budget)), desc=f"corpus {kind}", unit="s", disable=not progress)
            # jobs run ahead of the chunk being counted (a window of chunks in flight), results are
            # taken in order; the build stops after the first whole chunk that reaches the budget
            window: deque[tuple[list[Job], list[Any]]] = deque()
            total, next_chunk, failed_chunks = 0.0, 0, 0
            while total < budget:
                while len(window) < (2 * workers if pool or workers > 1 else 1):
                    jobs = [plan(kind, i) for i in range(next_chunk, next_chunk + CHUNK)]
                    next_chunk += CHUNK
                    if pool is None and workers > 1 and not all(is_done(job, out_dir) for job in jobs):
                        pool = multiprocessing.get_context("spawn").Pool(workers)  # libespeak-ng must not be forked
                    if pool is not None:
                        window.append(
                            (jobs, [pool.apply_async(_render_safely, (j, out_dir, sample_rate)) for j in jobs])
                        )
                    else:
                        window.append((jobs, [_render_safely(j, out_dir, sample_rate) for j in jobs]))
                jobs, pending = window.popleft()
                ok = 0
                for job, result in zip(jobs, pending):
                    duration, error = result.get() if hasattr(result, "get") else result
                    if error is not None:
                        errors.append(error)
                        continue
                    items.append(job.item(duration, sample_rate, out_dir))
                    total += duration
                    bar.update(min(int(total), bar.total) - bar.n)  # whole seconds of audio
                    ok += 1
                failed_chunks = 0 if ok else failed_chunks + 1
                if failed_chunks >= 3:
                    raise AudiolmError(f"corpus build: {CHUNK * 3} {kind} items in a row failed; last: {errors[-1]}")
            for _, pending in window:  # run-ahead jobs past the budget: let them finish (kept for an extension)
                for result in pending:
                    if hasattr(result, "wait"):
                        result.wait()
            bar.close()
        completed = True
    finally:
        if pool is not None:
            if completed:
                pool.close()
            else:  # interrupted or failed: stop the workers now
                pool.terminate()
            pool.join()
    write_manifest(out_dir, items)
    if errors:  # items that could not be rendered (a score music21 cannot convert...) are left out
        atomic_write_json(out_dir / ERRORS_FILE, {"skipped": errors})
    else:
        (out_dir / ERRORS_FILE).unlink(missing_ok=True)
    seconds = {k: round(sum(i.duration for i in items if i.kind == k), 1) for k in ("speech", "music")}
    atomic_write_json(
        out_dir / STATS_FILE,
        {
            "wall_s": round(time.monotonic() - began, 1),
            "cpu_s": round(_cpu_seconds() - cpu_began, 1),
            "workers": workers,
            "items": len(items),
            "audio_s": seconds,
            "speakers": len({i.speaker for i in items if i.kind == "speech"}),
            "skipped": len(errors),
            "note": "this run only: a resumed build counts the time since it resumed",
        },
    )
    return items


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the rendering workers, synthesizers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ---------------------------------------------------------------------------------------------
# single examples (bundled prompts)


def render_valid_speech(out_path: str | Path, k: int = 0, seed: int = 0, sample_rate: int = 24000) -> CorpusItem:
    """Render the k-th valid-split speech utterance of corpus `seed` to `out_path` (+ .phones.json).

    A voice the train split never contains, so a prompt made this way is unseen by models
    trained on that corpus. Returns its manifest item (paths relative to the output folder).
    An existing `out_path` (with its phones file) is kept, not rendered again.
    """
    out_path = Path(out_path)
    job = plan_speech(3 + 10 * k, seed, training_inventory())
    job.path, job.phones = out_path.name, out_path.with_suffix(".phones.json").name
    duration = render_job(job, out_path.parent, sample_rate)
    return job.item(duration, sample_rate, out_path.parent)


def render_valid_music(
    out_path: str | Path, k: int = 0, seed: int = 0, sample_rate: int = 24000, seconds: float = 10.0
) -> CorpusItem:
    """Render the k-th valid-split music excerpt of corpus `seed` (a held-out piece) to `out_path`.

    About `seconds` of audio (after the excerpt's tempo change); an existing `out_path` is kept.
    """
    out_path = Path(out_path)
    index = ITEMS_PER_PIECE * (1 + 10 * k)  # piece slots 1, 11, 21, ... are valid
    job = plan_music(index, seed, music_pieces(seed), training_inventory())
    job.params["seconds"] = float(seconds) / job.params["stretch"]  # `seconds` of audio after the tempo change
    job.path = out_path.name
    with_cache = out_path.parent / ".audiolm-midi-cache"
    try:
        duration = render_job(job, out_path.parent, sample_rate, cache_dir=with_cache)
    finally:
        shutil.rmtree(with_cache, ignore_errors=True)
    return job.item(duration, sample_rate, out_path.parent)
