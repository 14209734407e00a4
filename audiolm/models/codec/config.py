"""The codec's configuration: network shape, quantizer, and how it is trained.

`CodecConfig` is the one dataclass saved in a codec checkpoint (`config.json`) and read by
`audiolm train codec --config JSON`. The network fields mirror transformers' `EncodecConfig`
(SEANet encoder/decoder) so official EnCodec weights convert to it one-to-one; the training
fields (`training`) only matter to `CodecTask`.

Bit rates: a level of a 1024-entry codebook is 10 bits per frame, so at 75 frames/s each
level costs 0.75 kbps and 1.5 / 3 / 6 / 12 kbps use 2 / 4 / 8 / 16 levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar


def _check_int(value, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


@dataclass
class PitchNetConfig:
    """The learned pitch tracker (pitch_net.PitchNet, `audiolm train pitch`): its framing (must equal the codec's it serves), classes and size."""

    sample_rate: int = 24000
    n_fft: int = 1280
    hop_length: int = 320
    fmin: float = 50.0
    fmax: float = 800.0
    classes: int = 240  # log-spaced F0 classes, fmin..fmax (20 cents apart at 240)
    max_hz: float = 4000.0  # the features' top frequency: the harmonics that tell F0
    dim: int = 128
    intermediate: int = 384
    layers: int = 4
    kernel_size: int = 7
    # unvoiced where P(unvoiced) exceeds this: the knob between YIN-like and Harvest-like voicing
    unvoiced_threshold: float = 0.5
    decode_radius: int = 4  # classes either side of the peak in the F0 read-out
    # training only (audiolm train pitch): target width, crop length, random gain per crop
    sigma_classes: float = 1.25
    crop_seconds: float = 1.0
    gain_db_min: float = -20.0
    gain_db_max: float = 6.0

    def __post_init__(self) -> None:
        if not 0 < self.fmin < self.fmax < self.sample_rate / 2:
            raise ValueError(f"need 0 < fmin < fmax < sample_rate / 2, got {self.fmin} and {self.fmax}")
        if not 0 < self.hop_length <= self.n_fft:
            raise ValueError(f"need 0 < hop_length <= n_fft, got {self.hop_length} and {self.n_fft}")
        if not self.fmax < self.max_hz <= self.sample_rate / 2:
            raise ValueError(f"max_hz must be in (fmax, sample_rate / 2], got {self.max_hz}")
        for name in ("classes", "dim", "intermediate", "layers", "kernel_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.classes < 2:
            raise ValueError(f"classes must be at least 2, got {self.classes}")
        if not 0 < self.unvoiced_threshold < 1:
            raise ValueError(f"unvoiced_threshold must be in (0, 1), got {self.unvoiced_threshold}")
        if self.gain_db_min > self.gain_db_max:
            raise ValueError("gain_db_min must not exceed gain_db_max")

    @classmethod
    def tiny(cls) -> PitchNetConfig:
        """A few-thousand-parameter net for tests (the codec's framing, 24 kHz, hop 320)."""
        return cls(classes=48, dim=16, intermediate=32, layers=1, kernel_size=3, crop_seconds=0.4)

    @property
    def feature_bins(self) -> int:
        return int(self.max_hz * self.n_fft / self.sample_rate) + 1

    def hz_to_class(self, f0_hz: Any) -> Any:
        """F0 in Hz [...] -> continuous class position [...] in [1, classes] (clamped)."""
        position = (f0_hz.clamp(self.fmin, self.fmax) / self.fmin).log() / math.log(self.fmax / self.fmin)
        return 1 + position * (self.classes - 1)

    def class_to_hz(self, position: Any) -> Any:
        """Continuous class position [...] (1..classes) -> F0 in Hz [...]."""
        return self.fmin * ((position - 1) / (self.classes - 1) * math.log(self.fmax / self.fmin)).exp()


@dataclass
class CodecTrainingConfig:
    """Losses, discriminator and data for training from scratch (ignored at inference)."""

    crop_seconds: float = 1.0  # random crops of this length from the corpus audio
    # reconstruction: L1 on the waveform + multi-scale mel (window sizes 2^mel_min_log2 .. 2^mel_max_log2)
    mel_min_log2: int = 6
    mel_max_log2: int = 11
    mel_bins: int = 64
    mel_log_floor: float = 1e-3  # magnitudes below this are one level in the log-mel term
    # loss weights; with the balancer these are shares of the gradient reaching the decoder output.
    # weight_l1 is 0 for a source-filter codec (tokenizers/codec_pitch_config.json): its harmonics
    # and noise do not reproduce the waveform's phase, and a waveform loss against a signal of
    # unrelated phase only shrinks the output (-14 dB below 1 kHz at weight 0.1: BENCHMARKS.md)
    weight_l1: float = 0.1
    weight_mel: float = 1.0
    weight_adversarial: float = 3.0
    weight_feature_matching: float = 3.0
    # phase-derivative loss (instantaneous frequency + group delay, losses.py); 0 = off
    weight_phase: float = 0.0
    # multi-resolution linear-frequency STFT magnitude loss (losses.py); 0 = off
    weight_stft: float = 0.0
    # iSTFT decoder only: losses on the head's own outputs against the target's STFT in the
    # head's framing (losses.head_spectral_losses), added beside the balanced terms; 0 = off.
    # magnitude: L1 of log-magnitudes; phase: anti-wrapped per-hop phase advance (instantaneous
    # frequency) weighted by the target's magnitude
    weight_head_magnitude: float = 0.0
    weight_head_phase: float = 0.0
    # "harmonic" head only: L1 between log F0 and the target's (pitch.yin_f0, voiced frames)
    weight_head_f0: float = 0.0
    # with weight_head_f0: the harmonic head follows the pitch target's F0 on voiced frames while
    # training (its own prediction is still trained by the F0 loss and used at inference)
    teacher_forced_f0: bool = False
    weight_commitment: float = 1.0  # never balanced: its gradient does not pass through the decoder
    balancer: bool = True  # EnCodec's gradient balancer; False = plain weighted sum
    balancer_ema_decay: float = 0.999
    # adversarial training switches on after this many steps (the discriminator trains from then
    # on); the default suits the default 3000-step CPU run (about 2/3 reconstruction only)
    adversarial_start_step: int = 2000
    # multi-scale STFT discriminator, FFT sizes 1024/2048/512 as in EnCodec. EnCodec uses 32
    # filters; 8 keeps an adversarial CPU step near 3x a reconstruction-only step (32 would
    # be ~15x). Use 32 on a GPU.
    discriminator_filters: int = 8
    discriminator_n_ffts: tuple[int, ...] = (1024, 2048, 512)
    discriminator_lr: float | None = None  # None = the trainer's lr
    # HiFi-GAN multi-period discriminator beside the STFT one; () = none. Its widths are
    # period_discriminator_filters x (1, 4, 16, 32, 32) (HiFi-GAN: 32; 8 keeps it CPU-sized)
    discriminator_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    period_discriminator_filters: int = 8
    adversarial_loss: str = "hinge"  # "hinge" (EnCodec) or "lsgan" (HiFi-GAN)
    # parts of the codec that do not train ("encoder", "quantizer", "decoder"): frozen weights,
    # and a frozen quantizer's codebooks neither update nor re-seed. ("encoder", "quantizer")
    # trains a new decoder for a codec's tokens as they are: stages trained on them stay valid
    frozen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("weight_phase", "weight_stft", "weight_head_magnitude", "weight_head_phase", "weight_head_f0"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        parts = ("encoder", "quantizer", "decoder")
        if any(part not in parts for part in self.frozen) or len(set(self.frozen)) != len(self.frozen):
            raise ValueError(f"frozen must name distinct parts among {', '.join(parts)}, got {list(self.frozen)}")
        if set(self.frozen) == set(parts):
            raise ValueError("frozen names every part: nothing would train")
        if self.adversarial_loss not in ("hinge", "lsgan"):
            raise ValueError(f"adversarial_loss must be 'hinge' or 'lsgan', got {self.adversarial_loss!r}")
        if not self.discriminator_n_ffts and not self.discriminator_periods:
            raise ValueError("at least one discriminator is needed: discriminator_n_ffts or discriminator_periods")


@dataclass
class CodecConfig:
    """A SEANet encoder/decoder around a residual vector quantizer (EnCodec 24 kHz layout).

    Defaults are smaller than EnCodec's (num_filters 32, 14.85M parameters): num_filters 12
    (2.3M parameters) keeps encode + decode well above real time on a small CPU (BENCHMARKS.md,
    "Codec speed") and lets the codec train on a CPU in under an hour. Everything else is
    EnCodec 24 kHz.
    """

    sample_rate: int = 24_000
    # SEANet (names as in transformers.EncodecConfig)
    num_filters: int = 12
    hidden_size: int = 128  # latent dimension = codebook dimension
    upsampling_ratios: tuple[int, ...] = (8, 5, 4, 2)  # product = hop length (320 -> 75 Hz)
    num_residual_layers: int = 1
    num_lstm_layers: int = 2
    compress: int = 2
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_growth_rate: int = 2
    use_causal_conv: bool = True
    pad_mode: str = "reflect"
    norm_type: str = "weight_norm"
    trim_right_ratio: float = 1.0
    use_conv_shortcut: bool = True
    # Architecture: "seanet" = transformers' SEANet encoder/decoder (what EnCodec weights load
    # into); "stft" encoder / "istft" decoder = ConvNeXt blocks at the frame rate with an STFT
    # front / inverse-STFT head (frame_rate.py). The frame_* fields size those two.
    encoder: str = "seanet"
    decoder: str = "seanet"
    frame_dim: int = 256  # ConvNeXt channels
    frame_intermediate: int = 768  # ConvNeXt MLP width
    encoder_layers: int = 4
    decoder_layers: int = 8
    # the decoder's ConvNeXt MLP width (0 = frame_intermediate): a decoder grown from a smaller
    # one (`train codec --init`, training/codec/grow.py) for the same encoder and tokens
    decoder_intermediate: int = 0
    # latent frames the frame-rate decoder sees ahead (causal only; each adds one hop of latency):
    # its frame t's iSTFT window ends 1.5 hops after the encoder's frame t does (frame_rate.py)
    decoder_lookahead: int = 0
    frame_kernel_size: int = 7
    frame_causal: bool = True  # left-padded convolutions (streaming); False = centred
    n_fft: int = 1280  # STFT / iSTFT window (4 x hop); the iSTFT adds (n_fft - hop) / 2 samples of lookahead
    # iSTFT phase: "direct" = each frame's angle predicted outright (Vocos); "integrated" = each
    # bin's per-hop advance predicted and summed over frames, coherent by construction; "harmonic" =
    # "integrated" with one predicted F0 per frame that the harmonics' bins follow (frame_rate.py)
    istft_phase: str = "direct"
    # clip of the iSTFT head's log-magnitudes. 4.6 (|X| <= 100) is Vocos' clip for audio at unit
    # scale; at input_gain 15 the strongest harmonics of voiced speech reach |X| ~ 1000 (n_fft
    # 1280), so 4.6 flattens them by up to 20 dB. New configs use 7.6; 4.6 keeps older checkpoints.
    istft_max_log_magnitude: float = 4.6
    # "harmonic" only: the F0 share also shapes the magnitudes as a comb of harmonics (frame_rate.py)
    istft_harmonic_comb: bool = False
    # A pitch code as level 0 (pitch.py, quantizer.PitchedResidualVQ): the encoder tracks F0 with
    # YIN (pitch_fmin..pitch_fmax Hz, the dip below pitch_threshold, voiced below
    # pitch_voicing_threshold) and the decoder's harmonic-plus-noise head (istft_phase
    # "harmonic_noise") builds the harmonics on it. Needs encoder "stft" and decoder "istft"; the
    # pitch takes one of n_q levels.
    pitch_codebook: bool = False
    # "harmonic_noise" only: the noise part's log-envelope per mel-spaced band (this many, linearly
    # interpolated to the STFT bins) instead of per bin; 0 = per bin (checkpoints before session 9).
    # Per bin it grows single-bin spikes at 4-10 kHz that sound as steady lines (frame_rate.py)
    istft_noise_bands: int = 0
    # "harmonic_noise" only: the tonal part (steady partials off the pitch comb) only below this
    # frequency; 0 = at every frequency. Above 4 kHz a decoder used it for steady lines (session 9)
    istft_tonal_max_hz: float = 0.0
    pitch_fmin: float = 50.0
    pitch_fmax: float = 800.0
    pitch_threshold: float = 0.25
    # YIN's voicing decision: voiced where the chosen dip's d' is below this; 0 = pitch_threshold
    # (checkpoints before session 10). A higher one than pitch_threshold voices the weakly periodic
    # frames of diphone voices without taking octave-error dips (pitch.yin_f0)
    pitch_voicing_threshold: float = 0.0
    # Pitch code resolution: only every n-th of the log-spaced codes (1 = all, 4.7 cents apart at
    # the defaults). A faithful tracker's F0 moves a few codes every frame, which the coarse stage
    # must predict; 2 halves that for 9.4-cent steps (BENCHMARKS.md, "Session 15")
    pitch_code_step: int = 1
    # The learned tracker instead of YIN (pitch_net.PitchNet, distilled from Harvest by `audiolm
    # train pitch`; its weights live in the codec checkpoint under encoder.pitch_net). None = YIN
    # (every checkpoint before session 13). Its framing must be the codec's.
    pitch_net: PitchNetConfig | None = None
    # The encoder sees wav * input_gain and the decoder's output is divided by it. Our corpus
    # sits at -23 dB RMS (~0.07); at that scale a randomly initialised SEANet encoder gives
    # nearly the same latent for every frame and clip, and the quantizer collapses onto one
    # code before the encoder can learn. A gain of 15 brings speech near unit scale, where the
    # latents vary over time and the level-0 codes spread out within the first steps.
    # Official EnCodec weights use 1.0.
    input_gain: float = 15.0
    # residual vector quantizer
    codebook_size: int = 1024
    n_q: int = 16  # levels at the highest bandwidth
    bandwidths: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0)  # kbps
    ema_decay: float = 0.99
    kmeans_iters: int = 10  # k-means on the first training batch initialises the codebooks
    # an entry used less than this many vectors per step (EMA) is re-seeded from the batch
    # (see quantizer.py); at most (vectors per step) / threshold entries can be alive
    dead_code_threshold: float = 1.0
    training: CodecTrainingConfig = field(default_factory=CodecTrainingConfig)

    # keys a saved codec's config.json must hold (a missing one would silently take today's
    # default and build a different network); fields added later get defaults old files lack
    SAVED_KEYS: ClassVar[tuple[str, ...]] = (
        "sample_rate",
        "num_filters",
        "hidden_size",
        "upsampling_ratios",
        "num_residual_layers",
        "num_lstm_layers",
        "compress",
        "kernel_size",
        "last_kernel_size",
        "residual_kernel_size",
        "dilation_growth_rate",
        "use_causal_conv",
        "pad_mode",
        "norm_type",
        "trim_right_ratio",
        "use_conv_shortcut",
        "input_gain",
        "codebook_size",
        "n_q",
        "bandwidths",
    )

    def __post_init__(self) -> None:
        _check_int(self.sample_rate, "sample_rate", 1000, 384_000)
        _check_int(self.num_filters, "num_filters", 1, 1024)
        _check_int(self.hidden_size, "hidden_size", 1, 4096)
        if not self.upsampling_ratios or len(self.upsampling_ratios) > 8:
            raise ValueError(f"upsampling_ratios must list 1 to 8 ratios, got {self.upsampling_ratios}")
        for ratio in self.upsampling_ratios:
            _check_int(ratio, "upsampling_ratios[]", 1, 64)
        _check_int(self.num_residual_layers, "num_residual_layers", 0, 16)
        _check_int(self.num_lstm_layers, "num_lstm_layers", 0, 16)
        _check_int(self.compress, "compress", 1, 64)
        for name in ("kernel_size", "last_kernel_size", "residual_kernel_size"):
            _check_int(getattr(self, name), name, 1, 255)
        _check_int(self.dilation_growth_rate, "dilation_growth_rate", 1, 16)
        if self.pad_mode not in ("reflect", "constant", "replicate"):
            raise ValueError(f"pad_mode must be 'reflect', 'constant' or 'replicate', got {self.pad_mode!r}")
        if not (isinstance(self.trim_right_ratio, (int, float)) and 0.0 <= self.trim_right_ratio <= 1.0):
            raise ValueError(f"trim_right_ratio must be in [0, 1], got {self.trim_right_ratio}")
        if not self.use_causal_conv and self.trim_right_ratio != 1.0:
            raise ValueError("trim_right_ratio != 1.0 needs use_causal_conv")
        _check_int(self.n_q, "n_q", 1, 64)
        _check_int(self.codebook_size, "codebook_size", 2, 1 << 16)
        if not (isinstance(self.ema_decay, (int, float)) and 0.0 < self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        _check_int(self.kmeans_iters, "kmeans_iters", 0, 10_000)
        if not (
            isinstance(self.dead_code_threshold, (int, float))
            and math.isfinite(self.dead_code_threshold)
            and self.dead_code_threshold >= 0
        ):
            raise ValueError(f"dead_code_threshold must be a finite number >= 0, got {self.dead_code_threshold}")
        for kbps in self.bandwidths:
            if not (isinstance(kbps, (int, float)) and math.isfinite(kbps) and kbps > 0):
                raise ValueError(f"bandwidths must be positive finite kbps, got {kbps}")
        if not (isinstance(self.input_gain, (int, float)) and math.isfinite(self.input_gain)):
            raise ValueError(f"input_gain must be a finite number, got {self.input_gain}")
        if self.codebook_size < 2 or self.codebook_size & (self.codebook_size - 1):
            raise ValueError(f"codebook_size must be a power of two >= 2, got {self.codebook_size}")
        if self.norm_type not in ("weight_norm", "time_group_norm"):
            raise ValueError(f"norm_type must be 'weight_norm' or 'time_group_norm', got {self.norm_type!r}")
        if self.encoder not in ("seanet", "stft"):
            raise ValueError(f"encoder must be 'seanet' or 'stft', got {self.encoder!r}")
        if not (isinstance(self.decoder_lookahead, int) and 0 <= self.decoder_lookahead <= 8):
            raise ValueError(f"decoder_lookahead must be an integer in [0, 8] frames, got {self.decoder_lookahead!r}")
        if self.decoder_lookahead and (self.decoder != "istft" or not self.frame_causal):
            raise ValueError("decoder_lookahead is for a causal frame-rate decoder (decoder 'istft', frame_causal)")
        if not (isinstance(self.decoder_intermediate, int) and self.decoder_intermediate >= 0):
            raise ValueError(
                f"decoder_intermediate must be an integer >= 0 (0 = frame_intermediate), got {self.decoder_intermediate!r}"
            )
        if self.decoder not in ("seanet", "istft"):
            raise ValueError(f"decoder must be 'seanet' or 'istft', got {self.decoder!r}")
        if not (isinstance(self.istft_max_log_magnitude, (int, float)) and 0 < self.istft_max_log_magnitude <= 20):
            raise ValueError(f"istft_max_log_magnitude must be in (0, 20], got {self.istft_max_log_magnitude}")
        if (self.training.weight_head_f0 > 0 or self.training.teacher_forced_f0) and self.istft_phase != "harmonic":
            raise ValueError(
                "training.weight_head_f0 / teacher_forced_f0 need istft_phase 'harmonic' (the head with an F0)"
            )
        if self.istft_harmonic_comb and self.istft_phase != "harmonic":
            raise ValueError("istft_harmonic_comb needs istft_phase 'harmonic'")
        phases = ("direct", "integrated", "harmonic", "harmonic_noise")
        if self.istft_phase not in phases:
            raise ValueError(f"istft_phase must be one of {', '.join(map(repr, phases))}, got {self.istft_phase!r}")
        self._check_pitch()
        if self.n_fft < self.hop_length or (self.n_fft - self.hop_length) % 2:
            raise ValueError(
                f"n_fft must be >= the hop ({self.hop_length}) and differ from it by an even number, got {self.n_fft}"
            )
        if not self.input_gain > 0:
            raise ValueError(f"input_gain must be positive, got {self.input_gain}")
        if not self.bandwidths:
            raise ValueError("bandwidths must list at least one bit rate")
        for kbps in self.bandwidths:
            levels = self.levels_for_kbps_unchecked(kbps)
            if levels < 1 or levels > self.n_q:
                raise ValueError(f"bandwidth {kbps} kbps needs {levels} levels; n_q is {self.n_q}")

    def _check_pitch(self) -> None:
        if self.pitch_codebook != (self.istft_phase == "harmonic_noise"):
            raise ValueError(
                "pitch_codebook and istft_phase 'harmonic_noise' go together (the head builds on the pitch)"
            )
        if (self.istft_noise_bands or self.istft_tonal_max_hz) and not self.pitch_codebook:
            raise ValueError(
                "istft_noise_bands and istft_tonal_max_hz are for the harmonic-plus-noise head (pitch_codebook)"
            )
        tonal = self.istft_tonal_max_hz
        if isinstance(tonal, bool) or not isinstance(tonal, (int, float)) or not 0 <= tonal <= self.sample_rate / 2:
            raise ValueError(f"istft_tonal_max_hz must be in [0, {self.sample_rate / 2:g}] Hz, got {tonal!r}")
        if self.pitch_net is not None:
            if not self.pitch_codebook:
                raise ValueError("pitch_net is a tracker for the pitch code: it needs pitch_codebook")
            net = self.pitch_net
            if (net.sample_rate, net.n_fft, net.hop_length) != (self.sample_rate, self.n_fft, self.hop_length):
                raise ValueError(
                    f"pitch_net frames audio at {net.sample_rate} Hz, n_fft {net.n_fft}, hop {net.hop_length}; "
                    f"the codec at {self.sample_rate} Hz, n_fft {self.n_fft}, hop {self.hop_length}"
                )
        if not self.pitch_codebook:
            return
        bins = self.n_fft // 2 + 1
        if self.istft_noise_bands:
            _check_int(self.istft_noise_bands, "istft_noise_bands", 2, bins)
        if self.encoder != "stft" or self.decoder != "istft":
            raise ValueError("pitch_codebook needs encoder 'stft' and decoder 'istft'")
        if self.training.weight_head_phase > 0:
            raise ValueError(
                "training.weight_head_phase is for a head whose every bin has one advance; not 'harmonic_noise'"
            )
        low, high = self.sample_rate / (self.n_fft // 2), self.sample_rate / 4
        if not (isinstance(self.pitch_fmin, (int, float)) and isinstance(self.pitch_fmax, (int, float))) or not (
            low <= self.pitch_fmin < self.pitch_fmax <= high
        ):
            raise ValueError(
                f"need {low:g} <= pitch_fmin < pitch_fmax <= {high:g} Hz (YIN's lags fit in n_fft / 2), "
                f"got {self.pitch_fmin} and {self.pitch_fmax}"
            )
        if not (isinstance(self.pitch_threshold, (int, float)) and 0 < self.pitch_threshold < 1):
            raise ValueError(f"pitch_threshold must be in (0, 1), got {self.pitch_threshold}")
        voicing = self.pitch_voicing_threshold
        if not (isinstance(voicing, (int, float)) and (voicing == 0 or self.pitch_threshold <= voicing < 1)):
            raise ValueError(
                f"pitch_voicing_threshold must be 0 (= pitch_threshold) or in [pitch_threshold, 1), got {voicing}"
            )
        if not (isinstance(self.pitch_code_step, int) and not isinstance(self.pitch_code_step, bool)) or not (
            1 <= self.pitch_code_step <= 16
        ):
            raise ValueError(f"pitch_code_step must be an integer in [1, 16], got {self.pitch_code_step!r}")
        for kbps in self.bandwidths:
            if self.levels_for_kbps_unchecked(kbps) < 2:
                raise ValueError(f"bandwidth {kbps} kbps gives 1 level; a pitched codec needs 2 (pitch + RVQ)")

    # -- derived sizes ------------------------------------------------------------------------
    @property
    def decoder_width(self) -> int:
        """The frame-rate decoder's ConvNeXt MLP width (decoder_intermediate, 0 = frame_intermediate)."""
        return self.decoder_intermediate or self.frame_intermediate

    @property
    def hop_length(self) -> int:
        return int(math.prod(self.upsampling_ratios))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def bits_per_level(self) -> int:
        return int(math.log2(self.codebook_size))

    def levels_for_kbps_unchecked(self, kbps: float) -> int:
        return max(1, int(math.floor(kbps * 1000 / (self.bits_per_level * self.frame_rate) + 1e-6)))

    # -- presets ------------------------------------------------------------------------------
    @classmethod
    def tiny(cls) -> CodecConfig:
        """A few-thousand-parameter codec for tests (still 24 kHz, hop 320, all four bandwidths)."""
        return cls(
            num_filters=4,
            hidden_size=16,
            num_lstm_layers=1,
            codebook_size=1024,  # kept: the bit rates (10 bits a level) depend on it
            n_q=16,
            bandwidths=(1.5, 3.0, 6.0, 12.0),
            kmeans_iters=2,
            input_gain=1.0,  # 20-step tests: the tiny encoder learns fastest without the gain
            training=CodecTrainingConfig(
                crop_seconds=0.4,
                mel_min_log2=6,
                mel_max_log2=9,
                mel_bins=32,
                adversarial_start_step=5,
                discriminator_filters=4,
                discriminator_n_ffts=(256, 128),
                discriminator_periods=(2, 3),
                period_discriminator_filters=2,
            ),
        )

    def with_training(self, **changes) -> CodecConfig:
        return replace(self, training=replace(self.training, **changes))
