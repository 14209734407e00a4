"""The frame-rate STFT encoder / iSTFT decoder: shapes, inverse STFT, causality and latency;
a SEANet checkpoint still loads as transformers' EnCodec layout; the shipped codec is the
source-filter recipe."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from audiolm.core.config import load_config_file
from audiolm.models.codec.codec import Codec, default_codec_dir
from audiolm.models.codec.config import CodecConfig, CodecTrainingConfig
from audiolm.models.codec.frame_rate import (
    HarmonicNoiseHead,
    ISTFTDecoder,
    ISTFTHead,
    PitchedSTFTEncoder,
    STFTEncoder,
    _overlap_add,
    noise_band_interpolation,
)
from audiolm.models.codec.model import CodecModel, to_hf_config

HOP = 320


def _frame_config(**changes) -> CodecConfig:
    base = dict(
        encoder="stft",
        decoder="istft",
        frame_dim=16,
        frame_intermediate=32,
        encoder_layers=2,
        decoder_layers=2,
        num_filters=4,
        hidden_size=16,
        num_lstm_layers=1,
        kmeans_iters=2,
        input_gain=1.0,
    )
    return CodecConfig(**(base | changes))


def test_istft_head_inverts_a_known_spectrum():
    """Log-magnitude/angle of a signal's own STFT come back as the signal (away from the ends)."""
    n_fft, frames = 1280, 40
    head = ISTFTHead(dim=4, n_fft=n_fft, hop_length=HOP)
    signal = torch.randn(1, frames * HOP)
    pad = (n_fft - HOP) // 2
    spec = torch.stft(
        torch.nn.functional.pad(signal, (pad, pad)), n_fft, HOP, window=head.window, center=False, return_complex=True
    )  # frame t centred on [t*hop, (t+1)*hop)
    assert spec.shape[-1] == frames

    out = head.synthesize(spec)  # the overlap-add alone, without the linear layer
    assert out.shape == (1, 1, frames * HOP)
    assert torch.allclose(out[0, 0], signal[0], atol=1e-4)


def _one_bin_head(phase: str, k: int) -> ISTFTHead:
    """A head whose output is a constant spectrum: magnitude 1 in bin k, ~0 elsewhere, angle
    (direct) or advance deviation (integrated) 0."""
    head = ISTFTHead(dim=4, n_fft=1280, hop_length=HOP, phase=phase)
    bins = 1280 // 2 + 1
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.zero_()
        head.out.bias[:bins] = -20.0
        head.out.bias[k] = 0.0
    return head


def test_integrated_phase_makes_a_steady_partial_coherent():
    """One bin held for 60 frames: integrated phase advances it by its own frequency every hop,
    so the output is a steady sinusoid at the bin's frequency (768.75 Hz); direct phase restarts
    every frame at the same angle, so the output is modulated at the frame rate (a buzz). (Bin
    41 advances by a quarter turn per hop; a multiple of 4 would advance by whole turns.)"""
    k, frames = 41, 60
    x = torch.zeros(1, 4, frames)
    middle = slice(10 * HOP, 50 * HOP)  # away from the ends
    spectra = {}
    for phase in ("integrated", "direct"):
        with torch.no_grad():
            wav = _one_bin_head(phase, k)(x)[0, 0, middle]
        spectra[phase] = torch.fft.rfft(wav * torch.hann_window(wav.numel())).abs()
    freq = torch.fft.rfftfreq(40 * HOP, 1 / 24000)
    peak = spectra["integrated"].argmax()
    assert abs(float(freq[peak]) - k * 24000 / 1280) < 1.0
    share = lambda spec: float(spec[peak - 3 : peak + 4].square().sum() / spec.square().sum())  # noqa: E731
    assert share(spectra["integrated"]) > 0.99
    assert share(spectra["direct"]) < 0.7  # energy spread to the frame-rate sidebands


def _harmonic_head_output(share_logit: float, f0_bins: float, frames: int = 80) -> torch.Tensor:
    """A harmonic head with a flat magnitude spectrum, F0 fixed at `f0_bins`, and every bin's
    share of following F0 at sigmoid(share_logit) -> waveform [N] away from the ends."""
    import math

    from audiolm.models.codec.frame_rate import F0_BINS

    bins = 1280 // 2 + 1
    head = ISTFTHead(dim=4, n_fft=1280, hop_length=HOP, max_log_magnitude=7.6, phase="harmonic")
    low, high = math.log(F0_BINS[0]), math.log(F0_BINS[1])
    unit = (math.log(f0_bins) - low) / (high - low)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.zero_()
        head.out.bias[2 * bins : 3 * bins] = share_logit
        head.out.bias[-1] = math.log(unit / (1 - unit))
        return head(torch.zeros(1, 4, frames))[0, 0, 10 * HOP : -10 * HOP]


def _autocorrelation(x: torch.Tensor, lag: float) -> float:
    x = x - x.mean()
    lag = int(round(lag))
    return float((x[:-lag] * x[lag:]).sum() / (x * x).sum())


def test_harmonic_phase_makes_every_bin_follow_f0():
    """Every bin following F0 (5.5 bins = 103 Hz): the output repeats every pitch period, a
    voice's periodicity from a flat spectrum. Every bin on its own (share 0, no deviation):
    no periodicity at that lag."""
    period = 1280 / 5.5  # samples
    voiced = _harmonic_head_output(20.0, 5.5)
    assert _autocorrelation(voiced, period) > 0.8 and _autocorrelation(voiced, period / 2) < 0.3
    unvoiced = _harmonic_head_output(-20.0, 5.5)
    assert abs(_autocorrelation(unvoiced, period)) < 0.1


def test_harmonic_comb_puts_the_magnitudes_on_the_harmonics():
    """With `comb`, a flat predicted envelope and every bin following F0 = 5.5 bins come out
    as a comb: re-analysed, the output has its peaks at multiples of 5.5 bins and next to
    nothing half-way between."""
    import math

    from audiolm.models.codec.frame_rate import F0_BINS

    bins = 1280 // 2 + 1
    head = ISTFTHead(dim=4, n_fft=1280, hop_length=HOP, max_log_magnitude=7.6, phase="harmonic", comb=True)
    low, high = math.log(F0_BINS[0]), math.log(F0_BINS[1])
    unit = (math.log(5.5) - low) / (high - low)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.zero_()
        head.out.bias[2 * bins : 3 * bins] = 20.0
        head.out.bias[-1] = math.log(unit / (1 - unit))
        wav = head(torch.zeros(1, 4, 60))
        spectrum = head.analyse(wav, 60).abs()[0, :, 30]  # a frame in the middle
    peaks = spectrum[[11, 22, 33, 44]]  # harmonics 2, 4, 6, 8 fall on whole bins
    troughs = spectrum[[8, 19, 30, 41]]  # 2.75 bins from the nearest harmonic
    assert peaks.min() > 20 * troughs.max()
    with pytest.raises(ValueError, match="comb needs"):
        ISTFTHead(dim=4, n_fft=1280, hop_length=HOP, phase="integrated", comb=True)


def test_phase_prefix_continues_the_running_phase():
    torch.manual_seed(0)
    decoder = ISTFTDecoder(
        8, 16, 32, layers=2, kernel_size=7, causal=True, n_fft=1280, hop_length=HOP, phase="integrated"
    ).eval()
    assert decoder.integrates_phase and decoder.context_samples == 3 * 6 * HOP + 1280
    z = torch.randn(2, 8, 30)
    with torch.no_grad():
        whole, phase = decoder.forward_with_phase(z)
        assert torch.equal(whole, decoder(z))
        # a window over frames 10.. continued from the whole pass's phases of frames 10..14
        part, part_phase = decoder.forward_with_phase(z[..., 10:], phase[..., 10:15])
    # phases continue (mod 2 pi; the backbone saw less context, so frames 15.. differ a little)
    assert torch.equal(part_phase[..., :5], phase[..., 10:15])
    assert ISTFTDecoder(8, 16, 32, 2, 7, True, 1280, HOP).integrates_phase is False
    with pytest.raises(ValueError, match="phase must be one of"):
        ISTFTHead(dim=4, n_fft=1280, hop_length=HOP, phase="bogus")


@pytest.mark.parametrize("phase", ["direct", "integrated"])
@pytest.mark.parametrize("n_fft", [640, 1280])
def test_decoder_shapes_and_causal_latency(n_fft, phase):
    torch.manual_seed(0)
    decoder = ISTFTDecoder(
        latent_dim=8,
        dim=16,
        intermediate=32,
        layers=3,
        kernel_size=7,
        causal=True,
        n_fft=n_fft,
        hop_length=HOP,
        phase=phase,
    ).eval()
    assert decoder.lookahead_samples == (n_fft - HOP) // 2  # causal convs: only the iSTFT looks ahead
    frames, changed = 30, 12
    z = torch.randn(1, 8, frames)
    with torch.no_grad():
        base = decoder(z)
        z2 = z.clone()
        z2[..., changed] += 1.0
        moved = decoder(z2)
    assert base.shape == (1, 1, frames * HOP)
    diff = (moved - base).abs()[0, 0]
    # frame t first touches output sample t*hop - pad: everything before is final without it
    boundary = changed * HOP - decoder.lookahead_samples
    assert diff[:boundary].max() == 0 and diff[boundary : boundary + HOP].max() > 1e-6


def test_noncausal_decoder_looks_further_ahead():
    torch.manual_seed(0)
    decoder = ISTFTDecoder(8, 16, 32, layers=2, kernel_size=7, causal=False, n_fft=1280, hop_length=HOP).eval()
    assert decoder.lookahead_samples == 480 + 3 * 3 * HOP  # embed conv + 2 blocks, 3 frames each
    z = torch.randn(1, 8, 40)
    z2 = z.clone()
    z2[..., 20] += 1.0
    with torch.no_grad():
        diff = (decoder(z2) - decoder(z)).abs()[0, 0]
    boundary = 20 * HOP - decoder.lookahead_samples
    assert diff[:boundary].max() == 0 and diff[boundary : boundary + HOP].max() > 1e-6


def test_stft_encoder_is_causal():
    torch.manual_seed(0)
    encoder = STFTEncoder(8, 16, 32, layers=2, kernel_size=7, causal=True, n_fft=1280, hop_length=HOP).eval()
    wav = torch.randn(1, 1, 20 * HOP - 100)  # not a whole number of frames
    with torch.no_grad():
        z = encoder(wav)
        wav2 = wav.clone()
        wav2[..., 10 * HOP + 5] += 1.0  # a sample inside frame 10's hop
        z2 = encoder(wav2)
    assert z.shape == (1, 8, 20)
    changed = ((z2 - z).abs().amax(dim=1) > 1e-6)[0]
    assert not changed[:10].any() and changed[10]


def test_frame_rate_codec_round_trip_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = CodecModel(_frame_config())
    for layer in model.quantizer.layers:
        layer.inited.fill_(True)  # skip k-means: random codebooks are fine here
    codec = Codec(model)
    wav = 0.1 * torch.randn(2, 1, 24000 + 17)
    codes = codec.encode(wav, 24000, kbps=6)
    assert codes.shape == (2, 8, 76)
    audio = codec.decode(codes)
    assert audio.shape == (2, 1, 76 * HOP) and torch.isfinite(audio).all()
    codec.save(tmp_path / "c")
    again = Codec.from_pretrained(tmp_path / "c")
    assert again.config.decoder == "istft" and again.config.encoder == "stft"
    assert torch.equal(again.decode(codes), audio)
    # a training pass reaches every parameter of both frame-rate networks
    out = model(wav, 4)
    (out.audio.square().mean() + out.commitment_loss).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_bad_architecture_names_are_refused():
    with pytest.raises(ValueError, match="decoder"):
        CodecConfig(decoder="vocos")
    with pytest.raises(ValueError, match="encoder"):
        CodecConfig(encoder="mel")
    with pytest.raises(ValueError, match="n_fft"):
        CodecConfig(n_fft=321)


def test_seanet_recipe_checkpoint_loads_and_decodes_as_transformers_does(tmp_path):
    """The SEANet architecture (tokenizers/codec_config.json, the layout of the codec shipped
    before the source-filter one and of official EnCodec) still saves, loads strictly and decodes
    exactly as transformers' `EncodecDecoder` with the same weights."""
    from transformers.models.encodec.modeling_encodec import EncodecDecoder, EncodecEncoder  # start-up time

    path = Path(__file__).resolve().parents[3] / "tokenizers" / "codec_config.json"
    torch.manual_seed(0)
    Codec(CodecModel(load_config_file(CodecConfig, path)).eval()).save(tmp_path / "seanet")
    codec = Codec.from_pretrained(tmp_path / "seanet")
    assert codec.config.encoder == codec.config.decoder == "seanet"
    assert isinstance(codec.model.encoder, EncodecEncoder) and isinstance(codec.model.decoder, EncodecDecoder)
    reference = EncodecDecoder(to_hf_config(codec.config)).eval()
    reference.load_state_dict(codec.model.decoder.state_dict())
    codes = codec.encode(0.1 * torch.randn(1, 1, 4800), 24000, kbps=6)
    with torch.no_grad():
        expected = reference(codec.model.quantizer.decode(codes)) / codec.config.input_gain
    assert torch.allclose(codec.decode(codes), expected, atol=1e-6)


def test_shipped_codec_is_the_source_filter_recipe():
    """checkpoints/codec is the source-filter codec (tokenizers/codec_pitch_config.json) with the
    decoder of tokenizers/codec_pitch_lookahead4.json: its architecture fields equal those recipes'
    (a re-shipped codec with another layout must update the recipe)."""
    if not (default_codec_dir() / "config.json").is_file():
        pytest.skip("no shipped codec in this checkout")
    recipes = Path(__file__).resolve().parents[3] / "tokenizers"
    trained = load_config_file(CodecConfig, recipes / "codec_pitch_config.json")
    decoder = load_config_file(CodecConfig, recipes / "codec_pitch_lookahead4.json")
    shipped = Codec.from_pretrained().config
    fields = ("encoder", "decoder", "frame_dim", "encoder_layers", "decoder_layers", "istft_phase", "pitch_codebook")
    assert {f: getattr(shipped, f) for f in fields} == {f: getattr(trained, f) for f in fields}
    decoder_fields = (
        "decoder_layers",
        "decoder_width",
        "decoder_lookahead",
        "istft_noise_bands",
        "pitch_voicing_threshold",
    )
    assert {f: getattr(shipped, f) for f in decoder_fields} == {f: getattr(decoder, f) for f in decoder_fields}


def test_istft_recipe_config_builds_the_frame_rate_codec():
    # tokenizers/ sits at the repository's top level (recipes; not shipped in the package)
    path = Path(__file__).resolve().parents[3] / "tokenizers" / "codec_istft_config.json"
    config = load_config_file(CodecConfig, path)
    assert (config.encoder, config.decoder) == ("stft", "istft")
    assert config.training.discriminator_periods and config.training.discriminator_n_ffts
    model = CodecModel(config)
    assert model.decoder.lookahead_samples == 480  # causal ConvNeXt + the iSTFT's half window


def test_harmonic_recipe_config_builds_a_harmonic_comb_codec():
    """tokenizers/codec_harmonic_config.json: the session-5 candidate (harmonic head with the
    comb, F0 taught by the YIN target with teacher forcing)."""
    path = Path(__file__).resolve().parents[3] / "tokenizers" / "codec_harmonic_config.json"
    config = load_config_file(CodecConfig, path)
    assert (config.istft_phase, config.istft_harmonic_comb) == ("harmonic", True)
    assert config.training.weight_head_f0 > 0 and config.training.teacher_forced_f0
    model = CodecModel(config)
    assert model.decoder.integrates_phase and model.decoder.head.comb


def test_f0_training_options_need_the_harmonic_head():
    with pytest.raises(ValueError, match="need istft_phase 'harmonic'"):
        _frame_config(istft_phase="integrated", training=CodecTrainingConfig(weight_head_f0=1.0))


def _flat_harmonic_head(decay: bool = False) -> HarmonicNoiseHead:
    """A harmonic-plus-noise head whose output is a constant spectrum: harmonic envelope 1 (or
    falling as 1 / (1 + k / 8) with `decay`, like a voice), noise ~0."""
    head = HarmonicNoiseHead(dim=4, n_fft=1280, hop_length=HOP)
    bins = 1280 // 2 + 1
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.zero_()
        if decay:
            head.out.bias[:bins] = -torch.log1p(torch.arange(bins) / 8.0)
        head.out.bias[bins : 3 * bins] = -20.0  # no noise, no tonal part
    return head


def test_harmonic_noise_head_sounds_the_given_pitch():
    """A flat harmonic envelope on a steady F0 of 8 bins (150 Hz) is a harmonic tone: it repeats
    every 160 samples and its peaks sit on multiples of 8 bins; unvoiced frames are silent."""
    head = _flat_harmonic_head()
    f0 = torch.full((1, 40), 8.0)
    f0[:, 30:] = 0.0
    with torch.no_grad():
        wav = head.synthesize(head.spectrum_given(torch.zeros(1, 4, 40), f0)[0])[0, 0]
    voiced = wav[5 * HOP : 25 * HOP]
    assert _autocorrelation(voiced, 160) > 0.95 and _autocorrelation(voiced, 80) < 0.1  # 0.975 = 1 - lag / length
    spectrum = head.analyse(wav[None, None], 40).abs()[0, :, 15]
    assert spectrum[[8, 16, 24, 32]].min() > 20 * spectrum[[4, 12, 20, 28]].max()
    assert wav[32 * HOP :].abs().max() < 1e-3 * wav.abs().max()


def test_harmonic_noise_head_follows_a_gliding_pitch():
    """F0 sliding from 120 to 180 Hz over 60 frames (8 semitones a second): YIN hears the
    slide in the output frame by frame."""
    from audiolm.models.codec.pitch import yin_f0

    head = _flat_harmonic_head(decay=True)
    hz = torch.linspace(120.0, 180.0, 60)[None]
    with torch.no_grad():
        wav = head.synthesize(head.spectrum_given(torch.zeros(1, 4, 60), hz * 1280 / 24000)[0])
    heard, voiced = yin_f0(wav[:, 0], 24000, 60, 1280, HOP)
    assert voiced[0, 3:57].all()
    assert ((heard[0, 3:57] / hz[0, 3:57]) - 1).abs().max() < 0.01


def test_pitched_decoder_carries_both_running_phases():
    torch.manual_seed(0)
    decoder = ISTFTDecoder(
        8, 16, 32, layers=2, kernel_size=7, causal=True, n_fft=1280, hop_length=HOP, phase="harmonic_noise"
    ).eval()
    z = torch.randn(2, 9, 30)
    z[:, 0] = torch.where(torch.rand(2, 30) > 0.3, 5.0 + 3 * torch.rand(2, 30), torch.zeros(2, 30))  # F0 in bins
    with torch.no_grad():
        whole, phase = decoder.forward_with_phase(z)
        assert phase.shape == (2, 643, 30) and torch.equal(whole, decoder(z))
        part, part_phase = decoder.forward_with_phase(z[..., 10:], phase[..., 10:15])
    assert torch.equal(part_phase[..., :5], phase[..., 10:15])
    # the fundamental's phase (row 641) depends only on the F0s, so it continues exactly; so
    # does the frame index (row 642) that seeds the noise's phases
    assert torch.allclose(part_phase[:, 641, 5:], phase[:, 641, 15:], atol=1e-5)
    assert torch.equal(part_phase[:, 642], torch.arange(10, 30.0).expand(2, 20))
    with pytest.raises(ValueError, match="HarmonicNoiseHead"):
        ISTFTHead(dim=4, n_fft=1280, hop_length=HOP, phase="harmonic_noise")


def _pitched_config(**changes) -> CodecConfig:
    return _frame_config(istft_phase="harmonic_noise", pitch_codebook=True, istft_max_log_magnitude=7.6, **changes)


def test_pitched_codec_sends_the_pitch_as_level_0(tmp_path):
    """Level 0 of a pitched codec's codes is the input's pitch; every parameter trains; the
    codec saves, loads and decodes the same; its level-0 codebook carries log F0 and voicing."""
    import math

    from audiolm.models.codec.pitch import codes_to_pitch

    torch.manual_seed(0)
    model = CodecModel(_pitched_config())
    assert isinstance(model.encoder, PitchedSTFTEncoder) and len(model.quantizer.layers) == 15
    for layer in model.quantizer.layers:
        layer.inited.fill_(True)
    t = torch.arange(24000) / 24000
    voice = sum(0.2 * torch.sin(2 * math.pi * 180.0 * h * t) / h for h in range(1, 8))
    wav = torch.stack([voice, 0.05 * torch.randn(24000)])[:, None]  # a voice and a noise
    codec = Codec(model)
    codes = codec.encode(wav, 24000, kbps=3)
    assert codes.shape == (2, 4, 75)
    pitch = codes_to_pitch(codes[:, 0], 1024, 50.0, 800.0)
    assert ((pitch[0, 3:72] / 180.0 - 1).abs() < 0.005).all() and (pitch[1] == 0).float().mean() > 0.9
    audio = codec.decode(codes)
    assert audio.shape == (2, 1, 75 * HOP) and torch.isfinite(audio).all()
    codec.save(tmp_path / "c")
    again = Codec.from_pretrained(tmp_path / "c")
    assert again.config.pitch_codebook and torch.equal(again.decode(codes), audio)
    tables = codec.codebooks(2)
    assert tables[0][0].abs().sum() == 0 and tables[0][1:, 1].eq(1).all() and tables[1].shape == (1024, 16)
    out = model(wav, 4)
    assert torch.equal(out.codes[:, 0], codes[:, 0])
    (out.audio.square().mean() + out.commitment_loss).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_pitched_codec_options_are_checked():
    with pytest.raises(ValueError, match="go together"):
        _frame_config(pitch_codebook=True)
    with pytest.raises(ValueError, match="go together"):
        _frame_config(istft_phase="harmonic_noise")
    with pytest.raises(ValueError, match="pitch_fmin"):
        _pitched_config(pitch_fmin=20.0)
    with pytest.raises(ValueError, match="pitch_threshold"):
        _pitched_config(pitch_threshold=1.5)
    with pytest.raises(ValueError, match="pitch_voicing_threshold"):
        _pitched_config(pitch_threshold=0.3, pitch_voicing_threshold=0.2)  # below the dip threshold
    with pytest.raises(ValueError, match="pitch_voicing_threshold"):
        _pitched_config(pitch_voicing_threshold=1.0)
    with pytest.raises(ValueError, match="needs 2"):
        _pitched_config(bandwidths=(0.75, 6.0))
    with pytest.raises(ValueError, match="weight_head_phase"):
        _pitched_config(training=CodecTrainingConfig(weight_head_phase=1.0))
    with pytest.raises(ValueError, match="encoder 'stft'"):
        _pitched_config(encoder="seanet")


def test_pitch_recipe_config_builds_a_pitched_codec():
    path = Path(__file__).resolve().parents[3] / "tokenizers" / "codec_pitch_config.json"
    config = load_config_file(CodecConfig, path)
    assert config.pitch_codebook and config.istft_phase == "harmonic_noise"
    assert config.training.weight_l1 == 0  # no waveform loss: the phases are the synthesizer's own
    model = CodecModel(config)
    assert isinstance(model.decoder.head, HarmonicNoiseHead) and model.decoder.integrates_phase


def test_harmonic_noise_head_noise_is_noise_not_a_hum():
    """The noise part alone (flat envelope): no steady partial (the phase of a bin jumps at
    random from frame to frame, unlike a running phase), nothing periodic, and the same
    numbers on every call."""
    head = HarmonicNoiseHead(dim=4, n_fft=1280, hop_length=HOP)
    bins = 1280 // 2 + 1
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.zero_()
        head.out.bias[:bins] = -20.0
        head.out.bias[2 * bins : 3 * bins] = -20.0
        f0 = torch.zeros(1, 60)
        spec, _ = head.spectrum_given(torch.zeros(1, 4, 60), f0)
        again, _ = head.spectrum_given(torch.zeros(1, 4, 60), f0)
        wav = head.synthesize(spec)[0, 0]
    assert torch.equal(spec, again)
    steps = torch.angle(spec[0, 100:110, 1:] / spec[0, 100:110, :-1])  # per-hop phase change, 10 bins
    assert steps.std(dim=-1).min() > 1.0  # a steady partial would change by the same angle every hop
    middle = wav[10 * HOP : 50 * HOP]
    assert max(abs(_autocorrelation(middle, lag)) for lag in (80, 160, 320, 1280)) < 0.1


def test_noise_band_interpolation_is_linear_between_mel_spaced_centres():
    interp = noise_band_interpolation(1280, 128, 24000)  # [641, 128]
    assert interp.shape == (641, 128) and torch.allclose(interp.sum(1), torch.ones(641))
    assert (interp >= 0).all() and ((interp > 0).sum(1) <= 2).all()  # each bin mixes two neighbours
    centres = interp.argmax(0)  # [128]: the bin each band peaks on
    widths = centres.diff()
    assert widths.min() >= 1 and widths[:10].max() <= 2 and widths[-10:].min() >= 10  # mel: wide at the top
    ramp = torch.arange(128, dtype=torch.float32)  # a linear function of the band index ...
    between = interp @ ramp  # ... is reproduced near every centre (within half a bin), monotone
    assert torch.allclose(between[centres], ramp, atol=0.5) and (between.diff() >= 0).all()
    assert between[0] == 0 and between[-1] == 127  # the end bins are the end centres
    with pytest.raises(ValueError, match="noise bands"):
        noise_band_interpolation(1280, 1, 24000)


def test_banded_noise_envelope_has_no_single_bin_spikes():
    """Whatever the weights, the banded head's noise log-envelope is piecewise linear between
    band centres: no bin can rise above both neighbours unless it is a centre."""
    head = HarmonicNoiseHead(dim=8, n_fft=1280, hop_length=HOP, noise_bands=64)
    torch.manual_seed(0)
    with torch.no_grad():
        head.out.weight.normal_()
        _, noise, _, _ = head.predict_parts(torch.randn(2, 8, 5))
    assert noise.shape == (2, 641, 5)
    second = noise[:, 2:] - 2 * noise[:, 1:-1] + noise[:, :-2]  # [B, F - 2, T]
    # a centre between bins m and m + 1 bends the line at both: second differences at bins
    # m - 1 .. m + 1 (indices m - 2 .. m) may be non-zero, every other must be 0
    near = {m + d for m in head.noise_interp.argmax(0).tolist() for d in (-2, -1, 0)}
    off_centre = [j for j in range(639) if j not in near]
    assert len(off_centre) > 300
    assert second[:, off_centre].abs().max() < 1e-3


def test_per_bin_head_weights_load_into_a_banded_head():
    """A per-bin checkpoint loads into a banded head (least squares on the noise rows): a per-bin
    envelope that is itself band-shaped comes back exactly; harmonic, tonal and advance rows as
    they were."""
    per_bin = HarmonicNoiseHead(dim=8, n_fft=1280, hop_length=HOP)
    banded = HarmonicNoiseHead(dim=8, n_fft=1280, hop_length=HOP, noise_bands=32)
    torch.manual_seed(0)
    bins = 641
    with torch.no_grad():
        per_bin.out.weight.normal_()
        per_bin.out.bias.normal_()
        per_bin.out.weight[bins : 2 * bins] = banded.noise_interp @ torch.randn(32, 8)
        per_bin.out.bias[bins : 2 * bins] = banded.noise_interp @ torch.randn(32)
    banded.load_state_dict(per_bin.state_dict())
    x = torch.randn(1, 8, 6)
    with torch.no_grad():
        for a, b in zip(per_bin.predict_parts(x), banded.predict_parts(x)):
            assert torch.allclose(a, b, atol=1e-4)


def test_banded_noise_is_checked_and_builds_through_the_config():
    config = _pitched_config(istft_noise_bands=48)
    head = CodecModel(config).decoder.head
    assert isinstance(head, HarmonicNoiseHead) and head.noise_interp.shape[1] == 48
    with pytest.raises(ValueError, match="istft_noise_bands"):
        _frame_config(istft_noise_bands=48)  # no noise part to band
    with pytest.raises(ValueError, match="istft_noise_bands"):
        _pitched_config(istft_noise_bands=1)


def test_decoder_recipe_is_the_pitch_recipe_with_a_banded_noise_envelope_and_frozen_tokens():
    """tokenizers/codec_pitch_decoder.json trains a new decoder for a codec of the pitch recipe
    (`train codec --init`): the same network but the noise envelope and the tonal band, encoder and
    quantizer frozen."""
    import dataclasses

    folder = Path(__file__).resolve().parents[3] / "tokenizers"
    pitch = load_config_file(CodecConfig, folder / "codec_pitch_config.json")
    decoder = load_config_file(CodecConfig, folder / "codec_pitch_decoder.json")
    assert decoder.istft_noise_bands == 128 and decoder.istft_tonal_max_hz == 4000
    assert decoder.training.frozen == ("encoder", "quantizer")
    same = dataclasses.replace(decoder, istft_noise_bands=0, istft_tonal_max_hz=0.0, training=pitch.training)
    assert same == pitch


@pytest.mark.parametrize("n, hop", [(1280, 320), (1280, 256), (10, 3)])
def test_overlap_add_equals_fold_and_its_gradient(n, hop):
    """The shifted-add overlap-add (hop divides n) against `F.fold`, values and gradients."""
    torch.manual_seed(0)
    segments = torch.randn(2, n, 9, dtype=torch.float64, requires_grad=True)
    length = 8 * hop + n
    reference = torch.nn.functional.fold(segments, (1, length), (1, n), stride=(1, hop))[:, 0, 0]
    fast = _overlap_add(segments, hop)
    assert fast.shape == (2, length) and torch.allclose(fast, reference)
    weight = torch.randn(2, length, dtype=torch.float64)
    (grad_reference,) = torch.autograd.grad((reference * weight).sum(), segments)
    (grad_fast,) = torch.autograd.grad((fast * weight).sum(), segments)
    assert torch.allclose(grad_fast, grad_reference)


def test_tonal_limit_runs_only_the_tonal_phases():
    """With istft_tonal_max_hz the state's rows from the limit's bin up stay 0 (no tonal part
    there); the tonal rows below it and the fundamental's run as without the limit."""
    torch.manual_seed(0)
    free = HarmonicNoiseHead(dim=8, n_fft=1280, hop_length=HOP)
    limited = HarmonicNoiseHead(dim=8, n_fft=1280, hop_length=HOP, tonal_max_hz=4000.0)
    limited.load_state_dict(free.state_dict())
    x = torch.randn(1, 8, 12)
    f0 = torch.where(torch.rand(1, 12) > 0.3, 6.0, 0.0)
    with torch.no_grad():
        _, free_state = free.spectrum_given(x, f0)
        _, state = limited.spectrum_given(x, f0)
    first = limited.tonal_from_bin
    assert state.shape == free_state.shape == (1, 643, 12)
    assert (state[:, first:641] == 0).all()
    assert torch.allclose(state[:, :first], free_state[:, :first]) and torch.equal(state[:, 641:], free_state[:, 641:])


def test_tonal_part_stays_below_its_limit():
    """istft_tonal_max_hz: the tonal part (envelope and phase advance) exists below the limit's
    bin only; there, as without the limit."""
    free = HarmonicNoiseHead(dim=8, n_fft=1280, hop_length=HOP)
    limited = HarmonicNoiseHead(dim=8, n_fft=1280, hop_length=HOP, tonal_max_hz=4000.0)
    torch.manual_seed(0)
    with torch.no_grad():
        free.out.weight.normal_()
        limited.load_state_dict(free.state_dict())
        x = torch.randn(1, 8, 5)
        _, _, tonal_free, advance_free = free.predict_parts(x)
        _, _, tonal, advance = limited.predict_parts(x)
    first = math.ceil(4000 * 1280 / 24000)  # bin 213.3 -> 214
    assert tonal.shape == advance.shape == (1, first, 5) and tonal_free.shape == (1, 641, 5)
    assert torch.allclose(tonal, tonal_free[:, :first]) and torch.allclose(advance, advance_free[:, :first])
    assert CodecModel(_pitched_config(istft_tonal_max_hz=4000.0)).decoder.head.tonal_from_bin == 214
    with pytest.raises(ValueError, match="istft_tonal_max_hz"):
        _pitched_config(istft_tonal_max_hz=20000.0)
    with pytest.raises(ValueError, match="istft_tonal_max_hz"):
        _frame_config(istft_tonal_max_hz=4000.0)
