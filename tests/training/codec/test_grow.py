"""A frame-rate decoder grown from a smaller one (`train codec --init` with more / wider blocks)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from audiolm.core.config import config_from_dict, config_to_dict
from audiolm.core.errors import ConfigError
from audiolm.models.codec.codec import Codec
from audiolm.models.codec.config import CodecConfig
from audiolm.models.codec.model import CodecModel
from audiolm.training.codec.grow import grow_decoder_state
from audiolm.training.codec.task import CodecTask, init_weights
from audiolm.training.trainer import TrainConfig, Trainer
from tests.helpers import random_codes, run_cli, tiny_pitched_codec


def _grown(config: CodecConfig, layers: int = 3, intermediate: int = 64, lookahead: int = 0) -> CodecConfig:
    training = dataclasses.replace(
        config.training, frozen=("encoder", "quantizer"), adversarial_start_step=1000, weight_l1=0.0
    )
    return dataclasses.replace(
        config,
        decoder_layers=layers,
        decoder_intermediate=intermediate,
        decoder_lookahead=lookahead,
        training=training,
    )


@pytest.mark.parametrize("layers, intermediate, lookahead", [(3, 64, 0), (1, 32, 2), (3, 64, 2)])
def test_a_grown_decoder_decodes_as_the_small_one(tmp_path, layers, intermediate, lookahead):
    small = tiny_pitched_codec(seed=1)  # 1 decoder block, MLP width 32, no lookahead
    source = small.save(tmp_path / "codec")
    model = CodecModel(_grown(small.config, layers, intermediate, lookahead))
    init_weights(model, source)
    backbone = model.decoder.backbone
    blocks = backbone.blocks
    assert len(blocks) == layers and blocks[0].pwconv1.out_features == intermediate
    assert all((block.gamma == 0).all() for block in blocks[1:])  # new blocks: the identity
    # new hidden units: random inputs, zero outputs; new taps on future frames: zero
    assert (blocks[0].pwconv2.weight[:, 32:] == 0).all()
    assert intermediate == 32 or blocks[0].pwconv1.weight[32:].abs().sum() > 0
    kernel = small.config.frame_kernel_size
    assert backbone.embed.weight.shape[-1] == kernel + lookahead and (backbone.embed.weight[..., kernel:] == 0).all()
    assert model.decoder.lookahead_samples == small.model.decoder.lookahead_samples + lookahead * small.hop_length
    codes = random_codes(small, frames=40, seed=0)
    assert torch.allclose(model.eval().decode(codes), small.model.eval().decode(codes), atol=1e-5)


def test_a_grown_decoder_trains_and_reloads_with_the_tokens_as_they_were(tiny_corpus, tmp_path):
    small = tiny_pitched_codec(seed=2)
    source = small.save(tmp_path / "codec")
    task = CodecTask.from_corpus(_grown(small.config), tiny_corpus, init=source)
    train = TrainConfig(steps=3, batch_size=2, lr=3e-3, warmup_steps=0, valid_every=10, save_every=100, log_every=1)
    Trainer(task, train, tmp_path / "run", progress=False).fit()
    tuned = Codec.from_pretrained(tmp_path / "run")
    assert tuned.config.decoder_layers == 3 and tuned.config.decoder_intermediate == 64
    assert (tuned.model.decoder.backbone.blocks[2].gamma != 0).any()  # the new blocks learn
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal(4800).astype(np.float32)) * 0.1
    assert torch.equal(small.encode(audio, 24000), tuned.encode(audio, 24000))


def test_init_grows_a_decoder_but_never_shrinks_one(tiny_corpus, tmp_path, capsys):
    big = tiny_pitched_codec(seed=3)
    big_config = _grown(big.config, layers=2, intermediate=48)
    model = CodecModel(big_config)
    source = Codec(model.eval()).save(tmp_path / "big")
    for layers, intermediate in ((1, 48), (2, 32)):
        with pytest.raises(ConfigError, match="not shrink"):
            CodecTask.from_corpus(_grown(big.config, layers, intermediate), tiny_corpus, init=source)
    ahead = Codec(CodecModel(_grown(big.config, 2, 48, lookahead=2)).eval()).save(tmp_path / "ahead")
    with pytest.raises(ConfigError, match="not shrink"):
        CodecTask.from_corpus(_grown(big.config, 2, 48, lookahead=1), tiny_corpus, init=ahead)
    with pytest.raises(ValueError, match="decoder_lookahead"):
        dataclasses.replace(big.config, decoder_lookahead=2, frame_causal=False)
    with pytest.raises(ValueError, match="cannot grow"):
        grow_decoder_state({"decoder.backbone.embed.weight": torch.zeros(10**4, 1, 1)}, model)
    # the head is the head's business (a per-bin noise head converts into a banded one on load)
    head = {"decoder.head.out.bias": torch.zeros(10**4)}
    assert grow_decoder_state(head, model)["decoder.head.out.bias"].shape == (10**4,)
    with pytest.raises(ValueError, match="decoder_intermediate"):
        dataclasses.replace(big.config, decoder_intermediate=-1)
    # from the CLI: a one-line error, exit code 2
    config = tmp_path / "small.json"
    config.write_text(json.dumps(config_to_dict(_grown(big.config, 1, 48))))
    argv = ["train", "codec", "--data", str(tiny_corpus), "--out", str(tmp_path / "r"), "--steps", "1"]
    code, _, err = run_cli(capsys, *argv, "--config", str(config), "--init", str(source))
    assert code == 2 and "not shrink" in err and "Traceback" not in err


def test_old_configs_have_no_separate_decoder_width():
    saved = config_to_dict(CodecConfig.tiny())
    del saved["decoder_intermediate"]  # as written before session 14
    assert config_from_dict(CodecConfig, saved).decoder_intermediate == 0
