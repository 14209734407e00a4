"""Decoding codes to audio as they arrive, for streaming: each chunk of frames becomes audio as
soon as it is ready, and the chunks put together equal one `Codec.decode` of the whole sequence.

    decoder = StreamDecoder(codec)
    decoder.decode(codes[..., :t1])              # audio [B, 1, n * hop] of frames [0, t1 - lookahead)
    decoder.decode(codes[..., :t2])              # ... of the next frames
    decoder.decode(codes[..., :T], final=True)   # the rest

Two ways, chosen from the codec's decoder:
- SEANet (EnCodec's layout: causal conv -> LSTM -> causal upsampling convs). The LSTM's state is
  carried from chunk to chunk, and the convolutions before and after it see `context_frames`
  frames of their own input again (more than their receptive field), so each chunk is what the
  whole decode gives for those frames, up to float rounding. Lookahead 0.
- any other decoder (e.g. a frame-rate decoder with an inverse-STFT head, which looks ahead):
  decode frames [emitted - context, ready) and keep [emitted, ready - lookahead). Exact when the
  decoder's receptive field lies within context and lookahead. The codec states them as
  `decode_context_frames` / `decode_lookahead_frames`, or as `Codec.chunk_context` (read from its
  layers; `decode_left`, `decode_lookahead` in samples); without either, lookahead is derived
  from its config (`n_fft`, `hop_length`: (n_fft - hop) / 2 samples) and the context is 16 frames.
"""

from __future__ import annotations

import math

import torch

from audiolm.models.codec.codec import Codec

DEFAULT_CONTEXT_FRAMES = 16


def _chunk_context(codec: Codec):
    """The codec's own statement of its context (`Codec.chunk_context`, read from its layers), or None."""
    context = getattr(type(codec), "chunk_context", None)
    return codec.chunk_context if context is not None else None


def decode_context_frames(codec: Codec) -> int:
    """Frames of input a chunk's decode sees again before its first new frame."""
    value = getattr(codec, "decode_context_frames", None)
    if value is not None:
        return int(value)
    context = _chunk_context(codec)
    if context is not None:
        return max(DEFAULT_CONTEXT_FRAMES, math.ceil(context.decode_left / codec.hop_length))
    return DEFAULT_CONTEXT_FRAMES


def decode_lookahead_frames(codec: Codec) -> int:
    """Frames after a chunk's last frame its decode needs: 0 for a causal decoder."""
    value = getattr(codec, "decode_lookahead_frames", None)
    if value is not None:
        return int(value)
    context = _chunk_context(codec)
    if context is not None:
        return math.ceil(context.decode_lookahead / codec.hop_length)
    n_fft = getattr(codec.config, "n_fft", None)
    if n_fft:  # "same"-padded inverse STFT: each output sample sees (n_fft - hop) / 2 samples ahead
        return math.ceil((int(n_fft) - codec.hop_length) / 2 / codec.hop_length)
    return 0


def _seanet_parts(codec: Codec):
    """(layers before the LSTM, the EncodecLSTM, layers after it) of a SEANet decoder, or None."""
    decoder = getattr(codec.model, "decoder", None)
    layers = list(getattr(decoder, "layers", []))
    lstms = [i for i, layer in enumerate(layers) if type(layer).__name__ == "EncodecLSTM"]
    if len(lstms) != 1:
        return None
    i = lstms[0]
    return layers[:i], layers[i], layers[i + 1 :]


class StreamDecoder:
    """Codes [B, Q, t] that grow chunk by chunk -> the audio of each new chunk [B, 1, n * hop]."""

    def __init__(self, codec: Codec, context_frames: int | None = None) -> None:
        self.codec = codec
        self.hop = codec.hop_length
        self.context = decode_context_frames(codec) if context_frames is None else int(context_frames)
        if self.context < 0:
            raise ValueError(f"context_frames must be >= 0, got {self.context}")
        self.seanet = _seanet_parts(codec)
        self.lookahead = 0 if self.seanet is not None else decode_lookahead_frames(codec)
        self.emitted = 0  # frames whose audio has been returned
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None  # SEANet: LSTM (h, c)
        self._lstm_out: torch.Tensor | None = None  # SEANet: LSTM outputs of the last `context` frames

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor, final: bool = False) -> torch.Tensor:
        """codes [B, Q, ready] (all frames so far) -> audio [B, 1, n * hop] of frames
        [emitted, ready - lookahead), or up to `ready` when `final`; n may be 0."""
        ready = codes.shape[-1]
        end = ready if final else max(self.emitted, ready - self.lookahead)
        if end <= self.emitted:
            return torch.zeros(codes.shape[0], 1, 0)
        codes = self.codec.check_codes(codes).to(self.codec.device)
        if self.seanet is not None:
            audio = self._decode_seanet(codes, end)
        else:
            start = max(0, self.emitted - self.context)
            audio = self.codec.decode(codes[..., start:ready])[
                ..., (self.emitted - start) * self.hop : (end - start) * self.hop
            ]
        self.emitted = end
        return audio.float().cpu()

    @torch.inference_mode()
    def skip(self, codes: torch.Tensor) -> None:
        """Take codes [B, Q, t] as decoded without making their audio (a prompt whose audio is
        known): the SEANet path runs only what later frames depend on (the LSTM and the last
        `context` frames), so it costs a fraction of `decode`."""
        end = codes.shape[-1]
        if end <= self.emitted:
            return
        if self.seanet is None:
            self.emitted = end
            return
        codes = self.codec.check_codes(codes).to(self.codec.device)
        before, lstm, _ = self.seanet
        start = max(0, self.emitted - self.context)
        h = self.codec.model.quantizer.decode(codes[..., start:end])
        for layer in before:
            h = layer(h)
        x = h[..., self.emitted - start :].permute(2, 0, 1)
        y, self._state = lstm.lstm(x, self._state)
        h = (y + x).permute(1, 2, 0)
        if self._lstm_out is not None:
            h = torch.cat([self._lstm_out, h], dim=-1)
        self._lstm_out = h[..., -self.context :] if self.context else None
        self.emitted = end

    def _decode_seanet(self, codes: torch.Tensor, end: int) -> torch.Tensor:
        before, lstm, after = self.seanet
        model = self.codec.model
        new = end - self.emitted
        start = max(0, self.emitted - self.context)
        h = model.quantizer.decode(codes[..., start:end])  # [B, D, frames]
        for layer in before:
            h = layer(h)
        h = h[..., self.emitted - start :]  # [B, C, new]: exact, the convs saw `context` frames before
        x = h.permute(2, 0, 1)  # [new, B, C]
        y, self._state = lstm.lstm(x, self._state)
        h = (y + x).permute(1, 2, 0)  # [B, C, new], as EncodecLSTM.forward
        if self._lstm_out is not None:
            h = torch.cat([self._lstm_out, h], dim=-1)
        self._lstm_out = h[..., -self.context :] if self.context else None
        for layer in after:
            h = layer(h)
        return h[..., -new * self.hop :] / model.config.input_gain
