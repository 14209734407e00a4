"""The codec CLI: round trip, eval (with Opus), bench, train — in process, on tiny models."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch

from audiolm.cli.app import main
from audiolm.core.audio import load_audio, save_audio
from audiolm.models.codec.config import CodecConfig
from tests.helpers import save_tiny_codec


@pytest.fixture(scope="module")
def tiny_codec_dir(tmp_path_factory):
    return save_tiny_codec(tmp_path_factory.mktemp("codec") / "tiny")


def test_codec_round_trip_command(tiny_codec_dir, tmp_path, capsys):
    src = tmp_path / "in.wav"
    save_audio(src, 0.1 * torch.randn(2, 16000), 16000)  # stereo, 16 kHz
    out = tmp_path / "out.wav"
    assert main(["codec", str(src), str(out), "--kbps", "3", "--codec", str(tiny_codec_dir)]) == 0
    wav, rate = load_audio(out)
    assert wav.shape == (1, 16000) and rate == 16000
    assert "4 levels" in capsys.readouterr().err
    # never overwrite without --overwrite; bad bit rates are one-line errors
    assert main(["codec", str(src), str(out), "--codec", str(tiny_codec_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["codec", str(src), str(out), "--codec", str(tiny_codec_dir), "--overwrite", "--kbps", "5"]) == 2
    assert "5 kbps is not offered" in capsys.readouterr().err
    assert main(["codec", str(tmp_path / "missing.wav"), str(tmp_path / "x.wav"), "--codec", str(tiny_codec_dir)]) == 2


@pytest.mark.skipif(shutil.which("opusenc") is None, reason="opus-tools not installed")
def test_eval_codec_command_with_opus(tiny_corpus, tiny_codec_dir, tmp_path, capsys):
    table = tmp_path / "table.md"
    judges = all(importlib.util.find_spec(m) for m in ("resemblyzer", "speechmos", "onnxruntime", "pyworld"))
    code = main(
        [
            "eval",
            "codec",
            "--data",
            str(tiny_corpus),
            "--codec",
            str(tiny_codec_dir),
            "--kbps",
            "6",
            "--max-items",
            "1",
            "--json",
            "--out",
            str(table),
            "--no-progress",
        ]
        + ([] if judges else ["--skip-judges"])
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert "machine" in report and report["clips"] == {"speech": 1, "music": 1}
    rows = {(r["system"], r["kind"]): r for r in report["results"]}
    expected = {("audiolm", "speech"), ("opus", "speech"), ("audiolm", "music"), ("opus", "music")}
    assert set(rows) == expected | ({("original", "speech")} if judges else set())
    speech, music = rows[("opus", "speech")], rows[("opus", "music")]
    for key in ("mel_distance", "si_sdr", "stoi", "pesq_wb", "visqol"):
        assert key in speech
    if judges:  # the listener judges score speech only; "original" is DNSMOS' ceiling
        for key in ("speaker_sim", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "f0_gpe", "f0_vde"):
            assert key in speech and key not in music
        assert 0.0 <= speech["f0_vde"] <= 1.0 and -1.0 <= speech["speaker_sim"] <= 1.0
        assert rows[("original", "speech")]["dnsmos_ovrl"] >= 1.0
    assert "stoi" not in music and music["visqol"] is not None
    assert 1.0 <= speech["visqol"] <= 5.0
    text = table.read_text()
    assert "## speech" in text and "## music" in text and "| 6 | opus |" in text
    # the table is not overwritten without --overwrite
    assert (
        main(
            [
                "eval",
                "codec",
                "--data",
                str(tiny_corpus),
                "--codec",
                str(tiny_codec_dir),
                "--out",
                str(table),
                "--no-progress",
            ]
        )
        == 2
    )


def test_eval_codec_skip_visqol_all_rates(tiny_corpus, tiny_codec_dir, capsys):
    code = main(
        [
            "eval",
            "codec",
            "--data",
            str(tiny_corpus),
            "--codec",
            str(tiny_codec_dir),
            "--no-opus",
            "--skip-visqol",
            "--skip-judges",
            "--max-items",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| 1.5 | audiolm |" in out and "| 12 | audiolm |" in out and "visqol" not in out
    assert "speaker_sim" not in out and "original" not in out


def test_eval_codec_diagnose_adds_the_loss_split(tiny_corpus, tiny_codec_dir, capsys):
    argv = ["eval", "codec", "--data", str(tiny_corpus), "--codec", str(tiny_codec_dir), "--kbps", "6"]
    code = main(argv + ["--no-opus", "--skip-judges", "--max-items", "1", "--no-progress", "--diagnose", "--json"])
    assert code == 0
    rows = {r["kind"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert rows["speech"]["envelope_db"] > 0 and "envelope_db" not in rows["music"]
    if importlib.util.find_spec("visqol") is not None:
        for part in ("magnitude", "phase", "envelope", "fine"):
            assert 1.0 <= rows["speech"][f"visqol_{part}"] <= 5.0


def test_bench_codec_json(tiny_codec_dir, capsys):
    code = main(
        [
            "bench",
            "codec",
            "--codec",
            str(tiny_codec_dir),
            "--seconds",
            "0.5",
            "--repeats",
            "1",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert "machine" in report and report["runs"][0]["threads"] == 1
    rows = report["runs"][0]["results"]
    assert [r["levels"] for r in rows] == [2, 4, 8, 16]
    assert all(r["roundtrip_x_realtime"] > 0 for r in rows)


def test_train_codec_command_and_resume(tiny_corpus, tmp_path, capsys):
    """3 steps + --resume to 6 == 6 steps in one go, weight for weight (the resumed steps include
    the start of adversarial training, tiny: step 5; constant LR, so the schedule's length does not
    matter)."""
    from audiolm.core.checkpoint import load_tensors
    from audiolm.core.config import config_to_dict

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(config_to_dict(CodecConfig.tiny())))
    train_config = tmp_path / "train.json"
    train_config.write_text(json.dumps({"min_lr_ratio": 1.0, "warmup_steps": 0}))

    def args(run):
        return [
            "train",
            "codec",
            "--data",
            str(tiny_corpus),
            "--out",
            str(run),
            "--config",
            str(config),
            "--train-config",
            str(train_config),
            "--batch-size",
            "2",
            "--save-every",
            "2",
            "--valid-every",
            "3",
            "--device",
            "cpu",
        ]

    whole, run = tmp_path / "whole", tmp_path / "run"
    assert main(args(whole) + ["--steps", "6"]) == 0
    assert main(args(run) + ["--steps", "3"]) == 0
    assert (run / "model" / "config.json").is_file()
    assert main(args(run) + ["--steps", "3"]) == 2  # the run exists: needs --resume
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "codec", "--data", str(tiny_corpus), "--out", str(run), "--resume", "--steps", "6"]) == 0
    assert json.loads((run / "model" / "config.json").read_text())["step"] == 6
    resumed, uninterrupted = (
        load_tensors(run / "model" / "model.safetensors"),
        load_tensors(whole / "model" / "model.safetensors"),
    )
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        assert torch.equal(resumed[name], uninterrupted[name]), name


def test_train_codec_stops_at_the_cpu_budget(tiny_corpus, tmp_path, capsys):
    from audiolm.core.config import config_to_dict

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(config_to_dict(CodecConfig.tiny())))
    run = tmp_path / "run"
    args = [
        "train",
        "codec",
        "--data",
        str(tiny_corpus),
        "--out",
        str(run),
        "--config",
        str(config),
        "--steps",
        "20",
        "--batch-size",
        "2",
        "--save-every",
        "2",
        "--valid-every",
        "100",
    ]
    assert main(args + ["--cpu-seconds", "0.001"]) == 0  # any leg spends more: stops after the first
    assert "CPU budget reached" in capsys.readouterr().err
    assert json.loads((run / "model" / "config.json").read_text())["step"] == 2
    assert main(args + ["--cpu-seconds", "0", "--resume"]) == 2
