"""The pipeline on a source-filter codec (level 0 of the codes is the pitch): the stages read and
write the pitch level like any other, prompts keep their pitch codes, and the audio comes out."""

from __future__ import annotations

import torch

from audiolm.inference.pipeline import AudioLM
from tests.helpers import build_tiny_pipeline, tiny_pitched_codec, tone, write_recipe

SR = 24000


def test_continuation_on_a_pitched_codec_keeps_the_prompts_pitch_codes(tmp_path):
    build_tiny_pipeline(tmp_path)
    tiny_pitched_codec().save(tmp_path / "pitched_codec")
    lm = AudioLM.from_pretrained(write_recipe(tmp_path, name="pitched", codec="pitched_codec"))
    prompt = tone(0.6, freq=220.0)
    prompt_codes = lm.codec.encode(prompt, SR, kbps=3.0)
    assert (prompt_codes[0, 0, 10:40] > 0).all()  # the tone is voiced: level 0 holds its pitch
    audio = lm.continue_audio(prompt, SR, seconds=0.4, seed=0)
    assert audio.shape[-1] == round(1.0 * SR) and torch.isfinite(audio).all()
    again = lm.continue_audio(prompt, SR, seconds=0.4, seed=0)
    assert torch.equal(audio, again)
