"""The voices and soundfont reserved for held-out evaluation: the one place that lists them.

They never enter a training corpus or recipe. `audiolm corpus build` refuses them (every
job is checked before it renders); `audiolm corpus build OUT --heldout` builds the evaluation
set from them alone, every item in the valid split.

- MBROLA us1, us2, us3, en1 (espeak-ng speaks through them as mb-us1 ...; Debian ships mbrola
  in non-free only, so they are often absent),
- Festival kal_diphone (festvox-kallpc16k / -8k), ked_diphone (festvox-kdlpc16k / -8k),
  cmu_us_slt_arctic_hts (festvox-us-slt-hts),
- the MuseScore_General soundfont (musescore-general-soundfont*, including its `_Lite`,
  `_HQ` and `.sf2`/`.sf3` builds; Debian's default-GM.sf3 may point at it).
"""

from __future__ import annotations

import os
from pathlib import Path

from audiolm.core.errors import AudiolmError

RESERVED_MBROLA_VOICES = ("us1", "us2", "us3", "en1")
RESERVED_FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
RESERVED_SOUNDFONT_PREFIX = "musescore_general"  # file names compared in lower case


def is_reserved_voice(engine: str, voice: str) -> bool:
    """True for a held-out voice. `engine`: espeak, flite, festival or mbrola; `voice` as the
    engine names it (espeak: "en-us+m3" or "mb-us1"; festival: "kal_diphone")."""
    voice = voice.strip()
    if engine == "festival":
        return voice.removeprefix("voice_") in RESERVED_FESTIVAL_VOICES
    if engine in ("espeak", "mbrola"):
        base = voice.partition("+")[0].lower()
        return base.removeprefix("mb-") in RESERVED_MBROLA_VOICES and (engine == "mbrola" or base.startswith("mb-"))
    return False


def is_reserved_soundfont(path: str | os.PathLike) -> bool:
    """True when `path` (or the file a symlink resolves to) is a MuseScore_General soundfont."""
    names = {Path(path).name, Path(os.path.realpath(path)).name}
    return any(name.lower().startswith(RESERVED_SOUNDFONT_PREFIX) for name in names)


def refuse_reserved_voice(engine: str, voice: str) -> None:
    """AudiolmError when a training corpus would use a held-out voice."""
    if is_reserved_voice(engine, voice):
        raise AudiolmError(
            f"{engine} voice {voice!r} is reserved for held-out evaluation and never enters a training corpus "
            "(build the evaluation set with `audiolm corpus build OUT --heldout`)"
        )


def refuse_reserved_soundfont(path: str | os.PathLike) -> None:
    """AudiolmError when a training corpus would render with the held-out soundfont."""
    if is_reserved_soundfont(path):
        raise AudiolmError(
            f"soundfont {path} (MuseScore_General) is reserved for held-out evaluation and never enters a "
            "training corpus"
        )
