"""Speech with phone alignments from Festival (`festival --batch` with a small Scheme script).

Festival writes the wave (`utt.save.wave`) and the Segment relation with each phone's end time
(`utt.save.segs`, an xlabel file: "end_s 100 phone" per line after a "#" header), which match
the audio. Speed via the `Duration_Stretch` parameter; pitch and formants are varied by the
caller (corpus_build warps the sample rate). Voices are found in /usr/share/festival/voices.

Debian's English Festival voices (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts) are all
reserved for held-out evaluation (audiolm/training/data/reserved.py); the training corpus uses the
other languages' voices, which read English text with their own phonology.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from audiolm.core.errors import AudiolmError
from audiolm.training.data.speech_synth import Utterance, parse_psdur, require_program

FESTIVAL_VOICE_ROOT = Path("/usr/share/festival/voices")

# voice -> (language, Debian package). Training voices first, then the reserved English ones.
FESTIVAL_VOICES = {
    "lp_diphone": ("it", "festvox-italp16k"),
    "pc_diphone": ("it", "festvox-itapc16k"),
    "czech_dita": ("cs", "festvox-czech-dita"),
    "czech_krb": ("cs", "festvox-czech-krb"),
    "czech_machac": ("cs", "festvox-czech-machac"),
    "czech_ph": ("cs", "festvox-czech-ph"),
    "hy_fi_mv_diphone": ("fi", "festvox-suopuhe-mv"),
    "suo_fi_lj_diphone": ("fi", "festvox-suopuhe-lj"),
    "msu_ru_nsh_clunits": ("ru", "festvox-ru"),
    "upc_ca_ona_hts": ("ca", "festvox-ca-ona-hts"),
    "kal_diphone": ("en", "festvox-kallpc16k"),
    "ked_diphone": ("en", "festvox-kdlpc16k"),
    "cmu_us_slt_arctic_hts": ("en", "festvox-us-slt-hts"),
}


def festival_voices() -> list[str]:
    """The voices of FESTIVAL_VOICES installed here (festival itself and the voice folder), in
    FESTIVAL_VOICES order."""
    if shutil.which("festival") is None or not FESTIVAL_VOICE_ROOT.is_dir():
        return []
    installed = {p.name for p in FESTIVAL_VOICE_ROOT.glob("*/*") if p.is_dir()}
    return [v for v in FESTIVAL_VOICES if v in installed]


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_synth(text: str, voice: str, stretch: float = 1.0, timeout: float = 60.0) -> Utterance:
    """Speak `text` with a Festival voice; phones from the Segment relation."""
    festival = require_program("festival", "festival")
    if voice not in FESTIVAL_VOICES:
        raise AudiolmError(f"unknown Festival voice {voice!r}")
    with tempfile.TemporaryDirectory(prefix="audiolm-festival-") as tmp:
        wav, segs, script = Path(tmp) / "out.wav", Path(tmp) / "out.segs", Path(tmp) / "say.scm"
        script.write_text(
            f"(voice_{voice})\n"
            f"(Parameter.set 'Duration_Stretch {stretch:.3f})\n"
            f"(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))\n"
            f"(utt.save.wave utt {_scheme_string(str(wav))} 'riff)\n"
            f"(utt.save.segs utt {_scheme_string(str(segs))})\n"
        )
        try:
            result = subprocess.run(
                [festival, "--batch", str(script)], capture_output=True, text=True, timeout=timeout, cwd=tmp
            )
        except subprocess.TimeoutExpired:
            raise AudiolmError(f"festival took more than {timeout:.0f} s on one sentence (voice {voice})") from None
        if result.returncode != 0 or not wav.is_file() or not segs.is_file():
            message = " ".join((result.stderr + result.stdout).split())[:200]
            raise AudiolmError(f"festival failed (voice {voice}, package {FESTIVAL_VOICES[voice][1]}): {message}")
        samples, sample_rate = sf.read(str(wav), dtype="float32", always_2d=True)
        seg_lines = segs.read_text(errors="replace").splitlines()
    samples = samples.mean(axis=1)
    phones = parse_psdur(" ".join(_segs_to_psdur(seg_lines)), len(samples) / sample_rate)
    if not len(samples) or not np.abs(samples).max() > 1e-4:
        raise AudiolmError(f"festival produced silence (voice {voice})")
    return Utterance(samples, int(sample_rate), phones)


def _segs_to_psdur(lines: list[str]) -> list[str]:
    """xlabel lines after the "#" header ("0.3300 100 dz") -> "dz:0.3300" tokens (end times)."""
    out, body = [], False
    for line in lines:
        if not body:
            body = line.strip() == "#"
            continue
        parts = line.split()
        if len(parts) >= 3:
            out.append(f"{parts[2]}:{parts[0]}")
    return out
