"""Music excerpts: music21 corpus scores -> MIDI -> excerpt with a new instrument and tempo -> fluidsynth.

- `music_pieces(seed)`: the ordered list of scores to draw from (Bach chorales, Palestrina,
  Monteverdi, and other composers in music21's bundled corpus), shuffled per seed.
- `score_to_midi(piece, cache_dir)`: music21 parses the score and writes MIDI once per piece
  (cached, written atomically).
- `make_excerpt(...)`: reads the notes with mido, takes a window of 5-20 s starting on a note
  onset, stretches time (tempo), puts every part on one General MIDI instrument, and ends
  with note-offs + all-notes-off on every channel before a short silent tail. A MIDI that
  leaves a note held makes `fluidsynth -F` render forever, so the excerpt never does.
- `render_midi(...)`: fluidsynth fast render, bounded by a timeout and by output size.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiolm.core.checkpoint import atomic_write_bytes
from audiolm.core.errors import AudiolmError
from audiolm.training.data.reserved import is_reserved_soundfont, refuse_reserved_soundfont
from audiolm.training.data.speech_synth import require_program

# training soundfonts: (name, path, Debian package), in order of preference
SOUNDFONTS = (
    ("FluidR3_GM", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm"),
    ("TimGM6mb", "/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont"),
    ("OPL3_FM", "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2", "opl3-soundfont"),
    ("GMbank", "/usr/share/sounds/sf2/sf_GMbank.sf2", "csound-soundfont"),
)
# the held-out soundfont (audiolm/training/data/reserved.py): never in a training corpus
HELDOUT_SOUNDFONTS = (
    ("MuseScore_General", "/usr/share/sounds/sf3/MuseScore_General.sf3", "musescore-general-soundfont"),
    ("MuseScore_General", "/usr/share/sounds/sf3/MuseScore_General_HQ.sf3", "musescore-general-soundfont"),
    ("MuseScore_General", "/usr/share/sounds/sf2/MuseScore_General.sf2", "musescore-general-soundfont-lossless"),
    ("MuseScore_General", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", "musescore-general-soundfont-small"),
)

# General MIDI programs (0-based) that carry polyphonic scores well: name -> program
INSTRUMENTS = {
    "piano": 0,
    "bright-piano": 1,
    "honky-tonk": 3,
    "electric-piano": 4,
    "harpsichord": 6,
    "clavinet": 7,
    "celesta": 8,
    "glockenspiel": 9,
    "music-box": 10,
    "vibraphone": 11,
    "marimba": 12,
    "xylophone": 13,
    "tubular-bells": 14,
    "drawbar-organ": 16,
    "rock-organ": 18,
    "church-organ": 19,
    "reed-organ": 20,
    "accordion": 21,
    "harmonica": 22,
    "nylon-guitar": 24,
    "steel-guitar": 25,
    "jazz-guitar": 26,
    "clean-guitar": 27,
    "overdriven-guitar": 29,
    "acoustic-bass": 32,
    "fingered-bass": 33,
    "violin": 40,
    "viola": 41,
    "cello": 42,
    "contrabass": 43,
    "tremolo-strings": 44,
    "pizzicato": 45,
    "harp": 46,
    "strings": 48,
    "slow-strings": 49,
    "synth-strings": 50,
    "choir": 52,
    "voice-oohs": 53,
    "trumpet": 56,
    "trombone": 57,
    "tuba": 58,
    "muted-trumpet": 59,
    "french-horn": 60,
    "brass": 61,
    "synth-brass": 62,
    "soprano-sax": 64,
    "alto-sax": 65,
    "tenor-sax": 66,
    "baritone-sax": 67,
    "oboe": 68,
    "english-horn": 69,
    "bassoon": 70,
    "clarinet": 71,
    "piccolo": 72,
    "flute": 73,
    "recorder": 74,
    "pan-flute": 75,
    "ocarina": 79,
    "square-lead": 80,
    "sawtooth-lead": 81,
    "calliope": 82,
    "new-age-pad": 88,
    "warm-pad": 89,
    "polysynth": 90,
    "sitar": 104,
    "banjo": 105,
    "kalimba": 108,
    "bagpipe": 109,
    "fiddle": 110,
    "steel-drums": 114,
}

# (corpus folder, weight) — Bach chorales dominate; scores in .abc/.rntxt are skipped (opus
# files of many tunes, or harmonic analyses rather than notes)
_SOURCES = (
    ("bach", 0.45),
    ("palestrina", 0.2),
    ("monteverdi", 0.1),
    ("other", 0.25),
)
_OTHER = (
    "trecento",
    "mozart",
    "haydn",
    "beethoven",
    "schumann_robert",
    "schumann_clara",
    "joplin",
    "chopin",
    "schubert",
    "handel",
    "corelli",
    "cpebach",
    "verdi",
    "weber",
    "beach",
    "luca",
    "lusitano",
    "ciconia",
    "johnson_j_r",
    "liliuokalani",
    "schoenberg",
    "webern",
)
_SCORE_EXTENSIONS = (".mxl", ".xml", ".musicxml", ".krn")
_TAIL_S = 1.0  # silence after the last note-off: lets release and reverb ring out


def available_soundfonts() -> dict[str, Path]:
    """The training soundfonts installed here, name -> path (never a reserved one)."""
    return {
        name: Path(path) for name, path, _ in SOUNDFONTS if Path(path).is_file() and not is_reserved_soundfont(path)
    }


def find_soundfont(name: str | None = None) -> Path:
    """The training soundfont `name` (default: the first installed), or an AudiolmError naming
    the apt package. A held-out soundfont is refused."""
    for sf_name, path, package in SOUNDFONTS:
        if name is not None and sf_name != name:
            continue
        if Path(path).is_file():
            refuse_reserved_soundfont(path)
            return Path(path)
        if name is not None:
            raise AudiolmError(f"soundfont {name} ({path}) is not installed: `apt-get install {package}`")
    if name is not None:
        raise AudiolmError(f"unknown soundfont {name!r} (known: {', '.join(n for n, _, _ in SOUNDFONTS)})")
    raise AudiolmError(
        "no General MIDI soundfont found (looked for FluidR3_GM.sf2, TimGM6mb.sf2 in /usr/share/sounds/sf2): "
        "install one with `apt-get install fluid-soundfont-gm` (or timgm6mb-soundfont)"
    )


def find_heldout_soundfont() -> Path | None:
    """The held-out MuseScore_General soundfont if installed (any of its builds), else None."""
    for _, path, _ in HELDOUT_SOUNDFONTS:
        if Path(path).is_file():
            return Path(path)
    return None


def _corpus_root() -> Path:
    try:
        from music21 import corpus  # optional dependency (the corpus extra)
    except ImportError:
        raise AudiolmError("music21 is not installed: `pip install music21` (the `corpus` extra)") from None
    return Path(corpus.__file__).parent


def music_pieces(seed: int) -> list[str]:
    """Scores (paths relative to music21's corpus folder), in a seeded order that mixes sources."""
    root = _corpus_root()
    by_source: dict[str, list[str]] = {name: [] for name, _ in _SOURCES}
    for path in sorted(root.rglob("*")):
        if path.suffix not in _SCORE_EXTENSIONS or path.name.endswith("-sc.mxl"):
            continue
        rel = path.relative_to(root).as_posix()
        top = rel.split("/")[0]
        source = top if top in by_source else "other" if top in _OTHER else None
        if source is not None:
            by_source[source].append(rel)
    rng = np.random.default_rng([seed, 77])
    pools = {k: list(rng.permutation(v)) for k, v in by_source.items() if v}
    names = list(pools)
    weights = np.array([w for n, w in _SOURCES if n in pools])
    order = []
    while pools:
        p = weights / weights.sum()
        source = names[int(rng.choice(len(names), p=p))]
        order.append(str(pools[source].pop()))
        if not pools[source]:
            idx = names.index(source)
            del pools[source]
            names.pop(idx)
            weights = np.delete(weights, idx)
    return order


def piece_id(piece: str) -> str:
    """A folder-safe name for a score: 'bach/bwv66.6.mxl' -> 'bach-bwv66.6'."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", Path(piece).with_suffix("").as_posix().replace("/", "-"))


def score_to_midi(piece: str, cache_dir: Path) -> Path:
    """Parse a corpus score with music21 and write it as MIDI (cached per piece)."""
    out = cache_dir / f"{piece_id(piece)}.mid"
    if out.is_file():
        return out
    from music21 import converter  # optional dependency (the corpus extra)

    try:
        score = converter.parse(str(_corpus_root() / piece))
        with tempfile.TemporaryDirectory(prefix="audiolm-midi-") as tmp:
            tmp_mid = Path(tmp) / "score.mid"
            score.write("midi", fp=str(tmp_mid))
            data = tmp_mid.read_bytes()
    except Exception as e:  # noqa: BLE001 - music21 raises many types for odd scores
        raise AudiolmError(f"music21 could not convert {piece} to MIDI: {type(e).__name__}: {e}") from None
    atomic_write_bytes(out, data)
    return out


@dataclass
class Note:
    start: float  # seconds
    end: float
    pitch: int
    velocity: int
    part: int


def read_notes(midi_path: Path) -> list[Note]:
    """All pitched notes of a MIDI file in seconds (percussion channel 10 dropped)."""
    import mido  # optional dependency (the corpus extra)

    try:
        midi = mido.MidiFile(str(midi_path))
    except (OSError, ValueError, EOFError, KeyError, IndexError) as e:
        raise AudiolmError(f"{midi_path}: unreadable MIDI ({e})") from None
    notes: list = []
    held: dict = {}
    now = 0.0
    for msg in midi:  # merged tracks, delta times in seconds
        now += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == 9:
            continue
        key = (msg.channel, msg.note)
        if msg.type == "note_on" and msg.velocity > 0:
            if key in held:  # re-struck before release: end the old one
                s, v = held.pop(key)
                notes.append(Note(s, now, msg.note, v, msg.channel))
            held[key] = (now, msg.velocity)
        elif key in held:
            s, v = held.pop(key)
            notes.append(Note(s, now, msg.note, v, msg.channel))
    for (channel, pitch), (s, v) in held.items():
        notes.append(Note(s, max(now, s + 0.5), pitch, v, channel))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return [n for n in notes if n.end > n.start]


def choose_window(notes: list[Note], length: float, rng: np.random.Generator) -> tuple[float, float]:
    """A [start, end) window of about `length` seconds that starts on a note onset."""
    total = max(n.end for n in notes)
    onsets = sorted({round(n.start, 4) for n in notes if n.start <= max(0.0, total - length)})
    start = onsets[int(rng.integers(len(onsets)))] if onsets else 0.0
    return start, min(start + length, total)


def write_excerpt_midi(
    notes: list[Note], window: tuple[float, float], stretch: float, program: int, out_path: Path
) -> float:
    """Write the notes inside `window` as a one-instrument MIDI; returns its length in seconds.

    Every note is released by the window's end; all-notes-off / all-sound-off follow on every
    channel, then `_TAIL_S` of silence before end-of-track.
    """
    import mido  # optional dependency (the corpus extra)

    start, end = window
    ticks_per_second = 960  # 480 ticks per beat at 120 bpm (tempo 500000 us/beat)
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, msg): offs before ons
    parts = sorted({n.part for n in notes})
    channel_of = {part: ch for part, ch in zip(parts, [c for c in range(16) if c != 9])}
    for n in notes:
        if n.start < start or n.start >= end or n.part not in channel_of:
            continue
        on = int(round((n.start - start) * stretch * ticks_per_second))
        off = int(round((min(n.end, end) - start) * stretch * ticks_per_second))
        off = max(off, on + 1)
        ch = channel_of[n.part]
        events.append((on, 1, mido.Message("note_on", channel=ch, note=n.pitch, velocity=max(1, min(127, n.velocity)))))
        events.append((off, 0, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
    if not events:
        raise AudiolmError("excerpt window holds no notes")
    length_ticks = int(round((end - start) * stretch * ticks_per_second))
    last = max(length_ticks, max(t for t, _, _ in events))
    used = sorted(set(channel_of.values()))
    for ch in used:
        events.append((last, 2, mido.Message("control_change", channel=ch, control=123, value=0)))  # all notes off
        events.append((last, 2, mido.Message("control_change", channel=ch, control=120, value=0)))  # all sound off
    head = [mido.MetaMessage("set_tempo", tempo=500000, time=0)]
    for ch in used:
        head.append(mido.Message("program_change", channel=ch, program=program, time=0))
        head.append(mido.Message("control_change", channel=ch, control=7, value=100, time=0))
    track = mido.MidiTrack(head)
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=int(_TAIL_S * ticks_per_second)))
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(out_path))
    return last / ticks_per_second + _TAIL_S


def render_midi(midi_path: Path, out_wav: Path, sample_rate: int, expected_seconds: float, soundfont: Path) -> None:
    """fluidsynth fast render of `midi_path` to a 16-bit wav, bounded by time and file size."""
    fluidsynth = require_program("fluidsynth", "fluidsynth")
    max_bytes = int((expected_seconds * 2 + 10) * sample_rate * 2 * 2) + 1_000_000  # stereo s16
    timeout = 30.0 + 3.0 * expected_seconds
    cmd = [
        fluidsynth,
        "-ni",
        "-q",
        "-F",
        str(out_wav),
        "-r",
        str(sample_rate),
        "-T",
        "wav",
        "-O",
        "s16",
        "-g",
        "0.5",
        str(soundfont),
        str(midi_path),
    ]
    errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty fluidsynth cannot block on it
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors)
    began = time.monotonic()
    try:
        while proc.poll() is None:
            time.sleep(0.02)
            size = out_wav.stat().st_size if out_wav.exists() else 0
            if size > max_bytes or time.monotonic() - began > timeout:
                proc.kill()
                proc.wait()
                elapsed = time.monotonic() - began
                raise AudiolmError(
                    f"fluidsynth ran away rendering {midi_path} ({size} bytes, {elapsed:.0f} s); stopped"
                )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    errors.seek(0)
    stderr = errors.read().decode("utf-8", "replace")
    errors.close()
    if proc.returncode != 0 or not out_wav.exists() or os.path.getsize(out_wav) <= 44:
        raise AudiolmError(f"fluidsynth failed on {midi_path}: {' '.join(stderr.split())[:200]}")
