"""`audiolm corpus build`: the offline training corpus from espeak-ng, flite and fluidsynth.

Item `i` of each kind is a pure function of (seed, i): its split, voice or piece, instrument,
tempo, text and window. Building walks i = 0, 1, 2, ... in chunks until the kind's minutes are
reached, so:
- a rebuild skips every finished file (a file is written atomically, the audio last, so a kill
  never leaves a half file that counts as done) and writes the same manifest — idempotent;
- a killed build resumes where it stopped; a build with more minutes extends a smaller one.

Audio is reproducible up to espeak-ng's timing: its wave generator carries state from one
utterance to the next, so phone boundaries jitter by a few milliseconds between runs (texts,
voices, parameters and splits do not change).

Split (disjoint by speaker and by piece): speech item i is valid when i % 10 == 3 and then
uses only held-out voices — espeak-ng variants +m4 and +f2 (with any base voice) and the
flite voice rms; train never uses them. Music items come two per piece; piece slot j = i // 2
is valid when j % 10 == 1.
"""

from __future__ import annotations

import tempfile
import json
import multiprocessing
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf
import torch
import numpy as np

from audiolm.core.audio import audio_duration, check_sample_rate, normalize_loudness, resample, save_audio
from audiolm.core.checkpoint import atomic_write_json
from audiolm.core.corpus import CorpusItem, write_manifest, write_phones
from audiolm.core.errors import AudiolmError
from audiolm.training.data.music_render import (
    _corpus_root, choose_window, find_soundfont, INSTRUMENTS, music_pieces, piece_id, read_notes,
    render_midi, score_to_midi, write_excerpt_midi,
)
from audiolm.training.data.speech_synth import (
    ESPEAK_VARIANTS, ESPEAK_VOICES, EspeakEngine, flite_synth, FLITE_VOICES, require_program,
)
from audiolm.training.data.text_source import SentenceSource
from tqdm import tqdm

BUILD_FILE = "corpus.json"
ERRORS_FILE = "build_errors.json"
CHUNK = 4  # items planned and rendered together; a build covers whole chunks

ESPEAK_VALID_VARIANTS = ("m4", "f2")
FLITE_VALID_VOICES = ("rms",)
_FLITE_F0 = {"kal16": 105.0, "awb": 115.0, "rms": 100.0, "slt": 170.0}


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
            id=self.id, path=self.path, kind=self.kind, split=self.split, duration=duration,
            sample_rate=sample_rate, labels=self.labels, speaker=self.speaker, text=self.text, phones=self.phones,
            root=root,
        )


# ---------------------------------------------------------------------------------------------
# planning: item i -> Job


def speech_split(index: int) -> str:
    return "valid" if index % 10 == 3 else "train"


def plan_speech(index: int, seed: int) -> Job:
    rng = np.random.default_rng([seed, 1, index])
    split = speech_split(index)
    source = SentenceSource()
    text = " ".join(source.sentences(rng, 2 if rng.random() < 0.3 else 1))
    item_id = f"s{index:06d}"
    if rng.random() < 0.55:
        held = set(ESPEAK_VALID_VARIANTS)
        variants = [v for v in ESPEAK_VARIANTS if (v in held) == (split == "valid")]
        voice = str(rng.choice(ESPEAK_VOICES))
        variant = str(rng.choice(variants))
        params = {
            "rate": int(rng.integers(130, 211)), "pitch": int(rng.integers(25, 76)), "range": int(rng.integers(20, 81))
        }
        name = f"{voice}+{variant}"
        labels = {"engine": "espeak", "voice": name, "base_voice": voice, "variant": variant, **params}
        speaker = f"espeak:{name}"
        folder = f"espeak-{name}"
    else:
        voices = [v for v in FLITE_VOICES if (v in FLITE_VALID_VOICES) == (split == "valid")]
        voice = str(rng.choice(voices))
        params = {"stretch": round(float(rng.uniform(0.85, 1.2)), 3),
                  "f0_mean": round(_FLITE_F0[voice] * float(rng.uniform(0.85, 1.2)), 1)}
        name = voice
        labels = {"engine": "flite", "voice": voice, **params}
        speaker = f"flite:{voice}"
        folder = f"flite-{voice}"
    path = f"speech/{folder}/{item_id}.wav"
    return Job(item_id, "speech", split, path, speaker, labels, text, path[:-4] + ".phones.json",
               {"engine": labels["engine"], "voice": name, **params})


def music_split(index: int) -> str:
    return "valid" if (index // 2) % 10 == 1 else "train"


def plan_music(index: int, seed: int, pieces: list[str], max_seconds: float = 20.0) -> Job:
    rng = np.random.default_rng([seed, 2, index])
    piece = pieces[(index // 2) % len(pieces)]
    instrument = str(rng.choice(sorted(INSTRUMENTS)))
    stretch = round(float(rng.uniform(0.75, 1.3)), 3)
    length = round(float(rng.uniform(5.0, max(5.0, min(20.0, max_seconds)))), 2)  # seconds of audio
    item_id = f"m{index:06d}"
    labels = {"instrument": instrument, "program": INSTRUMENTS[instrument], "piece": piece_id(piece),
              "score": piece, "tempo_scale": round(1.0 / stretch, 3)}
    return Job(item_id, "music", music_split(index), f"music/{piece_id(piece)}/{item_id}.wav", f"gm:{instrument}",
               labels, params={"piece": piece, "program": INSTRUMENTS[instrument], "stretch": stretch,
                               "seconds": length / stretch, "window_seed": [seed, 3, index]})


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
    if p["engine"] == "espeak":
        base, _, variant = p["voice"].partition("+")
        utt = EspeakEngine.shared().synth(job.text, base, variant or None, p["rate"], p["pitch"], p["range"])
        inventory = "espeak"
    else:
        utt = flite_synth(job.text, p["voice"], p["stretch"], p["f0_mean"])
        inventory = "flite"
    n_out = int(round(len(utt.samples) * sample_rate / utt.sample_rate))
    duration = n_out / sample_rate
    phones = [(s, min(e, duration), ph) for s, e, ph in utt.phones if s < duration]
    if phones_path is not None:  # phones first, audio last: the audio file marks the item done
        write_phones(phones_path, inventory, phones)
    return _finish(utt.samples, utt.sample_rate, sample_rate, wav_path)


def _render_music(job: Job, wav_path: Path, sample_rate: int, cache_dir: Path) -> float:

    p = job.params
    notes = read_notes(score_to_midi(p["piece"], cache_dir / "midi"))
    if len(notes) < 4:
        raise AudiolmError(f"{p['piece']}: too few notes for an excerpt")
    window = choose_window(notes, p["seconds"], np.random.default_rng(p["window_seed"]))
    render_rate = sample_rate if 8000 <= sample_rate <= 96000 else 44100
    with tempfile.TemporaryDirectory(prefix="audiolm-render-") as tmp:
        mid, raw = Path(tmp) / "excerpt.mid", Path(tmp) / "render.wav"
        seconds = write_excerpt_midi(notes, window, p["stretch"], p["program"], mid)
        render_midi(mid, raw, render_rate, seconds, find_soundfont())
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


def _render_safely(args: tuple) -> tuple[float | None, str | None]:
    job, out_dir, sample_rate = args
    try:
        return render_job(job, out_dir, sample_rate), None
    except AudiolmError as e:
        return None, f"{job.id}: {e}"


# ---------------------------------------------------------------------------------------------
# the build


def check_tools(speech: bool, music: bool) -> None:
    """Fail early, naming the apt package, when a synthesizer or soundfont is missing."""
    if speech:
        require_program("espeak-ng", "espeak-ng")
        require_program("flite", "flite")
        EspeakEngine.shared()  # the library itself (libespeak-ng1)
    if music:
        require_program("fluidsynth", "fluidsynth")
        find_soundfont()
        _corpus_root()
        try:
            import mido  # noqa: F401
        except ImportError:
            raise AudiolmError("mido is not installed: `pip install mido` (the `corpus` extra)") from None


def _check_out_dir(out_dir: Path, settings: dict[str, Any]) -> None:
    build_file = out_dir / BUILD_FILE
    if build_file.is_file():
        try:
            previous = json.loads(build_file.read_text())
        except json.JSONDecodeError:
            raise AudiolmError(f"{build_file}: not valid JSON; remove the folder to rebuild") from None
        for key in ("sample_rate", "seed", "format_version"):
            if previous.get(key) != settings[key]:
                raise AudiolmError(
                    f"{out_dir} holds a corpus built with {key}={previous.get(key)!r}, not {settings[key]!r}: "
                    "use another folder"
                )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise AudiolmError(f"{out_dir} exists and is not a corpus folder: choose an empty or new folder")


def build_corpus(
    out_dir: str | Path,
    speech_minutes: float,
    music_minutes: float,
    sample_rate: int = 24000,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> list[CorpusItem]:
    """Build (or resume, or extend) a corpus in `out_dir`; returns the manifest's items."""
    out_dir = Path(out_dir)
    sample_rate = check_sample_rate(sample_rate, "--sample-rate")
    if speech_minutes < 0 or music_minutes < 0:
        raise AudiolmError("--speech-minutes and --music-minutes must be >= 0")
    settings = {"format_version": 1, "sample_rate": sample_rate, "seed": seed}
    _check_out_dir(out_dir, settings)
    check_tools(speech_minutes > 0, music_minutes > 0)
    out_dir.mkdir(parents=True, exist_ok=True)
    requested = {"speech_minutes": speech_minutes, "music_minutes": music_minutes}
    atomic_write_json(out_dir / BUILD_FILE, {**settings, **requested})

    pieces: list[str] = []
    if music_minutes > 0:
        pieces = music_pieces(seed)
    music_max = max(5.0, music_minutes * 60 / 3)  # small builds still get several excerpts

    def plan(kind: str, i: int) -> Job:
        return plan_speech(i, seed) if kind == "speech" else plan_music(i, seed, pieces, music_max)

    items: list[CorpusItem] = []
    errors: list[str] = []
    for orphan in out_dir.rglob(".*.tmp"):  # temp files of a build that was killed mid-write
        orphan.unlink(missing_ok=True)

    pool = None  # started on the first job that needs rendering: a no-op rebuild starts none
    completed = False
    try:
        for kind, minutes in (("speech", speech_minutes), ("music", music_minutes)):
            budget = minutes * 60.0
            total, index, failed_chunks = 0.0, 0, 0
            bar = tqdm(total=int(np.ceil(budget)), desc=f"corpus {kind}", unit="s", disable=not progress)
            while total < budget:
                jobs = [plan(kind, i) for i in range(index, index + CHUNK)]
                args = [(job, out_dir, sample_rate) for job in jobs]
                if pool is None and workers > 1 and not all(is_done(job, out_dir) for job in jobs):
                    pool = multiprocessing.get_context("spawn").Pool(workers)  # libespeak-ng must not be forked
                results = pool.map(_render_safely, args) if pool else [_render_safely(a) for a in args]
                ok = 0
                for job, (duration, error) in zip(jobs, results):
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
                index += CHUNK
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
    return items


# ---------------------------------------------------------------------------------------------
# single examples (bundled prompts)


def render_valid_speech(out_path: str | Path, k: int = 0, seed: int = 0, sample_rate: int = 24000) -> CorpusItem:
    """Render the k-th valid-split speech utterance of corpus `seed` to `out_path` (+ .phones.json).

    A voice the train split never contains, so a prompt made this way is unseen by models
    trained on that corpus. Returns its manifest item (paths relative to the output folder).
    An existing `out_path` (with its phones file) is kept, not rendered again.
    """
    out_path = Path(out_path)
    job = plan_speech(3 + 10 * k, seed)
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
    index = 2 + 20 * k  # piece slots 1, 11, 21, ... are valid
    job = plan_music(index, seed, music_pieces(seed))
    job.params["seconds"] = float(seconds) / job.params["stretch"]  # `seconds` of audio after the tempo change
    job.path = out_path.name
    with_cache = out_path.parent / ".audiolm-midi-cache"
    try:
        duration = render_job(job, out_path.parent, sample_rate, cache_dir=with_cache)
    finally:
        shutil.rmtree(with_cache, ignore_errors=True)
    return job.item(duration, sample_rate, out_path.parent)
