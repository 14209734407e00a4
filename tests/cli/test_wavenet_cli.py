"""`audiolm wavenet generate`, `audiolm train wavenet` and `audiolm bench wavenet` in-process."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from audiolm.cli.app import main
from audiolm.models.wavenet.model import WaveNet
from tests.helpers import random_wavenet, tiny_codec, tiny_wavenet_config


@pytest.fixture
def checkpoints(tmp_path):
    plain = random_wavenet(tiny_wavenet_config()).save_pretrained(tmp_path / "plain")
    gc = random_wavenet(tiny_wavenet_config(gc_cardinality=2, gc_labels=["alto", "bass"])).save_pretrained(
        tmp_path / "gc"
    )
    lc = random_wavenet(tiny_wavenet_config(lc_n_q=2, lc_codebook_size=16, lc_hop=8)).save_pretrained(tmp_path / "lc")
    return {"plain": plain, "gc": gc, "lc": lc}


def test_generate_writes_partial_files_that_are_valid_audio(checkpoints, tmp_path, monkeypatch):
    import audiolm.core.audio

    out = tmp_path / "out.wav"
    seen = []
    real_save = audiolm.core.audio.save_audio

    def recording_save(path, wav, sample_rate, **kw):
        result = real_save(path, wav, sample_rate, **kw)
        data, rate = sf.read(path)  # every rewrite is a complete, readable file
        seen.append((rate, len(data)))
        return result

    monkeypatch.setattr(audiolm.core.audio, "save_audio", recording_save)
    assert (
        main(
            [
                "wavenet",
                "generate",
                str(checkpoints["plain"]),
                "--samples",
                "250",
                "-o",
                str(out),
                "--save-every",
                "60",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert seen == [(8000, 60), (8000, 120), (8000, 180), (8000, 240), (8000, 250)]
    final, _ = sf.read(out)
    # the file holds exactly the samples WaveNet.generate gives for that seed (16-bit PCM)
    model = WaveNet.from_pretrained(checkpoints["plain"])
    expected = model.decode_audio(model.generate(250, seed=3))[0].numpy()
    assert np.abs(final - expected).max() < 1e-4
    # refuses to overwrite without --overwrite; --naive gives the same samples
    assert main(["wavenet", "generate", str(checkpoints["plain"]), "--samples", "20", "-o", str(out)]) == 2
    assert (
        main(
            [
                "wavenet",
                "generate",
                str(checkpoints["plain"]),
                "--samples",
                "250",
                "-o",
                str(out),
                "--seed",
                "3",
                "--naive",
                "--overwrite",
            ]
        )
        == 0
    )
    assert np.abs(sf.read(out)[0] - final).max() == 0


def test_generate_with_prompt_gc_label_and_codes(checkpoints, tmp_path):
    prompt = tmp_path / "prompt.wav"
    sf.write(prompt, 0.3 * np.sin(np.arange(16000) / 5.0), 16000)  # resampled to the model's 8 kHz
    out = tmp_path / "gc.wav"
    assert (
        main(
            [
                "wavenet",
                "generate",
                str(checkpoints["gc"]),
                "--samples",
                "40",
                "-o",
                str(out),
                "--prompt",
                str(prompt),
                "--gc-id",
                "bass",
            ]
        )
        == 0
    )
    assert len(sf.read(out)[0]) == 8000 + 40
    codes = tmp_path / "codes.safetensors"
    save_file({"codes": torch.randint(0, 16, (1, 2, 10))}, str(codes))
    out = tmp_path / "lc.wav"
    assert main(["wavenet", "generate", str(checkpoints["lc"]), "-o", str(out), "--codes", str(codes)]) == 0
    assert len(sf.read(out)[0]) == 80  # 10 frames x hop 8


@pytest.mark.parametrize(
    "which,extra,message",
    [
        ("gc", ["--gc-id", "2"], "gc id 2 is out of range"),
        ("gc", [], "pass a gc id"),
        ("gc", ["--gc-id", "tenor"], "neither a number nor one of the model's labels: alto, bass"),
        ("plain", ["--gc-id", "0"], "no global conditioning"),
        ("lc", ["--codes", "TOO_FEW_LEVELS"], "1 levels but this WaveNet was trained on 2"),
        ("lc", ["--codes", "WRONG_RANGE"], "codebooks have 16 entries"),
        ("lc", ["--codes", "NO_CODES_KEY"], "no tensor named 'codes'"),
        ("plain", ["--codes", "WRONG_LEVELS"], "no local conditioning"),
    ],
)
def test_generate_errors_are_one_line(checkpoints, tmp_path, capsys, which, extra, message):
    files = {
        "WRONG_LEVELS": {"codes": torch.randint(0, 16, (3, 10))},
        "TOO_FEW_LEVELS": {"codes": torch.randint(0, 16, (1, 10))},
        "WRONG_RANGE": {"codes": torch.randint(0, 1024, (2, 10)) + 16},
        "NO_CODES_KEY": {"tokens": torch.zeros(2, 10, dtype=torch.long)},
    }
    extra = list(extra)
    for i, arg in enumerate(extra):
        if arg in files:
            path = tmp_path / f"{arg}.safetensors"
            save_file(files[arg], str(path))
            extra[i] = str(path)
    out = tmp_path / "never.wav"
    code = main(["wavenet", "generate", str(checkpoints[which]), "--samples", "30", "-o", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1] and err[-1].startswith("audiolm: error:"), err
    assert not out.exists()


def test_train_command_then_generate_and_resume(tmp_path, capsys):
    root = tmp_path / "audio"
    for spk in ("s1", "s2"):
        (root / spk).mkdir(parents=True)
        sf.write(root / spk / "a.wav", 0.4 * np.sin(np.arange(6000) / (3.0 + len(spk))), 8000)
    config = tmp_path / "wavenet.json"
    config.write_text(
        json.dumps(
            {
                "sample_rate": 8000,
                "layers": 4,
                "stacks": 2,
                "residual_channels": 8,
                "dilation_channels": 8,
                "skip_channels": 16,
                "crop_samples": 64,
            }
        )
    )
    train_config = tmp_path / "train.json"
    train_config.write_text(json.dumps({"min_lr_ratio": 1.0, "warmup_steps": 0}))  # constant LR

    def args(run):
        return [
            "train",
            "wavenet",
            "--data",
            str(root),
            "--out",
            str(run),
            "--config",
            str(config),
            "--gc",
            "--train-config",
            str(train_config),
            "--batch-size",
            "2",
            "--save-every",
            "2",
            "--device",
            "cpu",
        ]

    whole, run = tmp_path / "whole", tmp_path / "run"
    assert main(args(whole) + ["--steps", "6"]) == 0
    assert main(args(run) + ["--steps", "3"]) == 0
    assert json.loads((run / "model" / "config.json").read_text())["config"]["gc_labels"] == ["s1", "s2"]
    # --resume finishes the run to more steps (GC settings come back from the run itself) and
    # ends where the uninterrupted 6-step run ends, weight for weight
    assert main(["train", "wavenet", "--data", str(root), "--out", str(run), "--resume", "--steps", "6"]) == 0
    assert json.loads((run / "model" / "config.json").read_text())["step"] == 6
    resumed, uninterrupted = (
        load_file(str(run / "model" / "model.safetensors")),
        load_file(str(whole / "model" / "model.safetensors")),
    )
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        assert torch.equal(resumed[name], uninterrupted[name]), name
    out = tmp_path / "g.wav"
    assert main(["wavenet", "generate", str(run), "--samples", "30", "-o", str(out), "--gc-id", "1"]) == 0
    assert len(sf.read(out)[0]) == 30
    # a config that contradicts the data is refused before training
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(config.read_text()), "gc_cardinality": 5}))
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                "wavenet",
                "--data",
                str(root),
                "--out",
                str(tmp_path / "run2"),
                "--config",
                str(bad),
                "--gc",
                "--steps",
                "2",
            ]
        )
        == 2
    )
    assert "gc_cardinality=5" in capsys.readouterr().err


def test_bench_json_has_fast_and_naive_for_each_batch(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps(
            {
                "layers": 4,
                "stacks": 2,
                "residual_channels": 8,
                "dilation_channels": 8,
                "skip_channels": 16,
                "crop_samples": 64,
            }
        )
    )
    assert (
        main(
            [
                "bench",
                "wavenet",
                "--json",
                "--config",
                str(config),
                "--batches",
                "1,2",
                "--samples",
                "30",
                "--naive-samples",
                "3",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert "CPU" in report["machine"]
    combos = {(r["mode"], r["batch"]) for r in report["results"]}
    assert combos == {("fast", 1), ("naive", 1), ("fast", 2), ("naive", 2)}
    assert all(r["samples_per_s"] > 0 and r["layers"] == 4 and r["residual_channels"] == 8 for r in report["results"])


def test_vocoder_end_to_end_with_a_tiny_real_codec(tmp_path, capsys):
    """train wavenet --lc-codec DIR, then generate from codes the same codec wrote."""
    codec = tiny_codec()
    codec.save(tmp_path / "codec")
    root = tmp_path / "audio"
    root.mkdir()
    sf.write(root / "a.wav", 0.4 * np.sin(np.arange(4800) / 4.0), 24000)
    sf.write(root / "b.wav", 0.4 * np.sin(np.arange(4800) / 7.0), 24000)
    config = tmp_path / "wavenet.json"
    config.write_text(
        json.dumps(
            {
                "layers": 4,
                "stacks": 2,
                "residual_channels": 8,
                "dilation_channels": 8,
                "skip_channels": 16,
                "lc_channels": 8,
                "crop_samples": 100,
            }
        )
    )
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "wavenet",
                "--data",
                str(root),
                "--out",
                str(run),
                "--config",
                str(config),
                "--lc-codec",
                str(tmp_path / "codec"),
                "--lc-kbps",
                "1.5",
                "--steps",
                "3",
                "--batch-size",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    saved = json.loads((run / "model" / "config.json").read_text())["config"]
    n_q = codec.levels_for_kbps(1.5)
    assert (saved["lc_n_q"], saved["lc_hop"], saved["lc_codebook_size"]) == (n_q, 320, codec.codebook_size)
    assert saved["crop_samples"] == 320  # 100 rounded up to one codec frame
    codes = codec.encode(torch.from_numpy(sf.read(root / "a.wav")[0]).float(), 24000, kbps=1.5)  # [1, Q, F]
    save_file({"codes": codes[:, :, :3].contiguous()}, str(tmp_path / "codes.safetensors"))
    out = tmp_path / "voc.wav"
    assert (
        main(
            [
                "wavenet",
                "generate",
                str(run),
                "--codes",
                str(tmp_path / "codes.safetensors"),
                "-o",
                str(out),
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert len(sf.read(out)[0]) == 3 * 320
    save_file({"codes": codes.contiguous()}, str(tmp_path / "codes.safetensors"))  # all frames
    assert (
        main(
            [
                "wavenet",
                "generate",
                str(run),
                "--codes",
                str(tmp_path / "codes.safetensors"),
                "-o",
                str(out),
                "--seed",
                "5",
                "--samples",
                str(3 * 320),
                "--overwrite",
            ]
        )
        == 0
    )
    # a codes file written by `audiolm codec --save-codes` at a higher bit rate (more levels): the
    # vocoder takes its first levels, which residual VQ makes the 1.5 kbps codes -> the same audio
    codes_6k = tmp_path / "six.safetensors"
    assert (
        main(
            [
                "codec",
                str(root / "a.wav"),
                str(tmp_path / "rt.wav"),
                "--codec",
                str(tmp_path / "codec"),
                "--kbps",
                "6",
                "--save-codes",
                str(codes_6k),
            ]
        )
        == 0
    )
    assert load_file(str(codes_6k))["codes"].shape == (1, codec.levels_for_kbps(6.0), codes.shape[-1])
    capsys.readouterr()
    out6 = tmp_path / "voc6.wav"
    assert (
        main(
            [
                "wavenet",
                "generate",
                str(run),
                "--codes",
                str(codes_6k),
                "-o",
                str(out6),
                "--seed",
                "5",
                "--samples",
                str(3 * 320),
            ]
        )
        == 0
    )
    assert f"uses the first {n_q}" in capsys.readouterr().err
    assert np.array_equal(sf.read(out6)[0], sf.read(out)[0])
    # codes with fewer levels than the vocoder's are refused with a clear message
    save_file({"codes": codes[:, :1].contiguous()}, str(tmp_path / "one.safetensors"))
    assert (
        main(
            [
                "wavenet",
                "generate",
                str(run),
                "--codes",
                str(tmp_path / "one.safetensors"),
                "-o",
                str(tmp_path / "x.wav"),
            ]
        )
        == 2
    )
    assert "different codec or bitrate" in capsys.readouterr().err
