"""Decoding the fine levels as the mean latent of several fine-stage draws (fine_draws.py)."""

from __future__ import annotations

import pytest
import torch

from audiolm.core.errors import ConfigError
from audiolm.inference.codec_chunks import decode_chunked
from audiolm.inference.fine_draws import FineDrawMean
from audiolm.inference.pipeline import AudioLM
from audiolm.inference.voice_anchor import fit_voice_anchor
from tests.helpers import (
    assert_prompts_batch_as_alone,
    build_tiny_pipeline,
    continue_cli_outputs,
    random_codes,
    tiny_pitched_codec,
    tone,
    write_recipe,
)

SR = 24000


def test_the_map_decodes_the_mean_latent_of_the_draws():
    codec = tiny_pitched_codec()
    codes = random_codes(codec, 60, seed=1)
    extra = torch.stack([random_codes(codec, 60, seed=s) for s in (2, 3)])  # [2, B, Q, T]
    quantizer = codec.model.quantizer
    with torch.inference_mode():
        expected = (quantizer.decode(codes) + quantizer.decode(extra[0]) + quantizer.decode(extra[1])) / 3
        mean = FineDrawMean(codec, extra)
        torch.testing.assert_close(mean(quantizer.decode(codes), codes, 0), expected)
        torch.testing.assert_close(mean.mean_latent(codes), expected)
        # frames from `offset` on, as a chunked decoder hands them over
        torch.testing.assert_close(
            mean(quantizer.decode(codes[..., 20:45]), codes[..., 20:45], 20), expected[..., 20:45]
        )
        # one row of the batch
        torch.testing.assert_close(
            mean.rows(torch.tensor([1]))(quantizer.decode(codes[1:]), codes[1:], 0), expected[1:]
        )
        whole = codec.decode(codes, mean)
        pieces = torch.cat(list(decode_chunked(codec, codes, 25, mean)), dim=-1)
    torch.testing.assert_close(pieces, whole, atol=1e-4, rtol=1e-3)


def test_the_anchor_fitted_on_the_mean_maps_it_to_the_prompts_statistics():
    codec = tiny_pitched_codec()
    codes = random_codes(codec, 80, seed=4)
    extra = random_codes(codec, 80, seed=5)[None]
    mean = FineDrawMean(codec, extra)
    with torch.inference_mode():
        latent = mean.mean_latent(codes)
        mean.then = fit_voice_anchor(codec, codes, [40, 40], latent=latent)
        mapped = mean(codec.model.quantizer.decode(codes), codes, 0)
    torch.testing.assert_close(mapped[:, :, :40], latent[:, :, :40])  # the prompt frames untouched
    assert not torch.allclose(mapped[:, :, 40:], latent[:, :, 40:])


def test_the_pipeline_decodes_the_mean_of_its_fine_draws(tmp_path):
    build_tiny_pipeline(tmp_path)
    tiny_pitched_codec().save(tmp_path / "pitched_codec")
    lm = AudioLM.from_pretrained(write_recipe(tmp_path, name="draws", codec="pitched_codec", fine_draws=3))
    assert lm.fine_draws == 3
    prompt = tone(0.6, freq=220.0)
    mean = lm.generate_continuation(prompt, SR, seconds=0.5, seed=0)
    lm.fine_draws = 1
    one = lm.generate_continuation(prompt, SR, seconds=0.5, seed=0)
    assert torch.equal(mean.codes, one.codes)  # the returned tokens are the first draw
    assert not torch.allclose(mean.audio, one.audio, atol=1e-4)
    # the extra draws: the run's coarse codes and prompt, their own fine levels
    lm.fine_draws = 3
    run = lm._start([lm.encode_prompt(prompt, SR)], 0.5, 0, 2, None, None, None, None)
    codes = run.fine.fill()
    extra = lm._more_fine_draws(run, codes, 2)
    Tp = run.prompt_frames[0]
    assert extra.shape == (2, *codes.shape)
    assert (extra[:, :, :2] == codes[:, :2]).all() and (extra[..., :Tp] == codes[..., :Tp]).all()
    assert not torch.equal(extra[0, :, 2:, Tp:], codes[:, 2:, Tp:]) and not torch.equal(extra[0], extra[1])
    # with voice anchoring too, and prompts of other lengths in one batch: each as alone
    lm.voice_anchor = True
    assert_prompts_batch_as_alone(lm, prompt)


@pytest.mark.parametrize("value", [0, 17, 2.5, True])
def test_a_recipe_with_a_bad_fine_draws_is_refused(tmp_path, value):
    build_tiny_pipeline(tmp_path)
    with pytest.raises(ConfigError, match="fine_draws"):
        AudioLM.from_pretrained(write_recipe(tmp_path, name="bad", fine_draws=value))


def test_continue_cli_sets_the_fine_draws(tmp_path, capsys):
    from audiolm.cli.app import main

    build_tiny_pipeline(tmp_path)
    tiny_pitched_codec().save(tmp_path / "pitched_codec")
    three = write_recipe(tmp_path, name="three", codec="pitched_codec", fine_draws=3)
    one = write_recipe(tmp_path, name="one", codec="pitched_codec")
    runs = (("three", three, []), ("flag", three, ["--fine-draws", "1"]), ("one", one, []))
    outputs = continue_cli_outputs(tmp_path, capsys, runs)
    assert torch.equal(outputs["flag"], outputs["one"])
    assert (outputs["three"] - outputs["one"]).abs().max() > 1e-3
    argv = ["continue", str(tmp_path / "p.wav"), "-o", str(tmp_path / "x.wav"), "--fine-draws", "0"]
    assert main([*argv, "--pipeline", str(three)]) == 2
    assert "--fine-draws must be in [1, 16]" in capsys.readouterr().err
