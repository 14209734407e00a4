"""`Codec`: audio <-> acoustic tokens, the public face of the codec.

    codec = Codec.from_pretrained()                     # shipped codec (checkpoints/codec/)
    codes = codec.encode(wav, sample_rate, kbps=6)      # LongTensor [B, Q, T] at 75 Hz
    audio = codec.decode(codes)                          # FloatTensor [B, 1, T * 320] at 24 kHz

Input audio may have any sample rate (it is resampled to 24 kHz with soxr) and any number of
channels: **multi-channel audio is mixed to mono** (the channel mean) before encoding, since
the codec models one channel. Shapes accepted by `encode`: [N] (one mono clip), [C, N] (one
clip with C channels, as `load_audio` returns it) or [B, C, N] (a batch).

`decode` returns T * hop_length samples: a clip of N samples encodes to T = ceil(N / 320)
frames, so the decoded audio is up to 319 samples longer; cut it to N if you kept N.

Bit rates: each level is log2(codebook_size) = 10 bits per frame, so at 75 frames/s
1.5 / 3 / 6 / 12 kbps use 2 / 4 / 8 / 16 levels (`levels_for_kbps`). Which bit rates a codec
offers is in `codec.bandwidths` (official EnCodec weights also offer 24 kbps = 32 levels).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parametrize

from audiolm.core.audio import as_float_audio, check_channels_first, check_sample_rate, resample
from audiolm.core.checkpoint import (
    load_checkpoint,
    load_state_dict_checked,
    resolve_checkpoint_dir,
    save_checkpoint,
)
from audiolm.core.errors import AudioError, AudiolmError, CheckpointError
from audiolm.core.paths import shipped_checkpoint
from audiolm.models.codec.config import CodecConfig
from audiolm.models.codec.model import CodecModel, LatentMap
from audiolm.models.codec.pitch import codes_to_pitch
from audiolm.models.codec.quantizer import PitchedResidualVQ

KIND = "codec"


class CodecInputError(AudiolmError, ValueError):
    """Codes or audio that this codec cannot take (wrong shape, levels, range or bit rate)."""


# For an encoder/decoder we cannot analyse (and that does not declare `context_samples` /
# `lookahead_samples`): 4 s of left context and 1 s of lookahead.
UNKNOWN_CONTEXT_SECONDS = 4.0
UNKNOWN_LOOKAHEAD_SECONDS = 1.0


@dataclass(frozen=True)
class ChunkContext:
    """What a chunk of a long file needs around it so that chunked encode/decode equals the
    whole-file result (see `audiolm.inference.codec_chunks`). Sizes in samples at the codec
    rate, each a whole number of frames (a multiple of `hop_length`).

    encode_left / encode_lookahead: audio before / after a span that the span's frames depend
    on through convolutions. decode_left / decode_lookahead: the same for decoding (in samples;
    divide by hop_length for latent frames).
    encode_edge / decode_edge: lookahead at the very start of the signal only: SEANet pads
    its convolutions by reflection, so the first outputs see up to this far ahead.
    encode_recurrent / decode_recurrent: the network also has an LSTM (SEANet), whose state
    has no finite context: a chunker carries that state from chunk to chunk.
    exact: every dependency is covered (analysed or declared, not guessed), so chunked output
    equals whole-file output up to float rounding.
    """

    hop_length: int
    encode_left: int
    encode_lookahead: int
    decode_left: int
    decode_lookahead: int
    encode_edge: int
    decode_edge: int
    encode_recurrent: bool
    decode_recurrent: bool
    exact: bool


def default_codec_dir() -> Path:
    """Where the shipped codec lives: checkpoints/codec (`core/paths.shipped_checkpoint`)."""
    return shipped_checkpoint("codec")


class Codec:
    """A trained codec for inference (eval mode, no gradients)."""

    def __init__(self, model: CodecModel, source: str | Path | None = None):
        self.model = model.eval()
        self.config: CodecConfig = model.config
        self.source = str(source) if source is not None else None

    # -- attributes of the token stream ------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        rate = self.config.frame_rate
        return int(rate) if float(rate).is_integer() else rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def n_q(self) -> int:
        """Levels at the highest bit rate."""
        return max(self.levels_for_kbps(kbps) for kbps in self.bandwidths)

    @property
    def bandwidths(self) -> tuple[float, ...]:
        return tuple(float(b) for b in self.config.bandwidths)

    @property
    def device(self) -> torch.device:
        return next(self.model.buffers()).device

    @property
    def chunk_context(self) -> ChunkContext:
        """Left context and lookahead that chunked encode/decode of a long file needs."""
        return chunk_context(self.model, self.config)

    def levels_for_kbps(self, kbps: float) -> int:
        """RVQ levels used at `kbps` (one of `bandwidths`)."""
        for b in self.config.bandwidths:
            if abs(float(kbps) - b) < 1e-6:
                return self.config.levels_for_kbps_unchecked(b)
        raise CodecInputError(
            f"{float(kbps):g} kbps is not offered by this codec; choose one of {_kbps_list(self.bandwidths)}"
        )

    def codebooks(self, n_q: int | None = None) -> list[torch.Tensor]:
        """The first `n_q` (default all) levels' codebooks, each [codebook_size, latent dim]: code
        i of level q decodes from codebooks[q][i] (summed over levels). A pitched codec's level 0
        has no learned codebook: its entries carry log2(F0 / 100 Hz) and voicing in their first
        two dimensions (code 0, unvoiced, is all zeros)."""
        tables = [layer.embed.detach().clone() for layer in self.model.quantizer.layers]
        if isinstance(self.model.quantizer, PitchedResidualVQ):
            codes = torch.arange(self.codebook_size, device=tables[0].device)
            f0 = codes_to_pitch(codes, self.codebook_size, self.config.pitch_fmin, self.config.pitch_fmax)
            pitch = torch.zeros_like(tables[0])
            pitch[1:, 0] = torch.log2(f0[1:] / 100.0)
            pitch[1:, 1] = 1.0
            tables.insert(0, pitch)
        return tables[: len(tables) if n_q is None else n_q]

    def to(self, device: str | torch.device) -> Codec:
        self.model.to(device)
        return self

    # -- loading / saving ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None, device: str | torch.device = "cpu") -> Codec:
        """Load the shipped codec (None), an audiolm codec checkpoint or training run directory,
        or official EnCodec weights in Hugging Face format (a local folder whose config.json
        has "model_type": "encodec"). Nothing is downloaded."""
        if directory is None:
            directory = default_codec_dir()
            if not (directory / "config.json").is_file():
                raise CheckpointError(
                    f"{directory}: the shipped codec is not there (no config.json); train one with "
                    "`audiolm train codec --data CORPUS --out RUN` and pass its run directory"
                )
        directory = Path(directory)
        if _is_hf_encodec(directory):
            model = _load_hf_encodec(directory)
        else:
            path = resolve_checkpoint_dir(directory)
            ckpt = load_checkpoint(path, KIND, CodecConfig)
            model = CodecModel(ckpt.config)
            load_state_dict_checked(model, ckpt.state_dict, str(path))
            directory = path
        return cls(model, directory).to(device)

    def save(self, directory: str | Path) -> Path:
        """Write an audiolm codec checkpoint directory (config.json + model.safetensors)."""
        return save_checkpoint(directory, KIND, self.config, self.model.state_dict())

    # -- encode / decode ----------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, wav: torch.Tensor | np.ndarray, sample_rate: int, kbps: float = 6.0) -> torch.Tensor:
        """Audio [N], [C, N] or [B, C, N] at `sample_rate` -> codes LongTensor [B, Q, T]."""
        n_q = self.levels_for_kbps(kbps)
        batch = self.prepare_audio(wav, sample_rate)  # [B, 1, N] at self.sample_rate
        with cached_weights():
            return self.model.encode(batch, n_q)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor, latent_map: LatentMap | None = None) -> torch.Tensor:
        """codes [B, Q, T] (Q = the levels of one bit rate) -> audio [B, 1, T * hop_length].
        latent_map: changes the quantized latents before the decoder (`model.LatentMap`)."""
        codes = self.check_codes(codes)
        with cached_weights():
            return self.model.decode(codes.to(self.device), latent_map).float()

    def prepare_audio(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """Any audio input -> float32 [B, 1, N] at the codec rate on the codec's device."""
        sample_rate = check_sample_rate(sample_rate, "Codec.encode")
        try:
            wav = as_float_audio(wav, "Codec.encode")
            if wav.dim() == 2:
                check_channels_first(wav, "Codec.encode")
        except AudioError as e:
            raise CodecInputError(str(e)) from None
        if wav.dim() == 1:
            wav = wav[None, None]
        elif wav.dim() == 2:
            wav = wav[None]  # one clip, [C, N]
        elif wav.dim() != 3:
            raise CodecInputError(f"Codec.encode: audio must be [N], [C, N] or [B, C, N], got {list(wav.shape)}")
        if wav.shape[-1] == 0 or wav.shape[1] == 0 or wav.shape[0] == 0:
            raise CodecInputError(f"Codec.encode: empty audio {list(wav.shape)}")
        if wav.shape[1] > 64:
            raise CodecInputError(
                f"Codec.encode: audio shaped {list(wav.shape)} has {wav.shape[1]} channels; "
                "expected [B, C, N] with few channels (soundfile's [N, C]: transpose it)"
            )
        wav = wav.mean(dim=1, keepdim=True)  # stereo / multi-channel -> mono
        if sample_rate != self.sample_rate:
            wav = resample(wav, sample_rate, self.sample_rate)
        return wav.to(self.device)

    def check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Raise CodecInputError unless codes is an integer [B, Q, T] this codec can decode."""
        if not isinstance(codes, torch.Tensor):
            raise CodecInputError(f"Codec.decode: expected a LongTensor [B, Q, T], got {type(codes).__name__}")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool or codes.is_complex():
            raise CodecInputError(f"Codec.decode: codes must be integers, got {codes.dtype}")
        if codes.dim() != 3:
            raise CodecInputError(f"Codec.decode: codes must be [B, Q, T], got shape {list(codes.shape)}")
        allowed = sorted({self.levels_for_kbps(b) for b in self.bandwidths})
        levels = codes.shape[1]
        if levels not in allowed:
            rates = ", ".join(f"{self.levels_for_kbps(b)} ({b:g} kbps)" for b in self.bandwidths)
            raise CodecInputError(f"Codec.decode: codes have {levels} levels; this codec decodes {rates}")
        if codes.shape[0] == 0 or codes.shape[2] == 0:
            raise CodecInputError(f"Codec.decode: empty codes {list(codes.shape)}")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.codebook_size:
            raise CodecInputError(
                f"Codec.decode: codes must lie in [0, {self.codebook_size - 1}], found values from {low} to {high}"
            )
        return codes.long()


# ---------------------------------------------------------------------------------------------


def _kbps_list(bandwidths) -> str:
    return ", ".join(f"{b:g}" for b in bandwidths)


class cached_weights:
    """Compute each weight-normalised weight once per call instead of once per use."""

    def __enter__(self):
        self._ctx = parametrize.cached()
        self._ctx.__enter__()

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def chunk_context(model: CodecModel, config: CodecConfig) -> ChunkContext:
    """Context for `model`'s encoder and decoder, read from their layers (see ChunkContext).

    A module may declare `context_samples` / `lookahead_samples` (ints, samples at the codec
    rate; the frame-rate iSTFT decoder declares `lookahead_samples`); SEANet networks are
    analysed layer by layer; anything else gets UNKNOWN_CONTEXT_SECONDS / _LOOKAHEAD_SECONDS.
    A time-wise normalisation (GroupNorm over all frames) has no bounded context: refused.
    """
    hop = config.hop_length
    exact = True
    sides = []
    for part in (model.encoder, model.decoder):
        declared = (getattr(part, "context_samples", None), getattr(part, "lookahead_samples", None))
        recurrent = any(isinstance(m, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)) for m in part.modules())
        edge = None
        if type(part).__name__ in ("EncodecEncoder", "EncodecDecoder"):
            left, ahead = _seanet_context(part, hop)
            edge = left if config.pad_mode != "constant" else ahead
        elif any(isinstance(v, int) for v in declared) and not recurrent:
            left = declared[0] if isinstance(declared[0], int) else int(UNKNOWN_CONTEXT_SECONDS * config.sample_rate)
            ahead = declared[1] if isinstance(declared[1], int) else 0
            exact = exact and isinstance(declared[0], int)
        else:  # unknown: a generous margin, not exact (a recurrent layer is bridged, not carried)
            left = int(UNKNOWN_CONTEXT_SECONDS * config.sample_rate)
            ahead = int(UNKNOWN_LOOKAHEAD_SECONDS * config.sample_rate)
            recurrent, exact = False, False
        edge = ahead if edge is None else edge
        sides.append((_whole_frames(left, hop), _whole_frames(ahead, hop), _whole_frames(edge, hop), recurrent))
    (enc_left, enc_ahead, enc_edge, enc_rec), (dec_left, dec_ahead, dec_edge, dec_rec) = sides
    return ChunkContext(hop, enc_left, enc_ahead, dec_left, dec_ahead, enc_edge, dec_edge, enc_rec, dec_rec, exact)


def _whole_frames(samples: int, hop: int) -> int:
    return int(math.ceil(max(samples, 0) / hop)) * hop


def _seanet_context(network: torch.nn.Module, hop: int) -> tuple[int, int]:
    """(left context, lookahead) in samples of a transformers SEANet encoder/decoder's
    convolutions (its LSTM is carried, not counted).

    Walks the convolutions in order, tracking the receptive field in samples at the codec rate
    (`scale` = samples per step at the current layer). Causal SEANet convolutions pad on the
    left only and its transposed convolutions trim on the right, so the lookahead is 0; a
    non-causal network looks ahead half of each kernel.
    """
    is_encoder = type(network).__name__ == "EncodecEncoder"
    scale = 1.0 if is_encoder else float(hop)
    left = 0.0
    ahead = 0.0
    for module in network.modules():
        name = type(module).__name__
        if name == "GroupNorm":
            raise CodecInputError(
                "this codec normalises over the whole signal (time_group_norm): it cannot run in chunks"
            )
        if name == "EncodecConv1d":
            conv: Any = module.conv
            span = (conv.kernel_size[0] - 1) * conv.dilation[0]
            left += (span if module.causal else span / 2) * scale
            ahead += (0 if module.causal else span / 2) * scale
            if is_encoder:
                scale *= conv.stride[0]
        elif name == "EncodecConvTranspose1d":
            conv = module.conv
            left += conv.kernel_size[0] * scale  # >= ceil(kernel / stride) input steps: conservative
            scale /= conv.stride[0]
            if not module.causal:
                ahead += conv.kernel_size[0] * scale
    # + one frame: a window starts on a frame boundary, the field may straddle one
    return int(math.ceil(left)) + hop, int(math.ceil(ahead))


def _is_hf_encodec(directory: Path) -> bool:
    config = directory / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == "encodec"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def config_from_hf(hf_config, where: str) -> CodecConfig:
    """Our CodecConfig for a transformers EncodecConfig (24 kHz-style mono models only)."""
    if hf_config.audio_channels != 1:
        raise CheckpointError(f"{where}: audio_channels={hf_config.audio_channels}; only mono EnCodec models load")
    if hf_config.normalize or hf_config.chunk_length_s is not None:
        raise CheckpointError(
            f"{where}: normalize/chunk_length_s are set (the 48 kHz EnCodec); only the 24 kHz layout loads"
        )
    if hf_config.codebook_dim != hf_config.hidden_size:
        raise CheckpointError(f"{where}: codebook_dim {hf_config.codebook_dim} != hidden_size {hf_config.hidden_size}")
    try:
        return CodecConfig(
            sample_rate=int(hf_config.sampling_rate),
            num_filters=hf_config.num_filters,
            hidden_size=hf_config.hidden_size,
            upsampling_ratios=tuple(hf_config.upsampling_ratios),
            num_residual_layers=hf_config.num_residual_layers,
            num_lstm_layers=hf_config.num_lstm_layers,
            compress=hf_config.compress,
            kernel_size=hf_config.kernel_size,
            last_kernel_size=hf_config.last_kernel_size,
            residual_kernel_size=hf_config.residual_kernel_size,
            dilation_growth_rate=hf_config.dilation_growth_rate,
            use_causal_conv=hf_config.use_causal_conv,
            pad_mode=hf_config.pad_mode,
            norm_type=hf_config.norm_type,
            trim_right_ratio=float(hf_config.trim_right_ratio),
            use_conv_shortcut=hf_config.use_conv_shortcut,
            codebook_size=hf_config.codebook_size,
            n_q=hf_config.num_quantizers,
            bandwidths=tuple(float(b) for b in hf_config.target_bandwidths),
            input_gain=1.0,
        )
    except ValueError as e:
        raise CheckpointError(f"{where}: unsupported EnCodec config ({e})") from None


def _load_hf_encodec(directory: Path) -> CodecModel:
    """Official EnCodec weights (transformers format) -> our CodecModel, weights copied over."""
    from transformers import EncodecModel  # lazy: transformers takes seconds to import

    try:
        hf = EncodecModel.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{directory}: cannot load EnCodec weights ({' '.join(str(e).split())[:300]})") from None
    config = config_from_hf(hf.config, str(directory / "config.json"))
    model = CodecModel(config)
    model.encoder.load_state_dict(hf.encoder.state_dict())
    model.decoder.load_state_dict(hf.decoder.state_dict())
    with torch.no_grad():
        for ours, theirs in zip(model.quantizer.layers, hf.quantizer.layers):
            book: Any = theirs.codebook
            ours.embed.copy_(book.embed)
            ours.embed_avg.copy_(book.embed_avg)
            ours.cluster_size.copy_(book.cluster_size)
            ours.inited.fill_(True)
    return model
