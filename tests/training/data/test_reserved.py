"""The held-out voices and soundfont never enter a training corpus; `--heldout` builds only from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audiolm.core.corpus import read_manifest, read_phones
from audiolm.core.errors import AudiolmError
from audiolm.training.data.reserved import (
    RESERVED_FESTIVAL_VOICES,
    RESERVED_MBROLA_VOICES,
    is_reserved_soundfont,
    is_reserved_voice,
)


def test_the_reserved_list() -> None:
    assert RESERVED_MBROLA_VOICES == ("us1", "us2", "us3", "en1")
    assert RESERVED_FESTIVAL_VOICES == ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
    for voice in RESERVED_FESTIVAL_VOICES:
        assert is_reserved_voice("festival", voice) and is_reserved_voice("festival", f"voice_{voice}")
    for voice in RESERVED_MBROLA_VOICES:
        assert is_reserved_voice("mbrola", voice) and is_reserved_voice("espeak", f"mb-{voice}")
        assert is_reserved_voice("espeak", f"mb-{voice}+m3")
    assert not is_reserved_voice("espeak", "en-us+m3") and not is_reserved_voice("espeak", "mb-de1-en")
    assert not is_reserved_voice("festival", "lp_diphone") and not is_reserved_voice("flite", "kal16")
    assert is_reserved_soundfont("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")
    assert is_reserved_soundfont("/x/MuseScore_General.sf2") and not is_reserved_soundfont("/x/FluidR3_GM.sf2")


def test_a_symlink_to_the_reserved_soundfont_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Debian's default-GM.sf3 may point at MuseScore_General: the target decides, not the name
    from audiolm.training.data import music_render

    target = tmp_path / "MuseScore_General_Lite.sf3"
    target.write_bytes(b"sf")
    (tmp_path / "default-GM.sf3").symlink_to(target)
    monkeypatch.setattr(music_render, "SOUNDFONTS", (("Default", str(tmp_path / "default-GM.sf3"), "x"),))
    assert music_render.available_soundfonts() == {}
    with pytest.raises(AudiolmError, match="reserved for held-out"):
        music_render.find_soundfont()


def test_training_inventory_and_plans_hold_no_reserved_voice() -> None:
    from audiolm.training.data.corpus_build import plan_music, plan_speech, training_inventory

    inventory = training_inventory()
    assert not set(inventory["festival"]) & set(RESERVED_FESTIVAL_VOICES)
    assert not any(name.lower().startswith("musescore") for name in inventory["soundfonts"])
    # even an inventory that lists every known Festival voice of another language plans none reserved
    inventory = {**inventory, "festival": ["lp_diphone", "hy_fi_mv_diphone"], "soundfonts": ["TimGM6mb"]}
    for i in range(300):
        job = plan_speech(i, 0, inventory)
        assert not is_reserved_voice(job.params["engine"], job.params["voice"])
    pieces = ["bach/bwv66.6.mxl"]
    assert all(plan_music(i, 0, pieces, inventory).params["soundfont"] == "TimGM6mb" for i in range(20))


@pytest.mark.parametrize(
    "inventory, what",
    [
        ({"festival": ["kal_diphone"]}, "kal_diphone"),
        ({"festival": ["cmu_us_slt_arctic_hts"]}, "cmu_us_slt_arctic_hts"),
        ({"espeak_voices": ["mb-us1"], "espeak_variants": ["m1"]}, "mb-us1"),
        ({"mbrola": ["en1"]}, "en1"),
        ({"soundfonts": ["MuseScore_General"]}, "MuseScore_General"),
    ],
)
def test_the_builder_refuses_reserved_voices(tmp_path: Path, inventory: dict, what: str) -> None:
    from audiolm.training.data.corpus_build import build_corpus

    full = {
        "espeak_voices": ["en-us"],
        "espeak_variants": ["m1", "m4"],
        "flite": ["kal16", "rms"],
        "festival": [],
        "soundfonts": [],
        **inventory,
    }
    with pytest.raises(AudiolmError, match=f"{what}.*reserved for held-out"):
        build_corpus(tmp_path / "out", 0.1, 0.0, progress=False, workers=1, inventory=full)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_forged_training_job_with_a_reserved_voice_does_not_render(tmp_path: Path) -> None:
    from audiolm.training.data.corpus_build import plan_speech, render_job

    job = plan_speech(0, 0, {"festival": ["lp_diphone"]})
    job.params.update(engine="festival", voice="ked_diphone")
    with pytest.raises(AudiolmError, match="reserved for held-out"):
        render_job(job, tmp_path, 16000)
    assert not list(tmp_path.iterdir())


def _heldout_missing() -> str | None:
    from audiolm.training.data.corpus_build import heldout_inventory

    if shutil.which("festival") is None:
        return "festival is not installed (apt-get install festival festvox-kallpc16k)"
    if not heldout_inventory()["festival"]:
        return "no reserved Festival voice installed (apt-get install festvox-kallpc16k festvox-kdlpc16k)"
    return None


@pytest.mark.skipif(_heldout_missing() is not None, reason=str(_heldout_missing()))
def test_heldout_build_uses_only_reserved_voices(tmp_path: Path) -> None:
    from audiolm.cli.app import main

    out = tmp_path / "heldout"
    assert (
        main(
            [
                "corpus",
                "build",
                str(out),
                "--heldout",
                "--speech-minutes",
                "0.2",
                "--music-minutes",
                "0",
                "--jobs",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    items = read_manifest(out)
    assert items and all(i.split == "valid" and i.kind == "speech" for i in items)
    for item in items:
        assert is_reserved_voice(item.labels["engine"], item.labels["voice"]), item.speaker
        inventory, phones = read_phones(item.phones_path)
        assert len(phones) >= 3 and phones[-1][1] <= item.duration + 1e-3
    assert json.loads((out / "corpus.json").read_text())["heldout"] is True
    # a training build into the held-out folder is refused (and the reverse)
    assert main(["corpus", "build", str(out), "--speech-minutes", "0.2", "--no-progress"]) == 2


@pytest.mark.skipif(
    shutil.which("festival") is None or not Path("/usr/share/festival/voices/italian/lp_diphone").is_dir(),
    reason="festival or festvox-italp16k is not installed",
)
def test_festival_phones_fit_the_audio() -> None:
    from audiolm.training.data.festival_synth import festival_synth

    utt = festival_synth('He said "hello" to the 3 dogs.', "lp_diphone", stretch=1.1)
    duration = len(utt.samples) / utt.sample_rate
    assert utt.sample_rate == 16000 and duration > 1.0
    assert len(utt.phones) >= 10 and utt.phones[-1][1] == pytest.approx(duration, abs=0.02)
    assert all(s < e for s, e, _ in utt.phones)
