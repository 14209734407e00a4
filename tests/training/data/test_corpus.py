"""The corpus format (manifest, phones), its synthetic stand-in, and `audiolm corpus build`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from audiolm.core.audio import audio_duration, load_audio
from audiolm.core.corpus import CorpusItem, read_manifest, read_phones, write_manifest
from audiolm.core.errors import AudiolmError


def _check_corpus(root: Path, items: list[CorpusItem]) -> None:
    """Everything the tests demand of any corpus: files, durations, alignments, disjoint splits."""
    assert items and len({i.id for i in items}) == len(items)
    for item in items:
        assert item.audio_path.is_file(), item.path
        assert item.audio_path.is_relative_to(root.resolve())
        assert audio_duration(item.audio_path) == pytest.approx(item.duration, abs=1e-3)
        wav, sr = load_audio(item.audio_path)
        assert sr == item.sample_rate and wav.shape[0] == 1 and float(wav.abs().max()) > 0.01
        assert item.speaker and item.labels
        if item.kind == "speech":
            assert item.text and item.phones is not None
            inventory, phones = read_phones(item.phones_path)
            assert inventory in ("flite", "espeak", "festival") and len(phones) >= 3
            previous_end = 0.0
            for start, end, phone in phones:
                assert 0.0 <= start < end <= item.duration + 1e-3 and phone
                assert start >= previous_end - 1e-6  # monotonic, non-overlapping
                previous_end = end
        else:
            assert item.text is None and item.phones is None and "piece" in item.labels
    for kind, key in (("speech", "speaker"), ("music", "piece")):

        def label(i: CorpusItem, key: str = key) -> str:
            return i.speaker if key == "speaker" else i.labels["piece"]

        train = {label(i) for i in items if i.kind == kind and i.split == "train"}
        valid = {label(i) for i in items if i.kind == kind and i.split == "valid"}
        assert train and valid, f"{kind}: both splits must be present"
        assert not train & valid, f"{kind}: {key}s shared by train and valid: {train & valid}"


# ------------------------------------------------------------------------------------------
# format + synthetic corpus


def test_tiny_corpus_is_a_valid_corpus(tiny_corpus: Path) -> None:
    items = read_manifest(tiny_corpus)
    assert sum(i.kind == "speech" for i in items) == 8 and sum(i.kind == "music" for i in items) == 6
    assert {read_phones(i.phones_path)[0] for i in items if i.kind == "speech"} == {"flite", "espeak"}
    assert all(i.sample_rate == 24000 and 1.0 <= i.duration <= 2.0 for i in items)
    _check_corpus(tiny_corpus, items)


def test_read_manifest_filters(tiny_corpus: Path) -> None:
    valid_speech = read_manifest(tiny_corpus, split="valid", kind="speech")
    assert valid_speech and all(i.split == "valid" and i.kind == "speech" for i in valid_speech)
    assert len(read_manifest(tiny_corpus / "manifest.jsonl")) == len(read_manifest(tiny_corpus))
    with pytest.raises(AudiolmError, match="split"):
        read_manifest(tiny_corpus, split="test")


def test_manifest_round_trip(tmp_path: Path) -> None:
    items = [
        CorpusItem(
            "a",
            "speech/a.wav",
            "speech",
            "train",
            1.5,
            24000,
            {"voice": "x"},
            "e:x",
            "hi there",
            "speech/a.phones.json",
        ),
        CorpusItem("b", "music/b.wav", "music", "valid", 2.0, 24000, {"piece": "p"}, "gm:piano"),
    ]
    write_manifest(tmp_path, items)
    back = read_manifest(tmp_path)
    assert [i.to_json() for i in back] == [i.to_json() for i in items]
    assert back[0].audio_path == (tmp_path / "speech/a.wav").resolve()


@pytest.mark.parametrize(
    "line,match",
    [
        ("{not json", "not valid JSON"),
        ('{"id": "a", "path": "x.wav", "kind": "speech", "split": "train", "duration": 1}', "missing field"),
        (
            '{"id": "a", "path": "x.wav", "kind": "speech", "split": "train", "duration": 1, "sample_rate": 16000, "colour": 1}',
            "unknown field",
        ),
        (
            '{"id": "a", "path": "x.wav", "kind": "noise", "split": "train", "duration": 1, "sample_rate": 16000}',
            "kind",
        ),
        (
            '{"id": "a", "path": "../x.wav", "kind": "music", "split": "train", "duration": 1, "sample_rate": 16000}',
            "relative",
        ),
    ],
)
def test_bad_manifest_lines(tmp_path: Path, line: str, match: str) -> None:
    (tmp_path / "manifest.jsonl").write_text(line + "\n")
    with pytest.raises(AudiolmError, match=match) as info:
        read_manifest(tmp_path)
    assert "manifest.jsonl:1" in str(info.value)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(AudiolmError, match="no corpus manifest"):
        read_manifest(tmp_path)


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    item = CorpusItem("a", "a.wav", "music", "train", 1.0, 24000)
    with pytest.raises(AudiolmError, match="twice"):
        write_manifest(tmp_path, [item, item])


# ------------------------------------------------------------------------------------------
# building blocks (no synthesizer needed)


def test_sentences_are_varied_and_reproducible() -> None:
    from audiolm.training.data.text_source import SentenceSource, number_words

    source = SentenceSource()
    sentences = source.sentences(np.random.default_rng(0), 3000)
    assert len(set(sentences)) > 2700
    assert sentences[:20] == source.sentences(np.random.default_rng(0), 20)
    assert all(s[0].isupper() and s[-1] in ".?" for s in sentences)
    assert number_words(2704) == "two thousand seven hundred and four"


def test_parse_psdur_fits_phones_to_audio() -> None:
    from audiolm.training.data.speech_synth import parse_psdur

    phones = parse_psdur("pau:0.2 hh:0.3 ax:0.42 pau:0.6 \n", duration=0.5)  # times run long, like kal16
    assert [p for _, _, p in phones] == ["pau", "hh", "ax", "pau"]
    assert phones[0][0] == 0.0 and phones[-1][1] == pytest.approx(0.5)
    assert all(a[1] == b[0] for a, b in zip(phones, phones[1:]))


def test_excerpt_midi_releases_every_note(tmp_path: Path) -> None:
    mido = pytest.importorskip("mido")
    from audiolm.training.data.music_render import Note, write_excerpt_midi

    # a note held across the window's end must still be released inside the file
    notes = [Note(0.0, 0.5, 60, 80, 0), Note(0.4, 9.0, 64, 80, 1), Note(1.0, 1.5, 67, 80, 2), Note(5.0, 6.0, 72, 80, 0)]
    seconds = write_excerpt_midi(notes, (0.0, 2.0), 1.5, 40, tmp_path / "x.mid")
    assert seconds == pytest.approx(2.0 * 1.5 + 1.0, abs=0.01)
    midi = mido.MidiFile(str(tmp_path / "x.mid"))
    held, now, all_off = set(), 0.0, set()
    for msg in midi:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            held.add((msg.channel, msg.note))
        elif msg.type in ("note_on", "note_off"):
            held.discard((msg.channel, msg.note))
        elif msg.type == "control_change" and msg.control == 123:
            all_off.add(msg.channel)
        elif msg.type == "program_change":
            assert msg.program == 40
    assert not held and all_off == {0, 1, 2}
    assert midi.length == pytest.approx(seconds, abs=0.01)


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")
def test_render_stops_a_runaway_fluidsynth(tmp_path: Path) -> None:
    # fluidsynth -F never finishes a MIDI that leaves a note held: the size bound must stop it
    mido = pytest.importorskip("mido")
    from audiolm.training.data.music_render import find_soundfont, render_midi

    track = mido.MidiTrack(
        [  # strings sustain for as long as the note is held (a piano would decay)
            mido.Message("program_change", program=48, time=0),
            mido.Message("note_on", note=60, velocity=90, time=0),
            mido.MetaMessage("end_of_track", time=960),
        ]
    )
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(str(tmp_path / "held.mid"))
    with pytest.raises(AudiolmError, match="ran away"):
        render_midi(tmp_path / "held.mid", tmp_path / "held.wav", 8000, 0.1, find_soundfont())


def test_trim_trailing_silence() -> None:
    from audiolm.training.data.corpus_build import trim_trailing_silence

    x = np.concatenate([0.5 * np.ones(8000), 1e-6 * np.ones(16000)]).astype(np.float32)
    y = trim_trailing_silence(x, 8000, keep_s=0.25)
    assert len(y) == 8000 + 2000


def test_missing_tools_name_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from audiolm.training.data import music_render, speech_synth
    from audiolm.training.data.corpus_build import check_tools

    monkeypatch.setattr(speech_synth.shutil, "which", lambda name: None)
    with pytest.raises(AudiolmError, match=r"apt-get install espeak-ng"):
        check_tools(speech=True, music=False)
    with pytest.raises(AudiolmError, match=r"apt-get install fluidsynth"):
        check_tools(speech=False, music=True)
    monkeypatch.setattr(
        music_render, "SOUNDFONTS", (("FluidR3_GM", "/nonexistent/FluidR3_GM.sf2", "fluid-soundfont-gm"),)
    )
    with pytest.raises(AudiolmError, match=r"apt-get install fluid-soundfont-gm"):
        music_render.find_soundfont()


def test_build_refuses_foreign_folder(tmp_path: Path) -> None:
    from audiolm.training.data.corpus_build import build_corpus

    (tmp_path / "thesis.txt").write_text("mine")
    with pytest.raises(AudiolmError, match="not a corpus folder"):
        build_corpus(tmp_path, 0.1, 0.1, progress=False)


# ------------------------------------------------------------------------------------------
# the real builder (needs espeak-ng, flite, fluidsynth and a soundfont)


def _missing_tools() -> str | None:
    from audiolm.training.data.corpus_build import check_tools

    try:
        check_tools(speech=True, music=True)
    except AudiolmError as e:
        return str(e)
    return None


needs_tools = pytest.mark.skipif(_missing_tools() is not None, reason=f"corpus tools missing: {_missing_tools()}")


@pytest.fixture(scope="module")
def built_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from audiolm.training.data.corpus_build import build_corpus

    out = tmp_path_factory.mktemp("built") / "corpus"
    build_corpus(out, speech_minutes=0.3, music_minutes=0.3, sample_rate=24000, seed=0, workers=2, progress=False)
    return out


@needs_tools
def test_build_writes_a_valid_corpus(built_corpus: Path) -> None:
    items = read_manifest(built_corpus)
    _check_corpus(built_corpus, items)
    speech = [i for i in items if i.kind == "speech"]
    music = [i for i in items if i.kind == "music"]
    assert sum(i.duration for i in speech) >= 18.0 and sum(i.duration for i in music) >= 18.0
    assert {"espeak", "flite"} <= {i.labels["engine"] for i in speech} or len(speech) < 6
    assert len({i.text for i in speech}) == len(speech)
    assert all(4.9 <= i.duration <= 7.5 for i in music)  # 5-6 s excerpts (after the tempo change) + release
    from audiolm.training.data.corpus_build import (
        ESPEAK_VALID_VARIANTS,
        FESTIVAL_VALID_VOICES,
        FLITE_VALID_VOICES,
        MBROLA_VALID_VOICES,
    )
    from audiolm.training.data.reserved import is_reserved_voice

    for item in speech:  # the valid voices never reach train; the reserved ones reach neither
        variant = item.labels.get("variant") if item.labels["engine"] == "espeak" else None
        valid_voice = (
            variant in ESPEAK_VALID_VARIANTS
            or item.labels["voice"] in FLITE_VALID_VOICES + FESTIVAL_VALID_VOICES
            or (item.labels["engine"] == "mbrola" and item.labels["voice"].removeprefix("mb-") in MBROLA_VALID_VOICES)
        )
        assert valid_voice == (item.split == "valid")
        assert not is_reserved_voice(item.labels["engine"], item.labels["voice"])
        assert 0.9 <= item.labels["warp"] <= 1.1
    assert all("MuseScore" not in i.labels["soundfont"] for i in music)


@needs_tools
def test_rebuild_is_a_no_op_and_resumes(built_corpus: Path) -> None:
    from audiolm.cli.app import main

    manifest = (built_corpus / "manifest.jsonl").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in built_corpus.rglob("*.wav")}
    # through the CLI: the same command again changes nothing
    assert (
        main(
            ["corpus", "build", str(built_corpus), "--speech-minutes", "0.3", "--music-minutes", "0.3", "--no-progress"]
        )
        == 0
    )
    assert (built_corpus / "manifest.jsonl").read_text() == manifest
    assert {p: p.stat().st_mtime_ns for p in built_corpus.rglob("*.wav")} == stamps
    # a lost file (a killed build) is rendered again, the same
    victim = read_manifest(built_corpus, kind="speech")[0]
    victim.audio_path.unlink()
    assert (
        main(
            ["corpus", "build", str(built_corpus), "--speech-minutes", "0.3", "--music-minutes", "0.3", "--no-progress"]
        )
        == 0
    )
    assert victim.audio_path.is_file()
    assert (built_corpus / "manifest.jsonl").read_text() == manifest
    assert not list(built_corpus.rglob("*.tmp"))


@needs_tools
def test_rebuild_with_other_settings_is_refused(built_corpus: Path, capsys: pytest.CaptureFixture) -> None:
    from audiolm.cli.app import main

    assert main(["corpus", "build", str(built_corpus), "--seed", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "seed" in err and err.count("\n") == 1


@needs_tools
def test_render_valid_examples(tmp_path: Path, built_corpus: Path) -> None:
    from audiolm.training.data.corpus_build import render_valid_music, render_valid_speech

    speech = render_valid_speech(tmp_path / "prompt_speech.wav", k=0, seed=0)
    assert speech.split == "valid" and (tmp_path / "prompt_speech.phones.json").is_file()
    assert speech.speaker in {i.speaker for i in read_manifest(built_corpus, split="valid", kind="speech")}
    music = render_valid_music(tmp_path / "prompt_music.wav", k=0, seed=0, seconds=4.0)
    assert music.split == "valid" and 3.5 <= music.duration <= 5.5
    assert speech.audio_path == (tmp_path / "prompt_speech.wav").resolve() and speech.phones_path.is_file()
    assert audio_duration(tmp_path / "prompt_music.wav") == pytest.approx(music.duration, abs=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "prompt_music.wav",
        "prompt_speech.phones.json",
        "prompt_speech.wav",
    ]


@needs_tools
def test_killed_build_resumes_to_the_same_corpus(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    code = (
        "from audiolm.training.data.corpus_build import build_corpus; "
        f"build_corpus({str(out)!r}, 0.4, 0.0, workers=1, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and len(list(out.rglob("*.wav"))) < 3:
        time.sleep(0.02)
    proc.kill()  # SIGKILL, mid-way through the speech
    proc.wait()
    from audiolm.training.data.corpus_build import build_corpus

    items = build_corpus(out, 0.4, 0.0, workers=1, progress=False)
    assert not list(out.rglob("*.tmp"))
    reference = build_corpus(tmp_path / "fresh", 0.4, 0.0, workers=1, progress=False)
    # the same items, voices and texts; espeak-ng's timing jitters by a few ms from run to run
    # (its wave generator keeps state between utterances), so durations match only closely, and
    # a build that ends near a chunk boundary may differ by its last chunk
    n = min(len(items), len(reference))
    assert n >= 4 and abs(len(items) - len(reference)) <= 4
    for got, want in zip(items[:n], reference[:n]):
        got_json, want_json = got.to_json(), want.to_json()
        assert got_json.pop("duration") == pytest.approx(want_json.pop("duration"), rel=0.03)
        assert got_json == want_json
    for item in items:
        _, phones = read_phones(item.phones_path)
        assert phones[-1][1] <= item.duration + 1e-3
