"""External judges of `audiolm eval continuation`: the set scores (retrieval, own vs others,
shuffled floor), the music judges (key, tempo) and the per-kind judging on synthetic inputs,
where the right answer is known by construction."""

from __future__ import annotations

import importlib.util
import itertools
import json

import numpy as np
import pytest
import torch
from test_judges import PROMPT

from audiolm.core.audio import load_audio, resample
from audiolm.evaluation.consistency import own_and_others, shuffled_top1, top1
from audiolm.evaluation.continuation import judge_music, judge_speech, pairwise_figures, speaker_figures

SR = 24000


def _needs(*modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


# -- set scores ----------------------------------------------------------------------------------


def test_top1_and_the_shuffled_floor_is_chance():
    """shuffled_top1 is top1 averaged over every pairing of continuations with prompts (checked by
    enumerating all 4! of them), which is chance 1/N whatever the similarities."""
    gen = torch.Generator().manual_seed(0)
    for sim in (torch.randn(4, 4, generator=gen), torch.eye(4), torch.ones(4, 4)):
        # pairing p: continuation p[i] is scored as prompt i's (row i of the permuted matrix)
        mean = np.mean([top1(sim[list(p)]) for p in itertools.permutations(range(4))])
        assert shuffled_top1(sim) == pytest.approx(mean) == pytest.approx(0.25)
    assert top1(torch.eye(4)) == 1.0 and top1(torch.ones(4, 4)) == pytest.approx(0.25)  # ties shared
    shift = torch.eye(4)[[1, 2, 3, 0]]  # continuation i looks like prompt i + 1
    assert top1(shift) == 0.0


def test_own_and_others():
    scores = torch.tensor([[1.0, 0.2, 0.4], [0.0, 0.5, 0.6], [0.8, 0.2, 0.9]])
    own, others = own_and_others(scores)
    assert own == pytest.approx(0.8) and others == pytest.approx((0.2 + 0.4 + 0.0 + 0.6 + 0.8 + 0.2) / 6)
    assert own_and_others(torch.ones(1, 1)) == (1.0, None)
    assert pairwise_figures(np.eye(3)) == {"agreement": 1.0, "agreement_others": 0.0}


def test_speaker_figures_of_unit_embeddings():
    emb = np.eye(3, 8)  # three orthogonal "voices"
    same = speaker_figures(emb, emb)
    assert same == {"top1": 1.0, "cosine_own": 1.0, "cosine_others": 0.0}
    swapped = speaker_figures(emb, emb[[1, 2, 0]])
    assert swapped == {"top1": 0.0, "cosine_own": 0.0, "cosine_others": 0.5}


# -- music judges ----------------------------------------------------------------------------------


def piece(root_midi: int, minor: bool, bpm: float, seconds: float = 4.0, sr: int = SR) -> torch.Tensor:
    """A synthetic piece [1, N]: the tonic triad arpeggiated one note per beat over a tonic bass,
    plucked (decaying) harmonic tones."""
    third = 3 if minor else 4
    steps = [0, third, 7, 12, 7, third]
    beat, n = 60.0 / bpm, int(seconds * sr)
    out = np.zeros(n)
    for k in range(int(seconds / beat) + 1):
        start = int(k * beat * sr)
        length = min(int(beat * sr), n - start)
        if length <= 0:
            break
        t = np.arange(length) / sr
        env = np.exp(-6 * t)
        f = 440 * 2 ** ((root_midi + steps[k % len(steps)] - 69) / 12)
        bass = 440 * 2 ** ((root_midi - 12 - 69) / 12)
        out[start : start + length] += env * (
            sum(0.3 / h * np.sin(2 * np.pi * f * h * t) for h in (1, 2, 3)) + 0.2 * np.sin(2 * np.pi * bass * t)
        )
    return torch.from_numpy(out).float()[None]


PIECES = [(60, False, 100), (69, True, 140), (66, True, 80)]  # C major, A minor, F# minor


@_needs("librosa")
def test_key_and_tempo_of_synthetic_pieces():
    from audiolm.evaluation import music_judges as MJ

    for (root, minor, bpm), name in zip(PIECES, ("C major", "A minor", "F# minor")):
        clip = piece(root, minor, bpm)
        key, tempo = MJ.estimate_key(clip, SR), MJ.estimate_tempo(clip, SR)
        assert MJ.key_name(key) == name
        assert MJ.tempo_agreement(bpm, tempo) == 1.0, (bpm, tempo)
        # a clip against itself: both agreements at the top
        assert MJ.key_agreement(key, MJ.estimate_key(clip, SR)) == 1.0
        assert MJ.tempo_agreement(tempo, MJ.estimate_tempo(clip, SR)) == 1.0
    assert MJ.estimate_key(torch.zeros(1, SR), SR) is None and MJ.estimate_tempo(torch.zeros(1, SR), SR) == 0.0


def test_key_and_tempo_agreement_rules():
    from audiolm.evaluation.music_judges import MAJOR_PROFILE, key_agreement, key_from_chroma, tempo_agreement

    c_major, a_minor = (0, "major"), (9, "minor")
    assert key_agreement(c_major, c_major) == 1.0
    assert key_agreement(c_major, (7, "major")) == key_agreement((7, "major"), c_major) == 0.5  # G / F major
    assert key_agreement(c_major, (5, "major")) == 0.5
    assert key_agreement(c_major, a_minor) == key_agreement(a_minor, c_major) == 0.3  # relative
    assert key_agreement(c_major, (0, "minor")) == 0.2  # parallel
    assert key_agreement(c_major, (1, "major")) == 0.0 and key_agreement(None, c_major) == 0.0
    assert key_from_chroma(np.roll(MAJOR_PROFILE, 2)) == (2, "major") and key_from_chroma(np.ones(12)) is None
    assert tempo_agreement(100, 107.9) == 1.0 and tempo_agreement(100, 109) == 0.0
    assert tempo_agreement(100, 200) == tempo_agreement(100, 51) == 1.0 and tempo_agreement(100, 150) == 0.0
    assert tempo_agreement(0, 100) == 0.0


def test_key_profile_correlation():
    from audiolm.evaluation.music_judges import (
        MAJOR_PROFILE,
        key_from_profile,
        profile_correlation,
        profile_from_chroma,
    )

    c_major = profile_from_chroma(MAJOR_PROFILE)
    assert c_major.shape == (24,) and key_from_profile(c_major) == (0, "major")
    assert profile_correlation(c_major, c_major) == pytest.approx(1.0)
    g_major, f_sharp = profile_from_chroma(np.roll(MAJOR_PROFILE, 7)), profile_from_chroma(np.roll(MAJOR_PROFILE, 6))
    assert profile_correlation(c_major, f_sharp) < profile_correlation(c_major, g_major) < 1.0  # far vs near keys
    assert profile_correlation(None, c_major) == 0.0 and profile_from_chroma(np.ones(12)) is None


@_needs("librosa")
def test_judge_music_ceiling_at_top_and_shuffled_floor():
    """Real continuations = the prompts themselves (clip vs itself): agreement 1; the generated
    continuations are the other pieces (a shuffled pairing): their agreement is the floor's."""
    prompts = [piece(*p) for p in PIECES]
    audio = {"prompt": prompts, "real": prompts, "real_codec": prompts}
    shuffled = [prompts[1], prompts[2], prompts[0]]
    out = judge_music(audio, [shuffled], SR, [0])
    for judge in ("key", "key_profile", "tempo"):
        j = out[judge]
        assert j["real"]["agreement"] == pytest.approx(1.0) and j["real_codec"] == j["real"]  # the ceiling, at the top
        assert j["floor"]["agreement"] == j["real_codec"]["agreement_others"] < 1.0
        assert j["generated"] == {k: v for k, v in j["generated_by_seed"][0].items() if k != "seed"}
        assert j["generated_by_seed"][0]["seed"] == 0
    # C major vs A minor are relative keys (0.3), A minor vs F# minor and F# minor vs C major unrelated
    assert out["key"]["generated"]["agreement"] == pytest.approx(0.3 / 3)
    assert out["tempo"]["generated"]["agreement"] == 0.0  # 100 / 140 / 80 BPM: no pair within 8 % or 2x
    # graded: C major and its relative A minor share most of their profile, the others less
    assert out["key_profile"]["floor"]["agreement"] < 0.5
    assert out["estimates"]["key"]["prompt"] == ["C major", "A minor", "F# minor"]
    assert out["estimates"]["key"]["generated"] == ["A minor", "F# minor", "C major"]


# -- speech judges ---------------------------------------------------------------------------------


def voices(n: int = 3, seconds: float = 2.0) -> list[torch.Tensor]:
    """n synthetic voices from the shipped speech prompt: resampled by factors 0.8..1.25 and
    played at 24 kHz, which moves pitch and formants together (the corpus' sample-rate warp)."""
    wav, rate = load_audio(PROMPT, mono=True)
    out = []
    for warp in np.geomspace(0.8, 1.25, n):
        warped = resample(wav, rate, round(SR / warp))  # played back at SR: pitch x warp
        out.append(warped[:, : int(seconds * SR)].float())
    return out


@_needs("resemblyzer", "speechmos", "onnxruntime")
def test_judge_speech_retrieval_ceiling_and_floor():
    """Continuations = the prompts' own audio: GE2E top-1 1.0 (own cosine 1); the generated draw
    pairs each prompt with another voice: top-1 0, its own cosine the floor's."""
    prompts = voices()
    audio = {"prompt": prompts, "real": prompts, "real_codec": prompts}
    out = judge_speech(audio, [[prompts[1], prompts[2], prompts[0]]], SR, [7])
    sp = out["speaker"]
    assert sp["real"]["top1"] == sp["real_codec"]["top1"] == 1.0
    assert sp["real_codec"]["cosine_own"] == pytest.approx(1.0, abs=1e-5)
    assert sp["real_codec"]["cosine_others"] < 0.99
    assert sp["floor"]["top1"] == pytest.approx(1 / 3)  # shuffled pairing: chance
    assert sp["floor"]["cosine_own"] == sp["real_codec"]["cosine_others"]
    assert sp["generated"]["top1"] == 0.0 and sp["generated_by_seed"][0]["seed"] == 7
    assert sp["generated"]["cosine_own"] == pytest.approx(sp["real"]["cosine_others"], abs=1e-3)
    mos = out["dnsmos"]
    assert set(mos) == {"prompt", "generated", "generated_by_seed", "real", "real_codec", "floor"}
    assert set(mos["prompt"]) == {"ovrl", "sig", "bak"}
    assert mos["real"] == mos["prompt"]
    assert mos["generated"]["ovrl"] == pytest.approx(mos["prompt"]["ovrl"])  # the same clips, reordered
    assert mos["floor"]["ovrl"] < min(1.3, mos["prompt"]["ovrl"])  # white noise at the prompts' level


# -- wired into the command ------------------------------------------------------------------------


EVAL = ["--n", "2", "--prompt-seconds", "0.5", "--seconds", "0.3"]


@_needs("resemblyzer", "speechmos", "onnxruntime", "librosa")
def test_eval_continuation_reports_the_judges(tiny_corpus, tiny_pipeline, capsys):
    from audiolm.cli.app import main

    args = ["eval", "continuation", "--data", str(tiny_corpus), "--pipeline", str(tiny_pipeline), *EVAL]
    assert main([*args, "--json", "--seeds", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["judges"] is True
    speech, music = report["kinds"]["speech"]["judges"], report["kinds"]["music"]["judges"]
    assert set(speech) == {"speaker", "dnsmos"} and set(music) == {"key", "key_profile", "tempo", "estimates"}
    sp = speech["speaker"]
    assert [d["seed"] for d in sp["generated_by_seed"]] == [0, 1000]
    assert sp["generated"]["top1"] == pytest.approx(np.mean([d["top1"] for d in sp["generated_by_seed"]]))
    assert sp["floor"]["top1"] == pytest.approx(0.5)  # N = 2 voices
    assert sp["floor"]["cosine_own"] == sp["real_codec"]["cosine_others"]
    assert 1.0 <= speech["dnsmos"]["generated"]["ovrl"] <= 5.0
    for judge in ("key", "key_profile", "tempo"):
        assert music[judge]["floor"]["agreement"] is None  # one valid music clip: no other piece
        assert (-1.0 if judge == "key_profile" else 0.0) <= music[judge]["generated"]["agreement"] <= 1.0
    assert len(music["estimates"]["key"]["generated"]) == 1

    assert main([*args]) == 0
    table = capsys.readouterr().out
    for label in (
        "GE2E speaker top-1: real continuation through the codec (ceiling) finds its prompt",
        "GE2E speaker top-1: shuffled pairing (floor; = chance) | 0.50 | - |",
        "DNSMOS OVRL / SIG / BAK: prompts",
        "DNSMOS OVRL: generated continuation minus its prompt",
        "key agreement with the prompt (MIREX score): generated continuation | - |",
        (
            "tempo agreement with the prompt (8 %, octave errors forgiven): another piece's real continuation "
            "through the codec (floor) | - | - |"
        ),
        "consistency top-1: generated continuation finds its prompt",
    ):
        assert label in table, label

    assert main([*args, "--json", "--skip-judges"]) == 0
    skipped = json.loads(capsys.readouterr().out)
    assert skipped["judges"] is False and skipped["kinds"]["speech"]["judges"] is None
    c, c2 = skipped["kinds"]["speech"]["consistency"], report["kinds"]["speech"]["consistency"]
    assert c["real_codec_rank"] == c2["real_codec_rank"] and c["generated_by_seed"][0] == c2["generated_by_seed"][0]


def test_eval_continuation_one_kind(tiny_corpus, tiny_pipeline, capsys):
    """--kind music: speech is not evaluated (reported as None, "-" in the table)."""
    from audiolm.cli.app import main

    args = [
        "eval",
        "continuation",
        "--data",
        str(tiny_corpus),
        "--pipeline",
        str(tiny_pipeline),
        *EVAL,
        "--kind",
        "music",
        "--skip-judges",
    ]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kinds"]["speech"] is None and report["kinds"]["music"]["n"] == 1
    assert main(args) == 0
    assert "| clips (N) | - | 1 |" in capsys.readouterr().out
    try:  # argparse exits here; where main returns its code instead, the same code
        code = main([*args, "--kind", "noise"])
    except SystemExit as e:
        code = e.code
    assert code == 2
    assert "invalid choice" in capsys.readouterr().err
