"""The shipped WaveNet checkpoints load and generate (each skipped until it is shipped)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from audiolm.models.wavenet.model import WaveNet, shipped_dir

SHIPPED = shipped_dir("wavenet_gc")
VOCODER = shipped_dir("wavenet_vocoder")
PROMPTS = Path(__file__).resolve().parents[3] / "checkpoints" / "prompts"


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no shipped WaveNet checkpoint")
def test_shipped_gc_wavenet_generates_with_every_speaker_id():
    model = WaveNet.from_pretrained(SHIPPED)
    assert model.config.gc_cardinality > 1
    ids = model.generate(64, batch_size=2, gc=torch.tensor([0, model.config.gc_cardinality - 1]), seed=0)
    assert ids.shape == (2, 64)
    assert int(ids.min()) >= 0 and int(ids.max()) < model.config.quantization_channels
    # the same seed reproduces the same samples
    again = model.generate(64, batch_size=2, gc=torch.tensor([0, model.config.gc_cardinality - 1]), seed=0)
    assert torch.equal(ids, again)


@pytest.mark.skipif(not (VOCODER / "config.json").is_file(), reason="no shipped WaveNet vocoder")
def test_shipped_vocoder_hears_the_codes_of_the_shipped_codec():
    """On a held-out prompt, the vocoder predicts the samples better from their own codes than
    from another clip's codes: it uses the codes. Then it decodes them, reproducibly."""
    from audiolm.core.audio import load_audio
    from audiolm.models.codec.codec import Codec

    vocoder, codec = WaveNet.from_pretrained(VOCODER), Codec.from_pretrained()
    cfg = vocoder.config
    assert cfg.sample_rate == codec.sample_rate and cfg.lc_hop == codec.hop_length
    frames = 24  # 0.32 s
    clips = {}
    for name in ("speech_prompt", "music_prompt"):
        wav = load_audio(PROMPTS / f"{name}.wav", sample_rate=cfg.sample_rate, mono=True)[0][0]
        wav = wav[cfg.sample_rate // 2 : cfg.sample_rate // 2 + frames * cfg.lc_hop]  # skip leading silence
        codes = codec.encode(wav, cfg.sample_rate, kbps=3.0)[:, : cfg.lc_n_q]  # [1, Q, frames]
        clips[name] = (vocoder.encode_audio(wav)[None], codes)  # ids [1, N]

    def nll(ids, codes):
        with torch.no_grad():
            return float(F.cross_entropy(vocoder(ids, codes=codes), ids))

    for name, other in (("speech_prompt", "music_prompt"), ("music_prompt", "speech_prompt")):
        ids, codes = clips[name]
        assert nll(ids, codes) < nll(ids, clips[other][1]) - 0.1, name
    codes = clips["speech_prompt"][1][:, :, :4]
    out = vocoder.generate(4 * cfg.lc_hop, codes=codes, seed=1)
    assert out.shape == (1, 4 * cfg.lc_hop) and torch.equal(out, vocoder.generate(4 * cfg.lc_hop, codes=codes, seed=1))
