"""`audiolm bench compare`: the token pipeline vs a WaveNet continuation and a WaveNet vocoder,
with tiny random models on the tiny corpus."""

from __future__ import annotations

import json

import pytest
import torch

from audiolm.cli.app import main
from audiolm.core.audio import resample
from audiolm.core.checkpoint import copy_checkpoint
from audiolm.models.wavenet.config import WaveNetConfig
from audiolm.models.wavenet.model import WaveNet

ARGS = ["--n", "2", "--prompt-seconds", "0.3", "--seconds", "0.1"]


def tiny_wavenet(path, **overrides):
    fields = dict(
        sample_rate=8000,
        layers=4,
        stacks=2,
        residual_channels=8,
        dilation_channels=8,
        skip_channels=16,
        gc_channels=4,
        lc_channels=8,
        crop_samples=320,
    )
    fields.update(overrides)
    torch.manual_seed(0)
    return WaveNet(WaveNetConfig(**fields)).save_pretrained(path)


@pytest.fixture(scope="module")
def wavenets(tmp_path_factory):
    root = tmp_path_factory.mktemp("wavenets")
    return {
        # raw-sample continuation, conditioned on the speaker / instrument label
        "wavenet": tiny_wavenet(root / "wavenet", gc_cardinality=2, gc_labels=["flite:synth4", "gm:synth-string"]),
        # a vocoder on 4 codec levels (3 kbps): 12 kHz / hop 160 = the codec's 75 Hz
        "vocoder": tiny_wavenet(root / "vocoder", sample_rate=12000, lc_n_q=4, lc_hop=160),
        "vocoder_q2": tiny_wavenet(root / "vocoder_q2", sample_rate=12000, lc_n_q=3, lc_hop=160),
        "vocoder_50hz": tiny_wavenet(root / "vocoder_50hz", sample_rate=8000, lc_n_q=4, lc_hop=160),
    }


def test_compare_json(tiny_corpus, tiny_pipeline, wavenets, tmp_path, capsys):
    table = tmp_path / "compare.md"
    code = main(
        [
            "bench",
            "compare",
            "--data",
            str(tiny_corpus),
            "--pipeline",
            str(tiny_pipeline),
            "--wavenet",
            str(wavenets["wavenet"]),
            "--vocoder",
            str(wavenets["vocoder"]),
            *ARGS,
            "--json",
            "--out",
            str(table),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["machine"] and report["wavenet"] == str(wavenets["wavenet"])
    systems = {(r["kind"], r["system"]) for r in report["rows"]}
    for kind in ("speech", "music"):
        for system in ("token pipeline", "WaveNet", "real audio", "chance (1/N)", "codec decoder", "WaveNet vocoder"):
            assert (kind, system) in systems
    for r in report["rows"]:
        if r["system"] in ("token pipeline", "WaveNet", "codec decoder", "WaveNet vocoder"):
            assert r["rtf"] > 0
        if r["task"] == "continuation":
            assert 0 <= r["consistency"] <= 1 and r["mel_distance"] is None
        else:
            assert r["mel_distance"] > 0 and r["consistency"] is None
    assert "| speech | 2 | WaveNet vocoder | resynthesis |" in table.read_text()


def test_compare_pipeline_only_table(tiny_corpus, tiny_pipeline, capsys):
    code = main(
        ["bench", "compare", "--data", str(tiny_corpus), "--pipeline", str(tiny_pipeline), *ARGS, "--vocoder", "none"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "| music | 1 | token pipeline | continuation |" in out and "WaveNet" not in out.split("\n", 2)[2]


@pytest.mark.parametrize("shipped", [True, False])
def test_compare_defaults_to_the_shipped_vocoder(
    shipped, tiny_corpus, tiny_pipeline, wavenets, tmp_path, monkeypatch, capsys
):
    """No --vocoder: checkpoints/wavenet_vocoder when it is there, else no vocoder rows."""
    import audiolm.evaluation.compare

    root = tmp_path / "checkpoints"
    if shipped:
        copy_checkpoint(wavenets["vocoder"], root / "wavenet_vocoder", dtype=torch.float16)  # shipped in fp16
    monkeypatch.setattr(audiolm.evaluation.compare, "shipped_checkpoint", lambda name: root / name)
    code = main(["bench", "compare", "--data", str(tiny_corpus), "--pipeline", str(tiny_pipeline), *ARGS, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    vocoder_rows = [r for r in report["rows"] if r["system"] == "WaveNet vocoder"]
    if shipped:
        assert report["vocoder"] == str(root / "wavenet_vocoder") and len(vocoder_rows) == 2
    else:
        assert report["vocoder"] is None and not vocoder_rows


def test_resynthesis_rows_match_a_direct_computation(tiny_corpus, tiny_lm, wavenets):
    """The (c) rows: mel distance of the codec decoder and of the vocoder (same seed per clip) to
    the clip's first `seconds`, each at the lower of the two sample rates, averaged over clips."""
    from audiolm.evaluation.compare import compare
    from audiolm.evaluation.continuation import load_clips
    from audiolm.models.codec.metrics import mel_distance

    vocoder = WaveNet.from_pretrained(wavenets["vocoder"])
    report = compare(
        tiny_lm, tiny_corpus, vocoder=vocoder, n=2, prompt_seconds=0.3, seconds=0.1, seed=3, progress=False
    )
    sr, codec, rate = tiny_lm.sample_rate, tiny_lm.codec, min(tiny_lm.sample_rate, vocoder.sample_rate)
    for kind in ("speech", "music"):
        _, clips = load_clips(tiny_corpus, "valid", kind, 2, sr, 0.3, 0.1)
        expected = {"codec decoder": [], "WaveNet vocoder": []}
        for i, clip in enumerate(clips):
            audio = clip.audio[:, : int(0.1 * sr) // codec.hop_length * codec.hop_length]
            codes = codec.encode(audio[None], sr, kbps=3.0)  # 4 levels, the vocoder's
            reference = resample(audio, sr, rate)
            decoded = resample(codec.decode(codes)[0], sr, rate)
            ids = vocoder.generate(codes.shape[-1] * vocoder.config.lc_hop, codes=codes, seed=3 + i)
            vocoded = resample(vocoder.decode_audio(ids), vocoder.sample_rate, rate)
            expected["codec decoder"].append(mel_distance(reference, decoded, rate))
            expected["WaveNet vocoder"].append(mel_distance(reference, vocoded, rate))
        rows = {r["system"]: r for r in report["rows"] if r["kind"] == kind}
        for system, values in expected.items():
            assert rows[system]["n"] == len(clips) and rows[system]["task"] == "resynthesis"
            assert rows[system]["mel_distance"] == pytest.approx(sum(values) / len(values), rel=1e-4)
            assert rows[system]["rtf"] > 0


@pytest.mark.parametrize(
    "flag, name, message",
    [
        ("--wavenet", "vocoder", "this WaveNet is a vocoder"),
        ("--vocoder", "wavenet", "it is not a vocoder"),
        ("--vocoder", "vocoder_q2", "vocoder takes 3 codec levels"),
        ("--vocoder", "vocoder_50hz", "vocoder expects 50 Hz codec frames, the codec gives 75 Hz"),
    ],
)
def test_compare_mismatched_wavenets(flag, name, message, tiny_corpus, tiny_pipeline, wavenets, capsys):
    code = main(
        [
            "bench",
            "compare",
            "--data",
            str(tiny_corpus),
            "--pipeline",
            str(tiny_pipeline),
            flag,
            str(wavenets[name]),
            *ARGS,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
