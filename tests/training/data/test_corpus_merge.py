"""`audiolm corpus merge` (corpus_merge.py): one corpus reading several, linked not copied."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audiolm.core.audio import load_audio
from audiolm.core.corpus import read_manifest, write_manifest
from audiolm.core.errors import AudiolmError
from audiolm.training.data.corpus_merge import merge_corpora
from audiolm.training.data.synthetic_corpus import make_synthetic_corpus


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sources")
    a = make_synthetic_corpus(root / "a" / "corpus", n_speech=6, n_music=2, seed=0)
    b = make_synthetic_corpus(root / "b" / "corpus", n_speech=6, n_music=2, seed=1)  # same folder name
    return a, b


def test_merge_links_every_item(two_corpora: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    from audiolm.cli.app import main

    a, b = two_corpora
    out = tmp_path / "merged"
    assert main(["corpus", "merge", str(out), str(a), str(b)]) == 0
    assert "merge: 16 items" in capsys.readouterr().err
    items = read_manifest(out)
    sources = read_manifest(a) + read_manifest(b)
    assert len(items) == len(sources) and len({i.id for i in items}) == len(items)
    assert sorted(p.name for p in out.iterdir()) == ["corpus", "corpus-2", "manifest.jsonl", "merge.json"]
    assert (out / "corpus").resolve() == a.resolve() and (out / "corpus-2").resolve() == b.resolve()
    for item, source in zip(items, sources):  # the same audio, split, voice and phones, read through the links
        assert (item.split, item.kind, item.speaker, item.duration) == (
            source.split,
            source.kind,
            source.speaker,
            source.duration,
        )
        assert np.array_equal(load_audio(item.audio_path)[0].numpy(), load_audio(source.audio_path)[0].numpy())
        assert (item.phones_path is None) == (source.phones_path is None)
        if item.phones_path is not None:
            assert item.phones_path.read_text() == source.phones_path.read_text()
    record = json.loads((out / "merge.json").read_text())
    assert [s["items"] for s in record["sources"]] == [8, 8]
    # the merged folder is no place for a build, and is never merged over
    assert main(["corpus", "build", str(out), "--speech-minutes", "0.1", "--no-progress"]) == 2
    manifest = (out / "manifest.jsonl").read_text()
    assert main(["corpus", "merge", str(out), str(a), str(b)]) == 2
    assert (out / "manifest.jsonl").read_text() == manifest


def test_merge_refusals(two_corpora: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_corpora
    with pytest.raises(AudiolmError, match="at least two"):
        merge_corpora(tmp_path / "m1", [a])
    with pytest.raises(AudiolmError, match="named twice"):
        merge_corpora(tmp_path / "m2", [a, a])
    with pytest.raises(AudiolmError, match="inside a source"):
        merge_corpora(a / "merged", [a, b])
    # a held-out evaluation set never enters a training corpus
    heldout = make_synthetic_corpus(tmp_path / "heldout", n_speech=2, n_music=0, seed=2)
    (heldout / "corpus.json").write_text('{"heldout": true}')
    with pytest.raises(AudiolmError, match="held-out evaluation set"):
        merge_corpora(tmp_path / "m3", [a, heldout])
    # a voice valid in one source and train in another would make valid measure a seen voice
    leaky = make_synthetic_corpus(tmp_path / "leaky", n_speech=6, n_music=0, seed=3)
    valid_voice = next(i.speaker for i in read_manifest(a) if i.kind == "speech" and i.split == "valid")
    items = read_manifest(leaky)
    for item in items:
        if item.speaker == valid_voice:
            item.split = "train"
    write_manifest(leaky, items)
    with pytest.raises(AudiolmError, match=f"voice '{valid_voice}' is in the valid split"):
        merge_corpora(tmp_path / "m4", [a, leaky])
    assert not any((tmp_path / f"m{k}").exists() for k in range(1, 5))  # refused before anything is written
