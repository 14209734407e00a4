"""Voice anchoring (`inference/voice_anchor.py`): the generated frames' latents take the prompt's
mean and spread per channel (per voiced / unvoiced group on a pitched codec), the prompt's frames
are untouched, chunked decoding applies it the same way, and the pipeline decodes through it
when its recipe says so, without changing any token."""

from __future__ import annotations

import pytest
import torch

from audiolm.inference.codec_chunks import decode_chunked
from audiolm.inference.pipeline import AudioLM
from audiolm.inference.voice_anchor import MIN_FRAMES, PRIOR_FRAMES, RunningVoiceAnchor, fit_voice_anchor
from tests.helpers import (
    assert_prompts_batch_as_alone,
    build_tiny_pipeline,
    continue_cli_outputs,
    random_codes,
    tiny_codec,
    tiny_pitched_codec,
    tone,
    write_recipe,
)

SR = 24000


def _latent(codec, codes):
    with torch.inference_mode():
        return codec.model.quantizer.decode(codes).float()


@pytest.mark.parametrize("pitched", [False, True])
def test_generated_frames_take_the_prompts_mean_and_spread(pitched):
    codec = tiny_pitched_codec() if pitched else tiny_codec()
    prompt_frames, frames = [60, 45], 140
    codes = random_codes(codec, frames, seed=1)
    # make the continuation's statistics differ from the prompt's: other codes, fewer of them
    codes[:, 1:, 70:] = codes[:, 1:, 70:] % 7
    anchor = fit_voice_anchor(codec, codes, prompt_frames)
    before, after = _latent(codec, codes), anchor(_latent(codec, codes), codes, 0)
    first = 1 if pitched else 0
    assert torch.equal(after[:, :first], before[:, :first])  # the F0 channel is not touched
    groups = [codes[:, 0] > 0, codes[:, 0] == 0] if pitched else [torch.ones_like(codes[:, 0], dtype=torch.bool)]
    for b, p in enumerate(prompt_frames):
        assert torch.equal(after[b, :, :p], before[b, :, :p])  # the prompt's frames are its own
        for in_group in groups:
            prompt = before[b, first:, :p][:, in_group[b, :p]]
            generated = after[b, first:, p:][:, in_group[b, p:]]
            assert prompt.shape[1] >= MIN_FRAMES and generated.shape[1] >= MIN_FRAMES
            torch.testing.assert_close(generated.mean(1), prompt.mean(1), atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(generated.std(1), prompt.std(1), atol=1e-4, rtol=1e-3)
    assert not torch.allclose(after, before)


def test_a_group_with_too_few_frames_is_left_alone():
    codec = tiny_pitched_codec()
    codes = random_codes(codec, 100, seed=2)
    codes[0, 0, :50] = 0  # row 0's prompt is all unvoiced: nothing to match voiced frames to
    anchor = fit_voice_anchor(codec, codes, [50, 50])
    assert torch.equal(anchor.scale[0, 0], torch.ones_like(anchor.scale[0, 0]))
    assert torch.equal(anchor.shift[0, 0], torch.zeros_like(anchor.shift[0, 0]))
    assert not torch.equal(anchor.shift[0, 1], torch.zeros_like(anchor.shift[0, 1]))


def test_rows_of_other_lengths_fit_only_their_own_frames():
    codec = tiny_codec()
    codes = random_codes(codec, 120, seed=3)
    padded = codes.clone()
    padded[1, :, 90:] = 0  # row 1 ends at frame 90: what lies after it must not count
    whole = fit_voice_anchor(codec, padded, [40, 40], lengths=[120, 90])
    alone = fit_voice_anchor(codec, codes[1:, :, :90], [40])
    torch.testing.assert_close(whole.scale[1], alone.scale[0])
    torch.testing.assert_close(whole.shift[1], alone.shift[0])
    sub = whole.rows([1])
    assert sub.start == [40] and torch.equal(sub.scale[0], whole.scale[1])


def test_chunked_decoding_applies_the_anchor_like_whole_decoding():
    codec = tiny_pitched_codec()
    codes = random_codes(codec, 160, seed=4)
    anchor = fit_voice_anchor(codec, codes, [70, 50])
    whole = codec.decode(codes, anchor)
    pieces = torch.cat(list(decode_chunked(codec, codes, 40, anchor)), dim=-1)
    torch.testing.assert_close(pieces, whole, atol=1e-4, rtol=1e-3)
    assert not torch.allclose(whole, codec.decode(codes), atol=1e-3)


def test_the_pipeline_decodes_through_the_anchor_when_its_recipe_says_so(tmp_path):
    build_tiny_pipeline(tmp_path)
    tiny_pitched_codec().save(tmp_path / "pitched_codec")
    lm = AudioLM.from_pretrained(write_recipe(tmp_path, name="anchored", codec="pitched_codec", voice_anchor=True))
    assert lm.voice_anchor
    prompt = tone(0.6, freq=220.0)
    anchored = lm.generate_continuation(prompt, SR, seconds=0.5, seed=0)
    lm.voice_anchor = False
    plain = lm.generate_continuation(prompt, SR, seconds=0.5, seed=0)
    assert torch.equal(anchored.codes, plain.codes)  # the tokens are the same draws
    assert not torch.allclose(anchored.audio, plain.audio, atol=1e-4)
    # several prompts of other lengths in one batch: each as it would come alone
    lm.voice_anchor = True
    assert_prompts_batch_as_alone(lm, prompt)


def test_a_recipe_without_the_field_decodes_plainly(tmp_path):
    lm = AudioLM.from_pretrained(build_tiny_pipeline(tmp_path))
    assert lm.voice_anchor is False


def test_continue_cli_decodes_plainly_with_no_voice_anchor(tmp_path, capsys):
    build_tiny_pipeline(tmp_path)
    tiny_pitched_codec().save(tmp_path / "pitched_codec")
    anchored = write_recipe(tmp_path, name="anchored", codec="pitched_codec", voice_anchor=True)
    plain = write_recipe(tmp_path, name="plain", codec="pitched_codec", voice_anchor=False)
    runs = (("anchored", anchored, []), ("flag", anchored, ["--no-voice-anchor"]), ("plain", plain, []))
    outputs = continue_cli_outputs(tmp_path, capsys, runs)
    assert torch.equal(outputs["flag"], outputs["plain"])
    assert (outputs["anchored"] - outputs["plain"]).abs().max() > 1e-3


def test_the_running_anchor_maps_each_frame_with_the_frames_before_it_only():
    codec = tiny_pitched_codec()
    codes = random_codes(codec, 150, seed=5)
    codes[:, 1:, 80:] = codes[:, 1:, 80:] % 5
    Tp = 60
    whole = RunningVoiceAnchor(codec, codes[..., :Tp])(_latent(codec, codes), codes, 0)
    # in overlapping forward windows (a left context decoded again), each frame comes out the same
    running, pieces, done = RunningVoiceAnchor(codec, codes[..., :Tp]), [], 0
    for end in (40, 75, 76, 110, 150):
        start = max(0, done - 12)
        out = running(_latent(codec, codes[..., start:end]), codes[..., start:end], start)
        pieces.append(out[..., done - start :])
        done = end
    torch.testing.assert_close(torch.cat(pieces, -1), whole)
    before = _latent(codec, codes)
    assert torch.equal(whole[..., :Tp], before[..., :Tp])
    # frame t's map: the generated frames of its group up to t, shrunk toward the prompt's
    b, t = 1, 120
    g = codes[b, 0] > 0 if codes[b, 0, t] > 0 else codes[b, 0] == 0
    z = before[b, 1:]
    prompt, gen = z[:, :Tp][:, g[:Tp]], z[:, Tp : t + 1][:, g[Tp : t + 1]]
    n = gen.shape[1] + PRIOR_FRAMES
    mean = (gen.sum(1) + PRIOR_FRAMES * prompt.mean(1)) / n
    var = (gen.pow(2).sum(1) + PRIOR_FRAMES * (prompt.var(1) + prompt.mean(1) ** 2)) / n - mean**2
    expected = (z[:, t] - mean) / var.sqrt() * prompt.std(1) + prompt.mean(1)
    torch.testing.assert_close(whole[b, 1:, t], expected, atol=1e-4, rtol=1e-3)
    with pytest.raises(ValueError, match="in order"):
        RunningVoiceAnchor(codec, codes[..., :Tp])(_latent(codec, codes[..., 70:80]), codes[..., 70:80], 70)


def test_a_stream_is_anchored_frame_by_frame(tmp_path):
    build_tiny_pipeline(tmp_path)
    tiny_pitched_codec().save(tmp_path / "pitched_codec")
    lm = AudioLM.from_pretrained(write_recipe(tmp_path, name="anchored", codec="pitched_codec", voice_anchor=True))
    prompt = tone(0.6, freq=220.0)
    streamed = torch.cat(list(lm.stream(prompt, SR, seconds=0.5, seed=0, continuation_only=True)), -1)
    codes = lm.generate_continuation(prompt, SR, seconds=0.5, seed=0).codes
    Tp = lm.encode_prompt(prompt, SR).codes.shape[-1]
    expected = lm.codec.decode(codes, RunningVoiceAnchor(lm.codec, codes[..., :Tp]))[..., Tp * lm.codec.hop_length :]
    torch.testing.assert_close(streamed, expected, atol=2e-4, rtol=1e-3)
    lm.voice_anchor = False
    plain = torch.cat(list(lm.stream(prompt, SR, seconds=0.5, seed=0, continuation_only=True)), -1)
    assert not torch.allclose(streamed, plain, atol=1e-3)
