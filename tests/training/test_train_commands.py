"""Every `audiolm train ...` command (codec, ssl, semantic/coarse/fine, wavenet): `--seed` sets the
initial weights, `--mixed-precision bf16` runs bf16 autocast on a CPU that has bf16 kernels, and
`--log-with tensorboard` writes event files beside log.jsonl."""

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolm.cli.app import main
from audiolm.core.config import config_to_dict
from audiolm.core.cpu_features import bf16_fallback_reason, cpu_bf16_kernels
from audiolm.models.codec.config import CodecConfig
from audiolm.training.data.shards import ShardWriter, Utterance
from audiolm.training.trainer import Trainer

TASKS = ("codec", "ssl", "coarse", "wavenet")


@pytest.fixture(scope="module")
def sources(tiny_corpus, tmp_path_factory):
    """{task: the arguments naming its data and a tiny model config}."""
    root = tmp_path_factory.mktemp("train_commands")
    # tokens for the LM stages: 4 train + 1 valid utterances (semantic 25 Hz, 2 codec levels 75 Hz)
    tokens = root / "tokens"
    writer = ShardWriter(
        tokens,
        {
            "codec": {"dir": None, "sample_rate": 24000, "frame_rate": 75.0, "codebook_size": 8, "n_q": 2, "kbps": 1.5},
            "semantic": {"dir": None, "sample_rate": 16000, "frame_rate": 25.0, "vocab_size": 6},
        },
    )
    writer.start()
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("valid", 1)):
        writer.write_shard(
            split, 0, [Utterance(f"{split}{i}", rng.integers(0, 6, 12), rng.integers(0, 8, (36, 2))) for i in range(n)]
        )
    writer.finish({"train": 1, "valid": 1})
    # a folder of audio for the WaveNet
    waves = root / "waves"
    waves.mkdir()
    for i in range(2):
        sf.write(waves / f"{i}.wav", 0.4 * np.sin(np.arange(2000) / (3.0 + i)), 8000)
    configs = {
        "codec": dataclasses.replace(
            CodecConfig.tiny(), training=dataclasses.replace(CodecConfig.tiny().training, adversarial_start_step=0)
        ),  # both optimizers from step 0
        "ssl": {
            "hidden_size": 32,
            "num_layers": 2,
            "contrastive_layers": 1,
            "num_heads": 2,
            "intermediate_size": 64,
            "feature_dim": 32,
            "conv_channels": 16,
            "codebook_groups": 2,
            "codebook_size": 16,
            "codevector_dim": 32,
            "num_negatives": 10,
            "crop_seconds": 0.5,
            "dropout": 0.1,
            "depthwise_kernel": 5,
            "frame_rate": 50,
        },
        "coarse": {"model": {"dim": 32, "n_layers": 1, "n_heads": 2, "max_seq_len": 48, "dropout": 0.1}},
        "wavenet": {
            "sample_rate": 8000,
            "layers": 4,
            "stacks": 1,
            "residual_channels": 8,
            "dilation_channels": 8,
            "skip_channels": 8,
            "crop_samples": 64,
        },
    }
    data = {
        "codec": ["--data", str(tiny_corpus)],
        "ssl": ["--data", str(tiny_corpus)],
        "coarse": ["--tokens", str(tokens)],
        "wavenet": ["--data", str(waves)],
    }
    args = {}
    for task, config in configs.items():
        path = root / f"{task}.json"
        path.write_text(json.dumps(config_to_dict(config) if dataclasses.is_dataclass(config) else config))
        args[task] = ["train", task, *data[task], "--config", str(path), "--device", "cpu", "--batch-size", "2"]
    return args


def initial_weights(argv, monkeypatch, tmp_path) -> dict[str, torch.Tensor]:
    """The model's weights when training would start (the trainer built, no step taken)."""
    captured = {}

    def fit(self, stop_after=None):
        captured.update({k: v.clone() for k, v in self._unwrapped("model").state_dict().items()})
        return self.out_dir / "model"

    monkeypatch.setattr(Trainer, "fit", fit)
    assert main(argv + ["--out", str(tmp_path)]) == 0
    return captured


@pytest.mark.parametrize("task", TASKS)
def test_seed_sets_the_initial_weights(task, sources, monkeypatch, tmp_path):
    one = initial_weights(sources[task] + ["--seed", "1"], monkeypatch, tmp_path / "a")
    again = initial_weights(sources[task] + ["--seed", "1"], monkeypatch, tmp_path / "b")
    other = initial_weights(sources[task] + ["--seed", "2"], monkeypatch, tmp_path / "c")
    assert one.keys() == again.keys() == other.keys()
    assert all(torch.equal(one[k], again[k]) for k in one)
    random_tensors = [k for k in one if one[k].is_floating_point() and one[k].numel() > 1 and one[k].std() > 0]
    assert random_tensors and any(not torch.equal(one[k], other[k]) for k in random_tensors)


@pytest.mark.parametrize("task", TASKS)
def test_bf16_autocast_runs_every_task_on_cpu(task, sources, tmp_path, capsys):
    """Every module forward of the training step runs under bf16 autocast and matrix products
    come out in bf16 (the CPU has bf16 kernels), or the run says it trains in fp32."""
    seen = []

    def record(module, inputs, output):
        if module.training and isinstance(output, torch.Tensor) and output.is_floating_point():
            seen.append((torch.is_autocast_enabled("cpu"), output.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        code = main(sources[task] + ["--out", str(tmp_path / "run"), "--steps", "1", "--mixed-precision", "bf16"])
    finally:
        handle.remove()
    assert code == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mixed precision:")]
    assert len(err) == 1
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(v) for k, v in log[0].items() if k.startswith("loss/"))
    if not cpu_bf16_kernels():
        assert "training in fp32" in err[0] and all(dtype == torch.float32 for _, dtype in seen)
        pytest.skip(bf16_fallback_reason())
    assert "bf16 autocast on the CPU" in err[0]
    assert seen and all(on for on, _ in seen) and any(dtype == torch.bfloat16 for _, dtype in seen)


def test_log_with_tensorboard_writes_event_files(sources, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert (
        main(sources["coarse"] + ["--out", str(run), "--steps", "4", "--log-with", "tensorboard", "--valid-every", "2"])
        == 0
    )
    assert (run / "log.jsonl").is_file()  # the JSON-lines log stays
    events = list((run / "trackers").rglob("events.out.tfevents.*"))
    assert events
    scalars = {}
    for path in events:
        accumulator = EventAccumulator(str(path.parent))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars[tag] = [e.step for e in accumulator.Scalars(tag)]
    assert "loss/model" in scalars and "valid/model_loss" in scalars and "lr" in scalars
    assert scalars["valid/model_loss"] == [2, 4]


def test_log_with_a_missing_tracker_is_a_one_line_error(sources, tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(sources["coarse"] + ["--out", str(tmp_path / "run"), "--log-with", "wandb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'audiolm[trackers]'" in err[0]
    assert main(sources["coarse"] + ["--out", str(tmp_path / "run2"), "--log-with", "mlflow"]) == 2
