"""Model structure: receptive field, causality, config checks, checkpoints."""

import pytest
import torch

from audiolm.core.errors import CheckpointError, ConfigError
from audiolm.models.wavenet.config import WaveNetConfig
from audiolm.models.wavenet.model import WaveNet
from tests.helpers import random_wavenet, tiny_wavenet_config


def test_default_config_matches_the_issue():
    cfg = WaveNetConfig()
    assert cfg.layers == 20 and cfg.residual_channels == 64 and cfg.quantization_channels == 256
    assert cfg.dilations == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] * 2
    assert cfg.receptive_field == 2 + 2 * 1023
    assert WaveNet(cfg).receptive_field == cfg.receptive_field
    assert cfg.lc_hop == 24000 // 75


@pytest.mark.parametrize("layers,stacks,kernel", [(6, 2, 2), (4, 1, 3), (3, 3, 1)])
def test_receptive_field_is_exactly_what_the_output_sees(layers, stacks, kernel):
    """Changing x[s] changes logits[t] iff t - receptive_field <= s <= t - 1."""
    cfg = tiny_wavenet_config(layers=layers, stacks=stacks, input_kernel_size=kernel)
    rf = cfg.receptive_field
    assert rf == kernel + sum(cfg.dilations)
    model = random_wavenet(cfg)
    T = rf + 10
    x = torch.randint(0, 256, (1, T), generator=torch.Generator().manual_seed(1))
    t = T - 3
    base = model(x)[0, :, t]
    for s in range(T):
        y = x.clone()
        y[0, s] = (y[0, s] + 97) % 256
        changed = not torch.allclose(model(y)[0, :, t], base, atol=1e-6)
        assert changed == (t - rf <= s <= t - 1), (s, t, rf)


def test_causality_future_changes_leave_the_past_alone():
    model = random_wavenet(tiny_wavenet_config(gc_cardinality=2, lc_n_q=2, lc_codebook_size=8, lc_hop=4))
    x = torch.randint(0, 256, (2, 40))
    codes = torch.randint(0, 8, (2, 2, 10))
    base = model(x, torch.tensor([0, 1]), codes)
    y = x.clone()
    y[:, 25:] = torch.randint(0, 256, (2, 15))
    out = model(y, torch.tensor([0, 1]), codes)
    assert torch.allclose(out[..., :26], base[..., :26], atol=1e-6)  # logits[25] predicts x[25]
    assert not torch.allclose(out[..., 26:], base[..., 26:])


def test_bad_configs_are_config_errors():
    from audiolm.core.config import config_from_dict

    with pytest.raises(ConfigError, match="multiple of stacks"):
        config_from_dict(WaveNetConfig, {"layers": 5, "stacks": 2})
    with pytest.raises(ConfigError, match="receptive field"):
        config_from_dict(WaveNetConfig, {"crop_samples": 1000})
    with pytest.raises(ConfigError, match="unknown field"):
        config_from_dict(WaveNetConfig, {"n_layers": 3})
    with pytest.raises(ConfigError, match="gc_labels"):
        config_from_dict(WaveNetConfig, {"gc_cardinality": 2, "gc_labels": ["a"]})


def test_save_and_load_round_trip(tmp_path):
    model = random_wavenet(tiny_wavenet_config(gc_cardinality=3, gc_labels=["a", "b", "c"]))
    model.save_pretrained(tmp_path / "ckpt")
    loaded = WaveNet.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    x = torch.randint(0, 256, (1, 30))
    assert torch.equal(loaded(x, 1), model(x, 1))


def test_loading_a_mismatched_checkpoint_names_the_problem(tmp_path):
    model = random_wavenet(tiny_wavenet_config())
    model.save_pretrained(tmp_path / "ckpt")
    import json

    header = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    header["config"]["residual_channels"] = 12
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        WaveNet.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="not found"):
        WaveNet.from_pretrained(tmp_path / "missing")
