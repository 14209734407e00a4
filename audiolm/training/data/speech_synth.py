"""Speech with phone alignments from two offline synthesizers: espeak-ng and flite.

- espeak-ng through libespeak-ng (ctypes): the library reports a PHONEME event at the sample
  where each phone starts, so alignments are sample-accurate; voices x variants (+m1..+f5)
  with rate, pitch and pitch range varied. 22050 Hz.
- flite through its command line: `-psdur` prints each phone's end time. Voices kal16 (a
  diphone voice), awb, rms, slt (clustergen voices); speed via `duration_stretch`, pitch via
  `int_f0_target_mean`. 16 kHz. kal16's printed times run ~5% longer than its audio, so flite
  times are rescaled to end where the audio ends.

Each synth returns `Utterance(samples [N] float32, sample_rate, phones [(start_s, end_s, ph)])`.
libespeak-ng keeps global state: use one `EspeakEngine` per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audiolm.core.errors import AudiolmError

# "en" is British English (espeak-ng has no voice named "en-gb")
ESPEAK_VOICES = (
    "en-us",
    "en",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
# every voice variant espeak-ng 1.51 ships (espeak-ng-data/voices/!v); each changes formants,
# pitch, breathiness or the synthesis method (klatt*), so base voice x variant = one speaker
ESPEAK_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "Alex",
    "Alicia",
    "Andrea",
    "Andy",
    "Annie",
    "AnxiousAndy",
    "Demonic",
    "Denis",
    "Diogo",
    "Gene",
    "Gene2",
    "Henrique",
    "Hugo",
    "Jacky",
    "Lee",
    "Marco",
    "Mario",
    "Michael",
    "Mike",
    "Mr serious",
    "Nguyen",
    "RicishayMax",
    "RicishayMax2",
    "RicishayMax3",
    "Storm",
    "Tweaky",
    "UniRobot",
    "adam",
    "anika",
    "anikaRobot",
    "announcer",
    "antonio",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "croak",
    "david",
    "ed",
    "edward",
    "edward2",
    "fast",
    "grandma",
    "grandpa",
    "gustave",
    "iven",
    "iven2",
    "iven3",
    "iven4",
    "john",
    "kaukovalta",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "klatt5",
    "klatt6",
    "linda",
    "marcelo",
    "max",
    "michel",
    "miguel",
    "norbert",
    "pablo",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "robosoft",
    "robosoft2",
    "robosoft3",
    "robosoft4",
    "robosoft5",
    "robosoft6",
    "robosoft7",
    "robosoft8",
    "sandro",
    "shelby",
    "steph",
    "steph2",
    "steph3",
    "travis",
    "victor",
    "whisper",
    "whisperf",
    "zac",
)
FLITE_VOICES = ("kal16", "awb", "rms", "slt")

_PHONEME_EVENT, _LIST_TERMINATED = 7, 0
_RATE, _PITCH, _RANGE = 1, 3, 4


@dataclass
class Utterance:
    samples: np.ndarray  # [N] float32 in [-1, 1]
    sample_rate: int
    phones: list[tuple[float, float, str]]  # (start_s, end_s, phone), monotonic, inside the audio


def require_program(name: str, apt_package: str) -> str:
    """Path of an executable, or an AudiolmError naming the apt package that provides it."""
    path = shutil.which(name)
    if path is None:
        raise AudiolmError(f"'{name}' is not installed: install it with `apt-get install {apt_package}`")
    return path


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT from speak_lib.h
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block (what a C library and the programs it starts
    write there, which Python's sys.stderr does not catch)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class EspeakEngine:
    """libespeak-ng in synchronous mode with phoneme events.

    The library is process-global (one voice, one callback), so use `EspeakEngine.shared()`:
    a second instance would re-register the callback and leave the first one mute.
    """

    _shared: EspeakEngine | None = None

    @classmethod
    def shared(cls) -> EspeakEngine:
        """This process's engine (created on first use)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError:
            raise AudiolmError(
                "libespeak-ng is not installed: install it with `apt-get install espeak-ng libespeak-ng1`"
            ) from None
        # AUDIO_OUTPUT_SYNCHRONOUS=2; options: PHONEME_EVENTS | DONT_EXIT
        self.sample_rate = self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x8000)
        if self.sample_rate <= 0:
            raise AudiolmError(
                "libespeak-ng failed to initialise (is espeak-ng-data installed? `apt-get install espeak-ng`)"
            )
        self._chunks: list[np.ndarray] = []
        self._starts: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _LIST_TERMINATED:
            if events[i].type == _PHONEME_EVENT:
                self._starts.append((int(events[i].sample), events[i].id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def synth(
        self, text: str, voice: str, variant: str | None, rate: int = 175, pitch: int = 50, pitch_range: int = 50
    ) -> Utterance:
        name = voice + (f"+{variant}" if variant else "")
        # an MBROLA voice reading another language's text warns on stderr for every unknown
        # diphone (it sounds a short gap): dozens of lines per item, so they are silenced
        with _stderr_silenced() if voice.startswith("mb-") else contextlib.nullcontext():
            if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise AudiolmError(f"espeak-ng has no voice '{name}'")
            for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
                self.lib.espeak_SetParameter(param, int(value), 0)
            self._chunks, self._starts = [], []
            self.lib.espeak_SetSynthCallback(self._callback)  # ours, even if another instance registered
            data = text.encode("utf-8")
            # espeak_Synth(text, size, position, POS_CHARACTER, end, espeakCHARS_UTF8, id, user_data)
            status = self.lib.espeak_Synth(ctypes.c_char_p(data), len(data) + 1, 0, 1, 0, 1, None, None)
            self.lib.espeak_Synchronize()
        if status != 0 or not self._chunks:
            raise AudiolmError(f"espeak-ng failed to speak with voice '{name}' (status {status})")
        samples = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        n = len(samples)
        # a phone runs from its start event to the next one; drop zero-length markers
        starts = [(min(max(s, 0), n), p) for s, p in self._starts]
        phones = []
        for (start, phone), (end, _) in zip(starts, starts[1:] + [(n, "")]):
            if end > start:
                phones.append((start / self.sample_rate, end / self.sample_rate, phone))
        return Utterance(samples, self.sample_rate, phones)


def parse_psdur(output: str, duration: float) -> list[tuple[float, float, str]]:
    """flite's `-psdur` line ("pau:0.253 dh:0.283 ...", end times) -> phones fitted to `duration`."""
    ends: list[tuple[str, float]] = []
    for token in output.split():
        phone, sep, end = token.rpartition(":")
        if not sep:
            continue
        try:
            ends.append((phone, float(end)))
        except ValueError:
            continue
    if not ends:
        return []
    last = float(ends[-1][1])
    # kal16 reports times ~5% longer than its audio; clustergen voices match within 5 ms
    scale = duration / last if last > 0 else 1.0
    phones, start = [], 0.0
    for phone, phone_end in ends:
        phone_end = min(phone_end * scale, duration)
        if phone_end > start:
            phones.append((start, phone_end, phone))
            start = phone_end
    return phones


def flite_synth(
    text: str, voice: str, stretch: float = 1.0, f0_mean: float | None = None, timeout: float = 60.0
) -> Utterance:
    """Speak `text` with a flite voice; phones from `-psdur`."""
    flite = require_program("flite", "flite")
    with tempfile.TemporaryDirectory(prefix="audiolm-flite-") as tmp:
        out = Path(tmp) / "out.wav"
        cmd = [flite, "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}"]
        if f0_mean is not None:
            cmd += ["--setf", f"int_f0_target_mean={f0_mean:.1f}"]
        cmd += ["-t", text, "-o", str(out), "-psdur"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AudiolmError(f"flite took more than {timeout:.0f} s on one sentence (voice {voice})") from None
        if result.returncode != 0 or not out.exists():
            raise AudiolmError(f"flite failed (voice {voice}): {' '.join(result.stderr.split())[:200]}")
        samples, sample_rate = sf.read(str(out), dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    phones = parse_psdur(result.stdout, len(samples) / sample_rate)
    return Utterance(samples, int(sample_rate), phones)
