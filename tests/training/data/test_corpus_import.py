"""`audiolm corpus import`: any folder of audio -> the corpus format, robust to bad files, resumable."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiolm.core.audio import audio_duration, load_audio, rms_db
from audiolm.core.corpus import read_manifest
from audiolm.core.errors import AudiolmError
from audiolm.training.data.corpus_import import ImportSettings, chunk_stream, import_corpus

RATE = 16000


def _voice(seconds: float, f0: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """Speech-like audio: a buzzy tone with a syllable-rate envelope."""
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6))
    return (0.2 * tone * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _long_with_pauses(minutes: float, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Phrases of 4-9 s with 0.4 s of silence between them; returns the audio and the pauses."""
    parts, pauses, n = [], [], 0
    while n < minutes * 60 * RATE:
        phrase = _voice(rng.uniform(4, 9), rng.uniform(90, 220), rng)
        parts += [phrase, np.zeros(int(0.4 * RATE), np.float32)]
        pauses.append((n + len(phrase), n + len(phrase) + int(0.4 * RATE)))
        n += len(phrase) + int(0.4 * RATE)
    return np.concatenate(parts), pauses


def _tree_state(root: Path) -> dict[str, tuple]:
    return {
        p.relative_to(root).as_posix(): (
            p.is_dir(),
            p.stat().st_mtime_ns,
            None if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest(),
        )
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def source_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    rng = np.random.default_rng(0)
    src = tmp_path_factory.mktemp("src")
    for speaker, f0 in (("alice", 200.0), ("bob", 110.0), ("carol", 230.0), ("dave", 95.0), ("erin", 180.0)):
        for chapter in ("ch1", "ch2"):
            folder = src / "speech" / speaker / chapter
            folder.mkdir(parents=True)
            sf.write(folder / "u1.wav", _voice(2.0, f0, rng), RATE)
            sf.write(folder / "u2.flac", _voice(1.5, f0, rng, 22050), 22050)
    sf.write(src / "speech" / "alice" / "stereo.wav", np.stack([_voice(2.0, 200, rng, 44100)] * 2, axis=1), 44100)
    sf.write(src / "speech" / "frank.ogg", _voice(2.0, 150, rng), RATE)  # a file right in the kind root
    long, pauses = _long_with_pauses(10.0, rng)
    (src / "speech" / "gina").mkdir()
    sf.write(src / "speech" / "gina" / "long.wav", long, RATE)
    bad = src / "speech" / "bob" / "ch1"
    (bad / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(range(256)) * 4)
    (bad / "empty.wav").write_bytes(b"")
    (bad / "x.wav").mkdir()  # a directory with an audio name
    (bad / "x.wav" / "inside.txt").write_text("not audio")
    sf.write(bad / "silent.wav", np.zeros(2 * RATE, np.float32), RATE)
    sf.write(bad / "short.wav", _voice(0.3, 120, rng), RATE)
    sf.write(bad / "noframes.wav", np.zeros(0, np.float32), RATE)
    (bad / "transcript.txt").write_text("hello")
    for album in ("album1", "album2", "album3"):
        (src / "music" / album).mkdir(parents=True)
        for track in range(2):
            sf.write(src / "music" / album / f"t{track}.wav", _voice(3.0, 330 + 40 * track, rng), RATE)
    (src / "misc").mkdir()
    sf.write(src / "misc" / "nokind.wav", _voice(2.0, 150, rng), RATE)
    return src, pauses


@pytest.fixture(scope="module")
def imported(source_folder, tmp_path_factory: pytest.TempPathFactory):
    src, _ = source_folder
    before = _tree_state(src)
    out = tmp_path_factory.mktemp("imported") / "corpus"
    items, report = import_corpus(src, out, ImportSettings(sample_rate=RATE), workers=2, progress=False)
    assert _tree_state(src) == before  # SRC is never modified
    return out, items, report


def test_import_skips_bad_files_and_reports_them(imported) -> None:
    out, items, report = imported
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in report["skipped"]}
    assert reasons["corrupt.wav"].startswith("unreadable")
    assert reasons["empty.wav"].startswith("empty") and reasons["noframes.wav"].startswith("empty")
    assert reasons["silent.wav"] == "silent" and reasons["short.wav"].startswith("too short")
    assert reasons["nokind.wav"].startswith("no kind")
    assert "x.wav" not in reasons and "inside.txt" not in reasons and "transcript.txt" not in reasons
    assert report["ignored_non_audio"] == 2
    assert json.loads((out / "import_report.json").read_text()) == report
    assert not any("corrupt" in i.labels["source"] or "silent" in i.labels["source"] for i in items)


def test_import_writes_a_valid_corpus_split_by_speaker(imported) -> None:
    out, items, _ = imported
    assert read_manifest(out) == items and len(items) > 30
    for item in items:
        assert item.audio_path.is_file() and item.sample_rate == RATE
        assert audio_duration(item.audio_path) == pytest.approx(item.duration, abs=1e-3)
        wav, _ = load_audio(item.audio_path)
        assert wav.shape[0] == 1 and rms_db(wav) == pytest.approx(-23.0, abs=0.5)  # the builder's level
    speech = [i for i in items if i.kind == "speech"]
    by_group: dict[str, set[str]] = {}
    for item in speech:
        by_group.setdefault(item.labels["group"], set()).add(item.split)
    # nested speaker folders: the speaker is the group, whatever the chapter below it
    assert set(by_group) == {"alice", "bob", "carol", "dave", "erin", "frank.ogg", "gina"}
    assert all(len(splits) == 1 for splits in by_group.values())  # a speaker is in one split only
    assert {s for splits in by_group.values() for s in splits} == {"train", "valid"}
    music_groups = {i.labels["group"]: i.split for i in items if i.kind == "music"}
    assert set(music_groups) == {"album1", "album2", "album3"} and set(music_groups.values()) == {"train", "valid"}
    stereo = [i for i in items if i.labels["source"].endswith("stereo.wav")]
    assert len(stereo) == 1 and stereo[0].duration == pytest.approx(2.0, abs=0.01)


def test_a_ten_minute_file_is_chunked_at_its_pauses(imported, source_folder) -> None:
    _, items, _ = imported
    _, pauses = source_folder
    chunks = sorted((i for i in items if i.labels["source"].endswith("long.wav")), key=lambda i: i.labels["chunk"])
    assert sum(c.duration for c in chunks) == pytest.approx(pauses[-1][1] / RATE, abs=0.01)
    assert all(1.0 <= c.duration <= 30.0 for c in chunks) and len(chunks) >= 20
    for chunk, following in zip(chunks, chunks[1:]):
        assert following.labels["start"] == pytest.approx(chunk.labels["start"] + chunk.duration, abs=1e-3)
        cut = round(following.labels["start"] * RATE)
        assert any(s <= cut <= e for s, e in pauses), f"cut at {cut / RATE:.2f} s is not in a pause"


def test_fixed_chunks_and_a_short_tail() -> None:
    blocks = iter([np.ones(2500, np.float32), np.ones(2600, np.float32)])  # 5100 samples
    chunks = list(chunk_stream(blocks, 100, chunk_seconds=10.0, min_seconds=2.0, mode="fixed"))
    assert [(s, len(c)) for s, c in chunks] == [(0, 1000), (1000, 1000), (2000, 1000), (3000, 1000), (4000, 1100)]
    assert list(chunk_stream(iter([np.ones(150, np.float32)]), 100, 10.0, 2.0, "fixed"))[0][1].shape == (150,)


def test_a_file_list_and_a_rerun(imported, source_folder, tmp_path: Path) -> None:
    src, _ = source_folder
    out, items, report = imported
    listing = tmp_path / "files.txt"
    listing.write_text(
        "# my files\n" + "\n".join(str(p) for p in sorted((src / "music").rglob("*.wav"))) + "\nnope.wav\n"
    )
    got, rep = import_corpus(
        listing,
        tmp_path / "from_list",
        ImportSettings(sample_rate=RATE, kind="music", group_by="parent"),
        workers=1,
        progress=False,
    )
    assert len(got) == 6 and {i.kind for i in got} == {"music"}
    assert [s["reason"] for s in rep["skipped"]] == ["missing"]
    # the same import again: nothing is redone, the same manifest
    manifest = (out / "manifest.jsonl").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    import_corpus(src, out, ImportSettings(sample_rate=RATE), workers=2, progress=False)
    assert (out / "manifest.jsonl").read_text() == manifest
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == stamps


def test_import_user_errors(source_folder, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from audiolm.cli.app import main

    src, _ = source_folder
    assert main(["corpus", "import", str(src), str(src / "out"), "--no-progress"]) == 2  # OUT inside SRC
    assert "inside" in capsys.readouterr().err and not (src / "out").exists()
    assert main(["corpus", "import", str(tmp_path / "nothing"), str(tmp_path / "o"), "--no-progress"]) == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("mine")
    with pytest.raises(AudiolmError, match="not an import folder"):
        import_corpus(src, tmp_path / "mine", progress=False)
    with pytest.raises(AudiolmError, match="pass --kind"):
        import_corpus(src / "speech" / "alice", tmp_path / "k", progress=False)  # no speech/ or music/ inside


def test_a_killed_import_resumes_to_the_same_corpus(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    for s in range(6):
        (src / f"spk{s}").mkdir(parents=True)
        for u in range(8):
            sf.write(src / f"spk{s}" / f"u{u}.wav", _voice(rng.uniform(1.5, 3.0), 100 + 20 * s, rng), RATE)
    out = tmp_path / "out"
    code = (
        "from audiolm.training.data.corpus_import import import_corpus, ImportSettings; "
        f"import_corpus({str(src)!r}, {str(out)!r}, ImportSettings(sample_rate={RATE}, kind='speech'), "
        "workers=1, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 120
    while (
        proc.poll() is None
        and time.monotonic() < deadline
        and len(list((out / ".import").glob("*.json")) if (out / ".import").is_dir() else []) < 5
    ):
        time.sleep(0.01)
    proc.kill()  # SIGKILL mid-way
    proc.wait()
    assert not (out / "manifest.jsonl").exists()
    done_before = len(list((out / ".import").glob("*.json")))
    assert 5 <= done_before < 48
    items, _ = import_corpus(src, out, ImportSettings(sample_rate=RATE, kind="speech"), workers=2, progress=False)
    fresh, _ = import_corpus(
        src, tmp_path / "fresh", ImportSettings(sample_rate=RATE, kind="speech"), workers=1, progress=False
    )
    assert [i.to_json() for i in items] == [i.to_json() for i in fresh] and len(items) == 48
    assert not list(out.rglob(".*.tmp"))
    for got, want in zip(items, fresh):
        assert got.audio_path.read_bytes() == want.audio_path.read_bytes()
