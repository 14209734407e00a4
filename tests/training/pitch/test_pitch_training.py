"""Training the pitch net (`audiolm train pitch`) and putting it into a codec (`train codec --pitch-net`)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from audiolm.core.config import config_to_dict
from audiolm.core.errors import AudiolmError, ConfigError
from audiolm.models.codec.codec import Codec
from audiolm.models.codec.config import PitchNetConfig
from audiolm.training.codec.task import CodecTask
from audiolm.training.pitch.labels import PitchLabels, harvest_labels
from audiolm.training.pitch.task import LabelledCrops, PitchTask, f0_agreement
from audiolm.training.task import ItemKey
from audiolm.training.trainer import TrainConfig, Trainer
from tests.helpers import run_cli, tiny_pitched_codec

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pyworld") is None, reason="the Harvest labels need the eval extra's pyworld"
)

SR, HOP = 24000, 320


def _tone(f0: float, seconds: float, silence: float = 0.0) -> np.ndarray:
    """A harmonic tone at f0 Hz, then `silence` seconds of silence."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(0.2 / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 8))
    return np.concatenate([tone, np.zeros(int(silence * SR))]).astype(np.float32)


def test_harvest_labels_sit_on_the_codecs_frames():
    wav = _tone(150.0, 1.0, silence=0.5)
    frames = -(-len(wav) // HOP)
    f0 = harvest_labels(wav, SR, frames, HOP)
    assert f0.shape == (frames,) and f0.dtype == np.float32
    tone_frames = f0[5:70]
    assert (tone_frames > 0).all() and np.abs(tone_frames - 150.0).max() < 3.0
    assert (f0[-25:] == 0).all()  # the silence is unvoiced


def _train_config(steps: int, **changes) -> TrainConfig:
    fields = dict(steps=steps, batch_size=4, lr=3e-3, warmup_steps=0, valid_every=10, valid_batches=1)
    return TrainConfig(**(fields | dict(save_every=100, log_every=1, seed=0) | changes))


def _task(corpus, labels_dir, **changes) -> PitchTask:
    torch.manual_seed(0)
    return PitchTask(PitchNetConfig.tiny(), corpus, labels_dir, **changes)


def test_labels_are_computed_once_and_read_back(tiny_corpus, tmp_path):
    task = _task(tiny_corpus, tmp_path / "labels", max_items=3, music_items=1, valid_items=2)
    assert len(task.train_files) == 4 and len(task.valid_files) == 2
    first = task.train_dataset().labels
    path = tmp_path / "labels" / "train.safetensors"
    assert path.is_file() and path.with_suffix(".json").is_file()
    again = PitchLabels.build([Path(f) for f in task.train_files], task.config, path)
    assert all(np.array_equal(a, b) for a, b in zip(first.f0, again.f0))
    with pytest.raises(AudiolmError, match="other files"):
        PitchLabels.build([Path(task.train_files[0])], task.config, path)


def test_a_crops_labels_are_its_own_frames(tiny_corpus, tmp_path):
    task = _task(tiny_corpus, tmp_path / "labels", max_items=4, music_items=0, valid_items=2)
    data = task.train_dataset()
    assert isinstance(data, LabelledCrops)
    for index in range(6):
        key = ItemKey(index, 1000 + index)
        file, start, _ = data.locate(key)
        assert start % HOP == 0
        item = data[key]
        first = start // HOP
        own = data.labels.f0[file][first : first + data.frames]
        assert torch.equal(item["f0"][: len(own)], torch.from_numpy(own))
        assert item["wav"].shape == (data.crop_samples,) and item["mask"].sum() > 0
        again = data[key]
        assert torch.equal(item["wav"], again["wav"])  # the gain comes from the crop's seed
    plain, _, _ = data.crop(ItemKey(0, 1000))
    gained = data[ItemKey(0, 1000)]["wav"]
    ratio = float(gained.abs().max() / plain.abs().max())
    assert 10 ** (-20 / 20) * 0.99 <= ratio <= 10 ** (6 / 20) * 1.01


def test_f0_agreement_scores_a_track_against_harvest():
    target = torch.tensor([[0.0, 100.0, 100.0, 200.0]])
    mask = torch.ones(1, 4)
    same = f0_agreement(target, target > 0, target, mask)
    assert same == {"gpe": 0.0, "vde": 0.0}
    octave = f0_agreement(target * 2, target > 0, target, mask)
    assert octave["gpe"] == 1.0
    unvoiced = f0_agreement(torch.zeros(1, 4), torch.zeros(1, 4, dtype=torch.bool), target, mask)
    assert unvoiced["vde"] == 0.75


def test_training_lowers_the_loss_exports_a_pitch_net_and_resumes(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    task = _task(tiny_corpus, run / "labels", max_items=6, music_items=2, valid_items=4)
    Trainer(task, _train_config(40), run, progress=False).fit(stop_after=20)
    resumed = Trainer(
        _task(tiny_corpus, run / "labels", max_items=6, music_items=2, valid_items=4),
        _train_config(40),
        run,
        resume=True,
        progress=False,
    )
    assert resumed.step == 20
    resumed.fit()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train = [r["loss/model"] for r in log if "loss/model" in r]
    assert len(train) == 40 and np.mean(train[-5:]) < np.mean(train[:5])
    valid = [r["valid"] for r in log if "valid" in r]
    assert valid and {"model_loss", "gpe", "vde"} <= set(valid[-1])
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["kind"] == "pitch"


def _pitch_run(capsys, tiny_corpus, tmp_path, name="pitch"):
    net_config = tmp_path / "net.json"
    net_config.write_text(json.dumps(config_to_dict(PitchNetConfig.tiny())))
    run = tmp_path / name
    argv = ["train", "pitch", "--data", str(tiny_corpus), "--out", str(run), "--config", str(net_config)]
    code, _, err = run_cli(capsys, *argv, "--steps", "2", "--batch-size", "2", "--max-items", "3", "--music-items", "1")
    assert code == 0, err
    return run


def test_train_pitch_then_a_codec_decoder_leg_on_the_nets_f0(tiny_corpus, tmp_path, capsys):
    """`train pitch` from the CLI, then `train codec --init YIN_CODEC --pitch-net RUN`: the codec
    written carries the net (config and weights), the net's weights are the run's, untouched."""
    pitch = _pitch_run(capsys, tiny_corpus, tmp_path)
    assert json.loads((pitch / "run.json").read_text())["items"] == [3, 1, 64]
    source = tiny_pitched_codec(seed=3)
    source_dir = source.save(tmp_path / "codec")
    training = dataclasses.replace(
        source.config.training, frozen=("encoder", "quantizer"), adversarial_start_step=1000, weight_l1=0.0
    )
    config = tmp_path / "decoder.json"
    config.write_text(json.dumps(config_to_dict(dataclasses.replace(source.config, training=training))))
    run = tmp_path / "codec_run"
    argv = ["train", "codec", "--data", str(tiny_corpus), "--out", str(run), "--steps", "2", "--batch-size", "2"]
    code, _, err = run_cli(capsys, *argv, "--config", str(config), "--init", str(source_dir), "--pitch-net", str(pitch))
    assert code == 0, err
    codec = Codec.from_pretrained(run)
    assert codec.config.pitch_net == PitchNetConfig.tiny()
    net_state = Codec.from_pretrained(run).model.encoder.pitch_net.state_dict()
    from safetensors.torch import load_file

    trained = load_file(str(pitch / "model" / "model.safetensors"))
    assert all(torch.equal(net_state[k].float(), trained[k].float()) for k in trained)
    wav = torch.randn(12000, generator=torch.Generator().manual_seed(0)) * 0.1
    assert torch.equal(codec.encode(wav, 24000)[:, 1:], source.encode(wav, 24000)[:, 1:])  # RVQ levels as they were
    # a run killed before its first checkpoint resumes with the same net
    assert json.loads((run / "run.json").read_text())["pitch_net"] == str((pitch / "model").resolve())
    shutil.rmtree(run / "checkpoints")
    shutil.rmtree(run / "model")
    code, _, err = run_cli(capsys, *argv, "--resume")
    assert code == 0, err
    assert Codec.from_pretrained(run).config.pitch_net == PitchNetConfig.tiny()


def test_pitch_net_errors_are_one_line(tiny_corpus, tmp_path, capsys):
    pitch = _pitch_run(capsys, tiny_corpus, tmp_path)
    argv = ["train", "codec", "--data", str(tiny_corpus), "--steps", "1"]
    # a codec config without a pitch code cannot take a pitch net
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "a"), "--pitch-net", str(pitch))
    assert code == 2 and "pitch_codebook" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "b"), "--pitch-net", str(tmp_path / "nope"))
    assert code == 2 and "no such run" in err
    code, _, err = run_cli(
        capsys, "train", "pitch", "--data", str(tiny_corpus), "--out", str(tmp_path / "c"), "--max-items", "0"
    )
    assert code == 2 and "--max-items" in err
    # a net config with no weights for the net
    config = dataclasses.replace(tiny_pitched_codec().config, pitch_net=PitchNetConfig.tiny())
    with pytest.raises(ConfigError, match="--pitch-net"):
        CodecTask.from_corpus(config, tiny_corpus)
