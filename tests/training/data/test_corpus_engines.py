"""`corpus build --engines` and the MBROLA training voices (corpus_build.py)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from audiolm.core.corpus import read_manifest
from audiolm.core.errors import AudiolmError
from audiolm.training.data.reserved import RESERVED_MBROLA_VOICES, is_reserved_voice


def _plans_digest(inventory: dict, n: int = 40) -> str:
    from audiolm.training.data.corpus_build import plan_speech

    jobs = [plan_speech(i, 0, inventory) for i in range(n)]
    return hashlib.sha1(repr([(j.speaker, j.text, j.params) for j in jobs]).encode()).hexdigest()


def test_a_corpus_without_mbrola_voices_plans_as_before() -> None:
    # corpora built before MBROLA voices could enter training resume with the same items (the
    # digest was taken with the code before the change)
    inventory = {
        "espeak_voices": ["en-us", "en-gb"],
        "espeak_variants": ["m1", "m4", "f2", "f3"],
        "flite": ["kal16", "rms"],
        "festival": ["lp_diphone", "hy_fi_mv_diphone"],
        "soundfonts": [],
    }
    assert _plans_digest(inventory) == "ac621af06e46957fd10396f076501b277d9468ef"


def test_mbrola_voices_split_by_voice_and_never_reserved() -> None:
    from audiolm.training.data.corpus_build import MBROLA_TRAINING_VOICES, MBROLA_VALID_VOICES, plan_speech

    assert set(MBROLA_VALID_VOICES) < set(MBROLA_TRAINING_VOICES)
    assert not set(MBROLA_TRAINING_VOICES) & set(RESERVED_MBROLA_VOICES)
    inventory = {"mbrola": list(MBROLA_TRAINING_VOICES), "flite": ["kal16", "rms"]}
    engines = set()
    for i in range(200):
        job = plan_speech(i, 0, inventory)
        engines.add(job.params["engine"])
        assert not is_reserved_voice(job.params["engine"], job.params["voice"])
        if job.params["engine"] == "mbrola":
            voice = job.params["voice"].removeprefix("mb-")
            assert (voice in MBROLA_VALID_VOICES) == (job.split == "valid"), (i, voice)
            assert 140 <= job.params["rate"] <= 200 and 30 <= job.params["pitch"] <= 70
    assert engines == {"mbrola", "flite"}


def test_engines_limit_the_inventory(monkeypatch: pytest.MonkeyPatch) -> None:
    from audiolm.training.data import corpus_build

    monkeypatch.setattr(corpus_build, "mbrola_voices", lambda candidates=(): ["de1", "fr6"])
    inventory = corpus_build.training_inventory(["mbrola"])
    assert set(inventory) == {"mbrola", "soundfonts"} and inventory["mbrola"] == ["de1", "fr6"]
    assert corpus_build.inventory_engines(inventory) == ["mbrola"]
    flite = corpus_build.training_inventory(["flite", "espeak"])
    assert corpus_build.inventory_engines(flite) == ["espeak", "flite"]
    with pytest.raises(AudiolmError, match="speech engines are"):
        corpus_build.training_inventory(["klatt"])
    monkeypatch.setattr(corpus_build, "mbrola_voices", lambda candidates=(): [])
    with pytest.raises(AudiolmError, match=r"no mbrola voice is installed.*apt-get install mbrola"):
        corpus_build.training_inventory(["mbrola"])
    assert "mbrola" not in corpus_build.inventory_engines(corpus_build.training_inventory())


def test_an_inventory_without_valid_voices_is_a_clear_error() -> None:
    from audiolm.training.data.corpus_build import plan_speech

    with pytest.raises(AudiolmError, match="no valid voice"):
        plan_speech(3, 0, {"mbrola": ["de1"]})  # item 3 is valid; de1 is a train voice


def test_cli_engines_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from audiolm.cli.app import main

    out = tmp_path / "c"
    assert main(["corpus", "build", str(out), "--engines", "espeak,klatt", "--no-progress"]) == 2
    assert main(["corpus", "build", str(out), "--engines", "mbrola", "--heldout", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--engines takes some of espeak, flite, festival, mbrola" in err and "--heldout" in err
    assert not out.exists()


def test_a_resumed_corpus_keeps_its_engines(tmp_path: Path) -> None:
    from audiolm.training.data.corpus_build import build_corpus

    out = tmp_path / "c"
    out.mkdir()
    (out / "corpus.json").write_text(
        '{"format_version": 2, "sample_rate": 24000, "seed": 0, "heldout": false, '
        '"inventory": {"flite": ["kal16", "rms"], "soundfonts": []}}'
    )
    with pytest.raises(AudiolmError, match="started with the engines flite"):
        build_corpus(out, 0.1, 0.0, progress=False, workers=1, engines=["mbrola"])


def _mbrola_missing() -> str | None:
    from audiolm.training.data.corpus_build import MBROLA_TRAINING_VOICES, mbrola_voices

    if shutil.which("espeak-ng") is None:
        return "espeak-ng is not installed"
    if not {"de6", "fr1", "br1"} <= set(mbrola_voices(MBROLA_TRAINING_VOICES)):
        return "MBROLA de6 / fr1 / br1 are not installed (apt-get install mbrola mbrola-de6 ...; contrib / non-free)"
    return None


@pytest.mark.skipif(_mbrola_missing() is not None, reason=str(_mbrola_missing()))
def test_an_mbrola_corpus_has_only_mbrola_voices(tmp_path: Path) -> None:
    from audiolm.training.data.corpus_build import MBROLA_VALID_VOICES, build_corpus

    out = tmp_path / "mb"
    build_corpus(out, 0.25, 0.0, progress=False, workers=1, engines=["mbrola"])
    items = read_manifest(out)
    assert items and {i.labels["engine"] for i in items} == {"mbrola"}
    for item in items:
        assert (item.labels["voice"].removeprefix("mb-") in MBROLA_VALID_VOICES) == (item.split == "valid")
        assert item.phones_path is not None and item.phones_path.is_file()


@pytest.mark.skipif(_mbrola_missing() is not None, reason=str(_mbrola_missing()))
def test_mbrola_warnings_are_silenced(capfd: pytest.CaptureFixture) -> None:
    from audiolm.training.data.speech_synth import EspeakEngine

    # br1 (Breton) lacks a few English diphones: mbrola warns for each on its stderr
    utt = EspeakEngine.shared().synth("The quick brown fox jumps over the lazy dog near the bank.", "mb-br1", None)
    assert len(utt.samples) > utt.sample_rate and utt.phones
    assert "unknown" not in capfd.readouterr().err
