"""Frame-rate encoder and decoder: ConvNeXt blocks at 75 Hz with an STFT front and an iSTFT head.

The SEANet encoder/decoder (model.py) convolves at every sample rate between 24 kHz and 75 Hz;
these networks do all their work at the frame rate, which is why they are cheap on a CPU
(Vocos, Siuzdak 2023; WavTokenizer, Ji et al. 2024):

    STFTEncoder:  wav [B, 1, N] --STFT(n_fft, hop), causal frames--> log|X| [B, F, T]
                  --ConvNeXt backbone--> z [B, D, T]                       (T = ceil(N / hop))
    ISTFTDecoder: z_q [B, D, T] --ConvNeXt backbone--> [B, C, T]
                  --linear--> log-magnitude, angle [B, F, T] each
                  --mag * (cos + i sin), inverse STFT, "same" padding--> wav [B, 1, T * hop]

Phase (`ISTFTHead(phase=...)`): "direct" predicts each frame's angle outright (Vocos). A
convolution stack cannot keep a sinusoid's phase advancing coherently from frame to frame
without an adversarial critic teaching it (which takes far more steps than a CPU run has):
trained on L1 + mel alone, each frame's phase is an independent guess and the waveform buzzes
at the frame rate (a pitch tracker hears 75 Hz in every voice). "integrated" predicts how far
each bin's phase advances over one hop, as the bin-centre advance 2*pi*k*hop/n_fft plus a
learned deviation in (-pi, pi), and sums the advances over time (a phase vocoder's
instantaneous frequency): a steady partial keeps one coherent phase track by construction. The
running phase is state: `ISTFTDecoder.forward(z, phase_prefix=...)` continues it across chunks
(codec_chunks.py passes the phases of the context frames), so chunked decoding equals one pass.
"harmonic" is "integrated" with a pitch: the head also predicts one F0 per frame and, per bin,
how much of the bin follows it. A partial at frequency f advances every bin of its main lobe by
2*pi*f*hop/sr per hop, so a bin led by harmonic h = round(k / F0) (F0 in bins) advances at
h * F0: one number per frame locks every harmonic's phase track, where "integrated" must learn
each bin's frequency to a fraction of a bin from the codes. The rest of each bin follows its
own learned deviation (noise, and music that no single F0 explains). With `comb`, the same
share also shapes the magnitudes: a bin's magnitude is the predicted (envelope) magnitude times
share * lobe(k - h * F0) + (1 - share), lobe = the Hann window's main lobe, so the comb of
harmonics comes from F0 as in a source-filter vocoder instead of from a read-out that must learn
a comb moving with F0.
"harmonic_noise" takes the F0 as given instead (the codec sends it as a pitch code, pitch.py):
a harmonic-plus-noise model (Stylianou's HNM; the source-filter split of vocoders) in the STFT
domain. The head predicts three envelopes per bin: harmonic, noise and tonal. On voiced frames,
harmonic h is a Hann main lobe centred on bin h * F0 whose phase is h times the fundamental's
running phase (the F0 summed over hops), times the harmonic envelope at each bin; noise has a
fresh pseudo-random phase every frame; tonal has the "integrated" head's own running phase
(steady partials off the comb, e.g. polyphonic music). The decoder sees the F0 as two input
features (voicing, log F0), so the envelopes can follow the pitch; nothing has to learn a comb
or a phase track.

Causality and latency (`ISTFTDecoder.lookahead_samples`): with `causal=True` every convolution
pads on the left only, so the backbone's frame t sees latent frames <= t. The iSTFT then
overlap-adds frame t's window (n_fft samples) over output samples
[t*hop - pad, t*hop - pad + n_fft) with pad = (n_fft - hop) / 2, so an output sample needs
frames up to pad / hop frames ahead: output up to sample t*hop - pad is final once latent
frame t has arrived. n_fft = 4 * hop (the default) gives a lookahead of 480 samples (20 ms at
24 kHz, 1.5 frames); n_fft = 2 * hop gives 160 samples. With `causal=False` the depthwise
convolutions are centred and each block adds (kernel_size - 1) / 2 frames more.
The encoder's frame t covers samples [t*hop - (n_fft - hop), (t + 1)*hop): it is causal.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audiolm.models.codec.convnext import ConvNeXtBackbone
from audiolm.models.codec.mel import hz_to_mel, mel_to_hz
from audiolm.models.codec.pitch import yin_f0
from audiolm.models.codec.pitch_net import PitchNet

PHASE_MODES = ("direct", "integrated", "harmonic", "harmonic_noise")
F0_BINS = (2.0, 64.0)  # the harmonic head's F0 range in bins (37.5-1200 Hz at 24 kHz, n_fft 1280)


def _hann_lobe(distance: torch.Tensor) -> torch.Tensor:
    """|W(d)| / W(0) of a Hann window's transform, d in bins: 0.5 at |d| = 1, near 0 past the
    main lobe (|d| >= 2)."""
    return _hann_lobe_signed(distance).abs()


def _hann_lobe_signed(distance: torch.Tensor) -> torch.Tensor:
    """W(d) / W(0) of a centred Hann window's transform, d in bins: sinc(d) / (1 - d^2), the sign
    of the side lobes kept (a partial synthesised from it is the windowed sinusoid itself).
    Written with sin (torch.sinc is several times slower on a CPU); 1 at d = 0, 0.5 at |d| = 1."""
    x = math.pi * distance
    denominator = x * (1 - distance.square())
    regular = denominator.abs() > 1e-4
    value = torch.sin(x) / torch.where(regular, denominator, 1.0)
    return torch.where(regular, value, torch.where(distance.abs() < 0.5, 1.0, 0.5))


class ISTFTHead(nn.Module):
    """[B, C, T] -> waveform [B, 1, T * hop]: log-magnitude and phase per bin, inverse STFT.

    "same" padding: frames overlap-add into (T - 1) * hop + n_fft samples, divided by the
    summed squared window, and (n_fft - hop) / 2 samples are cut from each end, so T frames
    give exactly T * hop samples and frame t is centred on samples [t*hop, (t+1)*hop).
    (torch.istft's center=False mode refuses windows whose sum vanishes at the edges, which
    this cut makes harmless, so the overlap-add is written out with `F.fold`.)
    `phase`: "direct", "integrated" or "harmonic" (see the module docstring).
    """

    window: torch.Tensor  # buffer
    bin_advance: torch.Tensor  # buffer [F, 1]: 2*pi*k*hop/n_fft mod 2*pi
    start_phase: torch.Tensor  # buffer [F, 1]: pi*k mod 2*pi

    def __init__(
        self,
        dim: int,
        n_fft: int,
        hop_length: int,
        max_log_magnitude: float = 4.6,
        phase: str = "direct",
        comb: bool = False,
    ):
        super().__init__()
        if (n_fft - hop_length) % 2 or n_fft < hop_length:
            raise ValueError(f"n_fft - hop_length must be even and >= 0, got n_fft {n_fft}, hop {hop_length}")
        if phase not in PHASE_MODES:
            raise ValueError(f"phase must be one of {PHASE_MODES}, got {phase!r}")
        if comb and phase != "harmonic":
            raise ValueError("comb needs phase='harmonic'")
        if phase == "harmonic_noise" and type(self) is ISTFTHead:
            raise ValueError("phase 'harmonic_noise' is HarmonicNoiseHead's (it needs a given F0)")
        self.comb = comb
        self.n_fft, self.hop_length, self.phase = n_fft, hop_length, phase
        self.pad = (n_fft - hop_length) // 2
        self.max_log_magnitude = max_log_magnitude  # exp(4.6) ~ 100, Vocos' clip
        bins = n_fft // 2 + 1
        # per bin: log-magnitude and angle / advance deviation; "harmonic" adds per bin the
        # share that follows F0, and F0 itself
        self.out = nn.Linear(dim, 3 * bins + 1 if phase == "harmonic" else 2 * bins)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        bin_index = torch.arange(bins, dtype=torch.float64)
        advance = torch.remainder(2 * math.pi * bin_index * hop_length / n_fft, 2 * math.pi)
        self.register_buffer("bin_advance", advance.float()[:, None], persistent=False)
        # the running phase starts at pi * k: the linear phase of content centred in the frame
        # (a partial's main-lobe bins alternate by pi); equal start phases would put every
        # frame's energy at its edges, where the window removes it
        self.register_buffer(
            "start_phase", torch.remainder(math.pi * bin_index, 2 * math.pi).float()[:, None], persistent=False
        )

    def predict(
        self, x: torch.Tensor, extras: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T] -> (log-magnitude [B, F, T], before the clip; phase parameter [B, F, T]:
        the angle ("direct") or the phase advance from frame t - 1 to t ("integrated")).
        extras (training, "harmonic"): receives "f0_bins" [B, T], the predicted F0; an "f0_given"
        [B, T] already in it (bins, 0 where unknown) replaces the F0 the harmonics follow."""
        out = self.out(x.transpose(1, 2)).transpose(1, 2).float()
        bins = self.n_fft // 2 + 1
        log_magnitude, param = out[:, :bins], out[:, bins : 2 * bins]
        if self.phase == "direct":
            return log_magnitude, param
        deviation = math.pi * torch.tanh(param)  # [B, F, T]: the bin's own frequency offset
        if self.phase == "harmonic":
            low, high = math.log(F0_BINS[0]), math.log(F0_BINS[1])
            f0 = torch.exp(low + (high - low) * torch.sigmoid(out[:, -1:]))  # [B, 1, T] in bins
            if extras is not None:
                extras["f0_bins"] = f0[:, 0]  # [B, T], for a supervised F0 loss
                given = extras.get("f0_given")  # [B, T] in bins, 0 = use the prediction (teacher forcing)
                if given is not None:
                    f0 = torch.where(given[:, None] > 0, given[:, None].to(f0.dtype), f0)
            k = torch.arange(bins, device=out.device, dtype=out.dtype)[:, None]  # [F, 1]
            number = (k / f0).round().clamp(min=1)  # [B, F, T]: the harmonic nearest each bin
            # harmonic h moves h times as fast as F0: its gradient is scaled by 1 / h, so every
            # bin pulls on F0 as the fundamental does (unscaled, the top harmonics' gradients,
            # ~300x, swamp the backbone and stall the magnitudes)
            f0_scaled = f0.detach() + (f0 - f0.detach()) / number
            offset = 2 * math.pi * (number * f0_scaled - k) * self.hop_length / self.n_fft
            offset = offset - 2 * math.pi * torch.round(offset / (2 * math.pi))  # wrapped to [-pi, pi]
            share = torch.sigmoid(out[:, 2 * bins : 3 * bins])
            deviation = share * offset + (1 - share) * deviation
            if self.comb:
                distance = k - number * f0_scaled  # [B, F, T]: bins from the nearest harmonic
                log_magnitude = log_magnitude + torch.log(share * _hann_lobe(distance) + (1 - share) + 1e-4)
        return log_magnitude, self.bin_advance + deviation

    def spectrum(self, x: torch.Tensor, phase_prefix: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T] -> (complex STFT [B, F, T], phase [B, F, T]), F = n_fft / 2 + 1.

        phase_prefix [B, F, p] (a running phase only): the phases of the first p frames, known from
        an earlier pass; frames p.. continue from the last of them."""
        log_magnitude, param = self.predict(x)
        return self.compose(log_magnitude, param, phase_prefix)

    def compose(
        self, log_magnitude: torch.Tensor, param: torch.Tensor, phase_prefix: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`predict`'s outputs -> (complex STFT [B, F, T], phase [B, F, T])."""
        if self.phase != "direct":
            angle = self._integrate(param, phase_prefix)
        elif phase_prefix is not None:
            raise ValueError("phase_prefix needs a running phase ('integrated' or 'harmonic')")
        else:
            angle = param
        magnitude = torch.exp(log_magnitude.clamp(max=self.max_log_magnitude))
        return torch.complex(magnitude * torch.cos(angle), magnitude * torch.sin(angle)), angle

    def analyse(self, wav: torch.Tensor, frames: int) -> torch.Tensor:
        """The STFT of wav [B, 1, N] in this head's framing -> complex [B, F, frames]: the
        spectrum whose `synthesize` gives wav back (frame t centred on [t*hop, (t+1)*hop)), the
        target of the head's own outputs in training."""
        x = wav[:, 0].float()
        x = F.pad(x, (self.pad, self.pad + max(0, frames * self.hop_length - x.shape[-1])))
        spec = torch.stft(x, self.n_fft, self.hop_length, window=self.window, center=False, return_complex=True)
        return spec[..., :frames]

    def _integrate(self, advance: torch.Tensor, prefix: torch.Tensor | None) -> torch.Tensor:
        """Per-hop phase advances [B, F, T] -> running phase [B, F, T] in [0, 2*pi), summed in
        float64 so hours of frames keep their precision."""
        if prefix is None:
            # the phase "before frame 0"; frame 0 adds its own advance, like every later frame
            start = self.start_phase.double().expand_as(advance[..., :1])
            known = advance[..., :0]
        else:
            p = prefix.shape[-1]
            if p > advance.shape[-1] or prefix.shape[:2] != advance.shape[:2]:
                raise ValueError(f"phase_prefix {list(prefix.shape)} does not fit frames {list(advance.shape)}")
            start, known, advance = prefix[..., -1:].double(), prefix.to(advance.dtype), advance[..., p:]
        running = torch.remainder(start + torch.cumsum(advance.double(), dim=-1), 2 * math.pi)
        return torch.cat([known, running.to(advance.dtype)], dim=-1)

    def synthesize(self, spec: torch.Tensor) -> torch.Tensor:
        """complex STFT [B, F, T] -> waveform [B, 1, T * hop] ("same" padded inverse STFT)."""
        frames = spec.shape[-1]
        window = self.window.to(spec.real.dtype)
        segments = torch.fft.irfft(spec, n=self.n_fft, dim=1, norm="backward") * window[None, :, None]
        length = (frames - 1) * self.hop_length + self.n_fft
        audio = _overlap_add(segments, self.hop_length)  # [B, length]
        envelope = _overlap_add(window.square()[None, :, None].expand(1, -1, frames), self.hop_length)[0]
        audio = audio[:, self.pad : length - self.pad] / envelope[self.pad : length - self.pad].clamp(min=1e-11)
        return audio[:, None]  # [B, 1, T * hop]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.synthesize(self.spectrum(x)[0])


def _overlap_add(segments: torch.Tensor, hop: int) -> torch.Tensor:
    """Frames [B, n, T] (frame t starts at sample t * hop) -> their sum [B, (T - 1) * hop + n].

    When hop divides n (the codec's n_fft = 4 * hop), piece j of frame t lands on output block
    t + j: n / hop shifted adds, several times faster on a CPU than `F.fold`, which is the general
    case."""
    batch, n, frames = segments.shape
    if n % hop:
        return F.fold(segments, (1, (frames - 1) * hop + n), (1, n), stride=(1, hop))[:, 0, 0]
    pieces = n // hop
    blocks = segments.new_zeros(batch, frames + pieces - 1, hop)  # [B, output blocks, hop]
    for j, piece in enumerate(segments.reshape(batch, pieces, hop, frames).unbind(1)):  # [B, hop, T] each
        blocks[:, j : j + frames] += piece.transpose(1, 2)
    return blocks.reshape(batch, -1)


class HarmonicNoiseHead(ISTFTHead):
    """[B, C, T] and a given F0 [B, T] (bins, 0 = unvoiced) -> waveform [B, 1, T * hop]: a
    harmonic-plus-noise spectrum (module docstring, "harmonic_noise"), then the same inverse STFT.

    Three parts per bin, each with its own log-envelope: harmonic (on the given F0), tonal (the
    "integrated" head's own running phase: steady partials off the F0's comb, as in polyphonic
    music) and noise. Noise gets a fresh pseudo-random phase in every frame and bin (a hash of
    the bin and the absolute frame index): a running phase would turn it into steady tones,
    which a listener and a pitch tracker hear as a hum. The state carried across chunks is
    [B, F + 2, T]: the tonal bins' running phases (0 from `tonal_from_bin` up, where there is no
    tonal part), the fundamental's (row F) and the frame index (row F + 1; exact in float32 for
    2^24 frames, 62 hours at 75 Hz).
    """

    bin_index: torch.Tensor  # buffer [F, 1]: 0, 1, ..., F - 1
    bin_sign: torch.Tensor  # buffer [F, 1]: (-1)^k

    noise_interp: torch.Tensor  # buffer [F, noise_bands]: band values -> bins (banded noise only)

    def __init__(
        self,
        dim: int,
        n_fft: int,
        hop_length: int,
        max_log_magnitude: float = 7.6,
        noise_bands: int = 0,
        sample_rate: int = 24000,
        tonal_max_hz: float = 0.0,
    ):
        super().__init__(dim, n_fft, hop_length, max_log_magnitude=max_log_magnitude, phase="harmonic_noise")
        bins = n_fft // 2 + 1
        # per bin: harmonic and tonal log-envelopes, the tonal advance deviation; the noise
        # log-envelope per bin, or (noise_bands > 0) per mel-spaced band, interpolated to bins.
        # Per bin, the noise envelope grows single-bin spikes 6-13 dB above its neighbours at
        # 4-10 kHz (steady lines in every round trip; BENCHMARKS.md, session 8): the mel losses
        # there average over tens of bins and do not see them. Bands cannot make them.
        self.noise_bands = noise_bands
        self.noise_size = noise_bands or bins
        self.out = nn.Linear(dim, 3 * bins + self.noise_size)
        with torch.no_grad():
            # noise and tonal parts start quiet (e^-3 of the harmonic part): on voiced frames a
            # voice is mostly harmonic, and a loud noise part is a cheap way to match the
            # coarse mel spectrum that the finer losses take thousands of steps to undo
            self.out.bias[bins : 2 * bins + self.noise_size].fill_(-3.0)
        interp = noise_band_interpolation(n_fft, noise_bands, sample_rate) if noise_bands else torch.zeros(0)
        self.register_buffer("noise_interp", interp, persistent=False)
        # the tonal part only below tonal_max_hz (0 = everywhere): given steady partials at 4-10 kHz
        # a decoder draws steady lines there that no voice has (BENCHMARKS.md, session 9)
        self.tonal_from_bin = min(bins, math.ceil(tonal_max_hz * n_fft / sample_rate)) if tonal_max_hz else bins
        # the running phases: the tonal bins' (below tonal_from_bin) start at pi * k (as
        # "integrated"), the fundamental's (last row) at 0
        start = torch.cat([self.start_phase[: self.tonal_from_bin], self.start_phase[:1] * 0])
        self.register_buffer("start_phase", start, persistent=False)  # [tonal_from_bin + 1, 1]
        self.register_buffer("bin_index", torch.arange(bins, dtype=torch.float32)[:, None], persistent=False)
        self.register_buffer("bin_sign", 1.0 - 2.0 * (self.bin_index % 2), persistent=False)  # (-1)^k
        self.block_elements = 96 * 1024  # compose_parts' block: B * F * frames, ~400 KB a tensor

    def predict_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, C, T] -> (harmonic and noise log-envelopes [B, F, T]; the tonal log-envelope and
        phase advance [B, tb, T], tb = `tonal_from_bin`: above it there is no tonal part)."""
        bins, tonal_bins = self.n_fft // 2 + 1, self.tonal_from_bin
        # the linear layer's rows: harmonic [F], noise [noise_size], tonal [F], advance [F]; only
        # the tonal and advance rows below tb are ever used, so two row ranges are computed
        envelopes = self._rows(x, 0, bins + self.noise_size + tonal_bins)
        harmonic, noise, tonal = envelopes.split([bins, self.noise_size, tonal_bins], dim=1)
        param = self._rows(x, 2 * bins + self.noise_size, 2 * bins + self.noise_size + tonal_bins)
        if self.noise_bands:
            noise = torch.einsum("fb,nbt->nft", self.noise_interp, noise)  # [B, bands, T] -> [B, F, T]
        return harmonic, noise, tonal, self.bin_advance[:tonal_bins] + math.pi * torch.tanh(param)

    def _rows(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Rows start:stop of the linear layer on x [B, C, T] -> [B, stop - start, T], as W @ x:
        it comes out contiguous, so compose_parts' element-wise work reads rows, not columns
        strided by the row count (~10 % of it)."""
        weight = self.out.weight[start:stop].expand(x.shape[0], -1, -1)  # [B, rows, C]
        return torch.baddbmm(self.out.bias[start:stop, None], weight, x).float()

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # a per-bin head's weights load into a banded head: its noise rows [F, dim] become the
        # band rows that interpolate back to them best (least squares), the rest unchanged
        bins = self.n_fft // 2 + 1
        for name in ("weight", "bias"):
            key = f"{prefix}out.{name}"
            value = state_dict.get(key)
            if self.noise_bands and value is not None and value.shape[0] == 4 * bins:
                harmonic, noise, rest = value.float().split([bins, bins, 2 * bins], dim=0)
                band = torch.linalg.lstsq(self.noise_interp, noise.reshape(bins, -1)).solution
                state_dict[key] = torch.cat([harmonic, band.reshape(-1, *noise.shape[1:]), rest]).to(value.dtype)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def compose_parts(
        self,
        log_harmonic: torch.Tensor,
        log_noise: torch.Tensor,
        log_tonal: torch.Tensor,
        advance: torch.Tensor,
        f0_bins: torch.Tensor,
        phase_prefix: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`predict_parts`' outputs, f0_bins [B, T] -> (complex STFT [B, F, T], state [B, F + 2, T]:
        the tonal bins' running phases (rows tb..F-1 are 0: no tonal part there), the
        fundamental's and the frame index)."""
        spec, phases, index = self._compose(log_harmonic, log_noise, log_tonal, advance, f0_bins, phase_prefix)
        tonal_bins = self.tonal_from_bin
        silent = phases.new_zeros(phases.shape[0], self.n_fft // 2 + 1 - tonal_bins, phases.shape[-1])
        return spec, torch.cat([phases[:, :tonal_bins], silent, phases[:, tonal_bins:], index], dim=1)

    def compose_spectrum(
        self,
        log_harmonic: torch.Tensor,
        log_noise: torch.Tensor,
        log_tonal: torch.Tensor,
        advance: torch.Tensor,
        f0_bins: torch.Tensor,
    ) -> torch.Tensor:
        """`compose_parts` from frame 0 without the state: complex STFT [B, F, T]."""
        return self._compose(log_harmonic, log_noise, log_tonal, advance, f0_bins, None)[0]

    def _compose(
        self,
        log_harmonic: torch.Tensor,
        log_noise: torch.Tensor,
        log_tonal: torch.Tensor,
        advance: torch.Tensor,
        f0_bins: torch.Tensor,
        phase_prefix: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (complex STFT [B, F, T], running phases [B, tb + 1, T] (the tonal bins', then the
        fundamental's), frame index [B, 1, T])."""
        bins, tonal_bins = self.n_fft // 2 + 1, self.tonal_from_bin
        f0 = f0_bins.float()[:, None]  # [B, 1, T]
        # the fundamental advances by 2*pi*F0*hop/n_fft per hop, trapezoid between frames (F0 is 0
        # on unvoiced frames, where no harmonic sounds, so its phase waits there)
        previous = F.pad(f0, (1, 0))[..., :-1]
        fundamental_advance = math.pi * self.hop_length / self.n_fft * (previous + f0)
        prefix = None
        if phase_prefix is not None:
            prefix = torch.cat([phase_prefix[:, :tonal_bins], phase_prefix[:, bins : bins + 1]], dim=1)
        phases = self._integrate(torch.cat([advance, fundamental_advance], dim=1), prefix)  # [B, tb + 1, T]
        frames = advance.shape[-1]
        if phase_prefix is None:
            index = torch.arange(frames, device=f0.device, dtype=f0.dtype).expand(f0.shape[0], 1, frames)
        else:
            known = phase_prefix[:, bins + 1 :]
            after = known[..., -1:] + torch.arange(1, frames - known.shape[-1] + 1, device=f0.device, dtype=f0.dtype)
            index = torch.cat([known.to(f0.dtype), after], dim=-1)  # [B, 1, T]
        tonal_phase, fundamental = phases[:, :tonal_bins], phases[:, tonal_bins:]
        # the rest is per frame: ~50 element-wise passes, each memory-bound over [B, F, T], so
        # they run on blocks of frames that stay in a CPU core's cache (2-3x faster than whole)
        step = max(1, self.block_elements // (f0.shape[0] * bins))
        spec = torch.cat(
            [
                self._frame_spectrum(
                    log_harmonic[..., t : t + step],
                    log_noise[..., t : t + step],
                    log_tonal[..., t : t + step],
                    f0[..., t : t + step],
                    fundamental[..., t : t + step],
                    tonal_phase[..., t : t + step],
                    index[..., t : t + step],
                )
                for t in range(0, frames, step)
            ],
            dim=-1,
        )
        return spec, phases, index

    def _frame_spectrum(
        self,
        log_harmonic: torch.Tensor,
        log_noise: torch.Tensor,
        log_tonal: torch.Tensor,
        f0: torch.Tensor,
        fundamental: torch.Tensor,
        tonal_phase: torch.Tensor,
        index: torch.Tensor,
    ) -> torch.Tensor:
        """compose_parts for a block of frames: envelopes [B, F, t] (tonal [B, tb, t]), F0 in
        bins, the fundamental's running phase and the frame index [B, 1, t], the tonal phases
        [B, tb, t] -> complex STFT [B, F, t]."""
        k = self.bin_index  # [F, 1]
        voiced = f0 > 0
        pitch = torch.where(voiced, f0, 1.0)
        lower = torch.floor(k / pitch)  # [B, F, t]: the harmonic at or below each bin
        # the two harmonics nearest each bin (lobes are 4 bins wide), `lower` and `lower + 1`.
        # A partial centred in the frame has phase (its phase at the centre) - pi * k in bin k:
        # the lobe's sign alternates with k. float32 is enough: the fundamental's phase is in
        # [0, 2*pi), so h times it is off by < 1e-4 rad even at h = 300
        distance = k - lower * pitch  # [B, F, t], in [0, pitch)
        lobe = _hann_lobe_signed(distance) * (lower >= 1) * self.bin_sign  # harmonic 0 is none
        angle = lower * fundamental
        comb_real, comb_imag = lobe * torch.cos(angle), lobe * torch.sin(angle)
        lobe = _hann_lobe_signed(distance - pitch) * self.bin_sign
        angle = angle + fundamental
        comb_real, comb_imag = comb_real + lobe * torch.cos(angle), comb_imag + lobe * torch.sin(angle)
        noise_phase = _hashed_phase(k, index)
        harmonic = torch.exp(log_harmonic.clamp(max=self.max_log_magnitude)) * voiced
        noise = torch.exp(log_noise.clamp(max=self.max_log_magnitude))
        real = harmonic * comb_real + noise * torch.cos(noise_phase)
        imag = harmonic * comb_imag + noise * torch.sin(noise_phase)
        tonal_bins = tonal_phase.shape[1]
        tonal = torch.exp(log_tonal.clamp(max=self.max_log_magnitude))
        real[:, :tonal_bins] += tonal * torch.cos(tonal_phase)
        imag[:, :tonal_bins] += tonal * torch.sin(tonal_phase)
        return torch.complex(real, imag)

    def spectrum_given(
        self, x: torch.Tensor, f0_bins: torch.Tensor, phase_prefix: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T], f0_bins [B, T] -> (complex STFT [B, F, T], state [B, F + 2, T])."""
        return self.compose_parts(*self.predict_parts(x), f0_bins, phase_prefix)


def noise_band_interpolation(n_fft: int, bands: int, sample_rate: int) -> torch.Tensor:
    """[F, bands]: linear interpolation from band centres to the n_fft // 2 + 1 STFT bins.

    The centres are evenly spaced on the mel scale from 0 Hz to Nyquist, at least one bin apart
    (below ~700 Hz mel spacing can be finer than a bin); each bin mixes its two nearest centres,
    so a bin at a centre takes that band's value and the rows sum to 1."""
    bins = n_fft // 2 + 1
    if not 2 <= bands <= bins:
        raise ValueError(f"noise bands must be in [2, {bins}], got {bands}")
    mel = torch.linspace(0.0, float(hz_to_mel(sample_rate / 2)), bands, dtype=torch.float64)
    centres = (mel_to_hz(mel) * n_fft / sample_rate).tolist()  # in bins, 0 .. F - 1
    for b in range(1, bands):
        centres[b] = max(centres[b], centres[b - 1] + 1.0)
    if centres[-1] > bins - 1 + 1e-6:
        raise ValueError(f"{bands} noise bands do not fit {bins} bins at least one bin apart")
    centres[-1] = bins - 1.0
    c = torch.tensor(centres, dtype=torch.float64)
    k = torch.arange(bins, dtype=torch.float64)
    right = torch.searchsorted(c, k, right=False).clamp(1, bands - 1)  # [F]: the centre at or above
    left = right - 1
    t = (k - c[left]) / (c[right] - c[left])  # [F]: 0 at the left centre, 1 at the right
    interp = torch.zeros(bins, bands, dtype=torch.float64)
    interp[k.long(), left] = 1.0 - t
    interp[k.long(), right] += t
    return interp.float()


def _hashed_phase(bins: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """A pseudo-random phase in [0, 2*pi) for every bin [F, 1] and absolute frame index [B, 1, T]
    -> [B, F, T]: the same numbers for the same (bin, frame), so a decode is deterministic and
    chunks agree with one whole pass (a sine hash, computed in float64)."""
    x = torch.sin(bins.double() * 12.9898 + frames.double() * 78.233) * 43758.5453
    return (2 * math.pi * (x - torch.floor(x))).float()


class ISTFTDecoder(nn.Module):
    """Quantized latent z_q [B, D, T] at the frame rate -> waveform [B, 1, T * hop]."""

    def __init__(
        self,
        latent_dim: int,
        dim: int,
        intermediate: int,
        layers: int,
        kernel_size: int,
        causal: bool,
        n_fft: int,
        hop_length: int,
        phase: str = "direct",
        max_log_magnitude: float = 4.6,
        comb: bool = False,
        noise_bands: int = 0,
        sample_rate: int = 24000,
        tonal_max_hz: float = 0.0,
        lookahead: int = 0,
    ):
        super().__init__()
        # "harmonic_noise": the input's channel 0 is the given F0 in bins (0 = unvoiced), the
        # backbone sees it as two features (voiced, log2 F0) beside the latent
        self.pitched = phase == "harmonic_noise"
        in_channels = latent_dim + 2 if self.pitched else latent_dim
        # lookahead: latent frames the backbone sees ahead (causal only). Frame t's iSTFT window
        # ends (n_fft - hop) / 2 samples after the encoder's frame t does, so a causal decoder must
        # guess the end of each window; 2 frames cover it at n_fft = 4 * hop (BENCHMARKS.md,
        # codec section, session 14)
        self.backbone = ConvNeXtBackbone(in_channels, dim, intermediate, layers, kernel_size, causal, lookahead)
        self.head: ISTFTHead
        if self.pitched:
            if comb:
                raise ValueError("comb is for phase 'harmonic'; 'harmonic_noise' always builds its harmonics")
            self.head = HarmonicNoiseHead(
                dim,
                n_fft,
                hop_length,
                max_log_magnitude,
                noise_bands=noise_bands,
                sample_rate=sample_rate,
                tonal_max_hz=tonal_max_hz,
            )
        else:
            if noise_bands or tonal_max_hz:
                raise ValueError(
                    "noise_bands and tonal_max_hz are for phase 'harmonic_noise' (its noise and tonal parts)"
                )
            self.head = ISTFTHead(dim, n_fft, hop_length, max_log_magnitude=max_log_magnitude, phase=phase, comb=comb)

    @property
    def integrates_phase(self) -> bool:
        """True when the output depends on a running phase carried from frame 0 (see
        `forward_with_phase`): chunked decoding must pass it on."""
        return self.head.phase != "direct"

    @property
    def phase_lookahead_frames(self) -> int:
        """Latent frames after frame t that frame t's running phase depends on (a pitched head's
        tonal advance comes from the backbone): a chunked decode re-derives the phases of that
        many frames before a window's first new one."""
        return self.backbone.lookahead_frames

    @property
    def lookahead_samples(self) -> int:
        """Samples of future output needed beyond the latest frame's hop (see module docstring):
        output sample s is final once latent frame floor((s + pad) / hop) + the backbone's
        lookahead frames have arrived."""
        return self.head.pad + self.backbone.lookahead_frames * self.head.hop_length

    @property
    def context_samples(self) -> int:
        """Left context of an output sample, in samples at the frame grid: the backbone's
        receptive field plus the frames whose windows overlap the sample (n_fft)."""
        return self.backbone.context_frames * self.head.hop_length + self.head.n_fft

    def _features(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z [B, D (+1 pitched), T] -> (backbone output [B, C, T], the given F0 in bins [B, T] or None)."""
        if not self.pitched:
            return self.backbone(z), None
        f0 = z[:, 0].float()  # [B, T] in bins
        voiced = f0 > 0
        log_f0 = torch.where(voiced, torch.log2(f0.clamp(min=1e-3) / 8.0), torch.zeros_like(f0))  # 0 at 150 Hz
        pitch_features = torch.stack([voiced.to(z.dtype), log_f0.to(z.dtype)], dim=1)  # [B, 2, T]
        return self.backbone(torch.cat([pitch_features, z[:, 1:]], dim=1)), f0

    def _spectrum(self, z: torch.Tensor, phase_prefix: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x, f0 = self._features(z)
        if f0 is not None:
            assert isinstance(self.head, HarmonicNoiseHead)
            return self.head.spectrum_given(x, f0, phase_prefix)
        return self.head.spectrum(x, phase_prefix)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, D, T] (pitched: [B, 1 + D, T], channel 0 the F0 in bins) -> waveform [B, 1, T * hop]."""
        x, f0 = self._features(z)
        if f0 is not None:
            assert isinstance(self.head, HarmonicNoiseHead)
            return self.head.synthesize(self.head.compose_spectrum(*self.head.predict_parts(x), f0))
        return self.head.synthesize(self.head.spectrum(x)[0])

    def forward_supervised(
        self, z: torch.Tensor, extras: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: z [B, D, T] -> (waveform [B, 1, T * hop], the head's log-magnitude and
        phase parameter [B, F, T] each, for the losses on the head's own outputs); a harmonic
        head also puts its F0 ("f0_bins" [B, T]) into `extras`. A harmonic-plus-noise head's
        log-magnitude is that of its whole spectrum, its phase parameter zeros (no one advance per
        bin; the config refuses the head's phase loss for it)."""
        x, f0 = self._features(z)
        if f0 is not None:
            assert isinstance(self.head, HarmonicNoiseHead)
            spec = self.head.compose_spectrum(*self.head.predict_parts(x), f0)
            return self.head.synthesize(spec), torch.log(spec.abs() + 1e-5), torch.zeros_like(spec.real)
        log_magnitude, param = self.head.predict(x, extras)
        spec, _ = self.head.compose(log_magnitude, param)
        return self.head.synthesize(spec), log_magnitude, param

    def forward_with_phase(
        self, z: torch.Tensor, phase_prefix: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, D, T] -> (waveform [B, 1, T * hop], running phase [B, F, T] ([B, F + 2, T]
        pitched: HarmonicNoiseHead's state)); phase_prefix gives the phases of the first p
        frames (from an earlier window that covered them)."""
        spec, phase = self._spectrum(z, phase_prefix)
        return self.head.synthesize(spec), phase


class STFTEncoder(nn.Module):
    """Waveform [B, 1, N] -> latent [B, D, ceil(N / hop)] from causal STFT log-magnitudes."""

    window: torch.Tensor  # buffer

    def __init__(
        self,
        latent_dim: int,
        dim: int,
        intermediate: int,
        layers: int,
        kernel_size: int,
        causal: bool,
        n_fft: int,
        hop_length: int,
    ):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.backbone = ConvNeXtBackbone(n_fft // 2 + 1, dim, intermediate, layers, kernel_size, causal)
        self.project = nn.Conv1d(dim, latent_dim, 1)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        length = wav.shape[-1]
        frames = -(-length // self.hop_length)
        # left context n_fft - hop, right-pad to whole frames: frame t ends at sample (t+1)*hop
        x = F.pad(wav[:, 0].float(), (self.n_fft - self.hop_length, frames * self.hop_length - length))
        spec = torch.stft(
            x, self.n_fft, self.hop_length, window=self.window, center=False, return_complex=True
        )  # [B, F, frames]
        # complex abs (a hypot), not 0.5 log |X|^2: 1 ms slower per 10 s, but the tokens stay
        # bit-identical (the square root's rounding moves 1 code in 20,000; BENCHMARKS.md)
        features = torch.log(spec.abs().clamp(min=1e-5))
        return self.project(self.backbone(features))


class PitchedSTFTEncoder(STFTEncoder):
    """Waveform [B, 1, N] -> [B, 1 + D, T]: channel 0 the F0 in Hz (0 = unvoiced) on the
    decoder's frames (frame t centred on [t*hop, (t+1)*hop), so it looks (n_fft - hop) / 2
    samples ahead), channels 1.. the STFT encoder's latent. The quantizer turns channel 0 into
    the pitch code (quantizer.PitchedResidualVQ). The F0 is YIN's (pitch.py) or, given
    `pitch_net`, the learned tracker's (pitch_net.py, same framing); the net is never trained
    here: its weights come from `audiolm train pitch` and stay frozen, in eval mode."""

    def __init__(
        self,
        latent_dim: int,
        sample_rate: int,
        fmin: float,
        fmax: float,
        threshold: float,
        voicing_threshold: float,
        input_gain: float,
        pitch_net: PitchNet | None = None,
        **stft_encoder_args,
    ):
        super().__init__(latent_dim, **stft_encoder_args)
        self.sample_rate, self.fmin, self.fmax, self.threshold = sample_rate, fmin, fmax, threshold
        self.voicing_threshold = voicing_threshold  # yin_f0: the dip below threshold, voiced below this
        self.input_gain = input_gain  # the encoder sees wav * gain; YIN's silence floor is for wav
        self.pitch_net = pitch_net
        if pitch_net is not None:
            pitch_net.requires_grad_(False)

    def train(self, mode: bool = True) -> PitchedSTFTEncoder:
        super().train(mode)
        if self.pitch_net is not None:
            self.pitch_net.train(False)  # frozen: trained by `audiolm train pitch` only
        return self

    @property
    def context_samples(self) -> int:
        """Samples before frame t's hop that its output depends on: the STFT window and the backbone."""
        own = self.n_fft - self.hop_length + self.backbone.context_frames * self.hop_length
        if self.pitch_net is None:
            return own
        net = (self.n_fft - self.hop_length) // 2 + self.pitch_net.backbone.context_frames * self.hop_length
        return max(own, net)

    @property
    def lookahead_samples(self) -> int:
        """YIN's centred frame and the backbone look ahead side by side (the STFT features are
        causal), so the larger of the two."""
        return max((self.n_fft - self.hop_length) // 2, self.backbone.lookahead_frames * self.hop_length)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        latent = super().forward(wav)  # [B, D, T]
        if self.pitch_net is not None:
            f0_hz, _ = self.pitch_net.track(wav[:, 0] / self.input_gain, latent.shape[-1])
            return torch.cat([f0_hz[:, None].to(latent.dtype), latent], dim=1)
        f0_hz, _ = yin_f0(
            wav[:, 0] / self.input_gain,
            self.sample_rate,
            latent.shape[-1],
            self.n_fft,
            self.hop_length,
            fmin=self.fmin,
            fmax=self.fmax,
            threshold=self.threshold,
            voicing_threshold=self.voicing_threshold,
        )
        return torch.cat([f0_hz[:, None].to(latent.dtype), latent], dim=1)
