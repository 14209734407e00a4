"""Encode and decode long audio through the codec in bounded memory, chunk by chunk.

The codec is causal (SEANet: causal convolutions and an LSTM; the frame-rate iSTFT decoder
looks ahead a fixed number of samples), so a span of frames depends only on a bounded stretch
of input before it (`left`) and a fixed stretch after it (`lookahead`). Each chunk is run with
that context around it and the context's outputs are dropped:

    encode: audio [pos - left, pos + chunk + lookahead) -> frames; keep those of [pos, pos + chunk)
    decode: frames [t - left, t + chunk + lookahead)    -> audio;  keep that of frames [t, t + chunk)

The context comes from the codec (`Codec.chunk_context`): analysed layer by layer for SEANet,
declared by a module (`context_samples` / `lookahead_samples`), or a conservative default for
an unknown architecture. Convolutions have finite receptive fields, so they are covered
exactly; an LSTM's state is rebuilt from LSTM_CONTEXT_FRAMES frames of left context, which
makes chunked output equal to the whole-file output within float rounding for decode and
within a few near-tie codes for encode (measured tolerance in BENCHMARKS.md, "Chunked codec";
the tests pin it). An iSTFT decoder with integrated phase carries its running phase the same
way: each window starts from the phases the previous window gave its context frames.

API (the streaming pipeline uses ChunkedDecoder too):

    enc = ChunkedEncoder(codec, kbps=6, chunk_seconds=20)
    codes = [enc.push(audio_24k) for audio_24k in pieces] + [enc.finish()]    # [B, Q, t] each
    dec = ChunkedDecoder(codec, chunk_frames=1500)
    audio = [dec.push(c) for c in codes] + [dec.finish()]                     # [B, 1, n] each
    # torch.cat(codes, -1) ~= codec.encode(whole); torch.cat(audio, -1) ~= codec.decode(whole codes)

    # streaming: a known prompt's frames make no audio, then every frame whose lookahead has
    # arrived comes out at once, whatever the chunk size
    dec = ChunkedDecoder(codec)
    dec.skip(prompt_codes)
    audio = dec.push_ready(new_codes)        # [B, 1, n], n = 0 while the lookahead is missing
    audio = dec.push_ready(last_codes, final=True)

    round_trip_file(codec, "in.flac", sink, kbps=6)      # file -> file, what `audiolm codec` runs

Memory: each step holds one chunk plus its context, so peak memory does not grow with the
length of the file (all codes of the file are kept: 8 levels x 75 Hz x 8 bytes = 17 MB/hour).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from audiolm.core.audio import check_not_truncated, check_sample_rate
from audiolm.core.errors import AudioError
from audiolm.models.codec.codec import Codec, CodecInputError, cached_weights
from audiolm.models.codec.model import LatentMap

DEFAULT_CHUNK_SECONDS = 20.0
READ_BLOCK_SECONDS = 5.0


def _chunk_frames(codec: Codec, chunk_seconds: float) -> int:
    if not (isinstance(chunk_seconds, (int, float)) and math.isfinite(chunk_seconds) and chunk_seconds > 0):
        raise CodecInputError(f"chunk_seconds must be a positive number, got {chunk_seconds!r}")
    return max(1, int(round(chunk_seconds * codec.frame_rate)))


class _Network:
    """Runs the codec's encoder or decoder over windows of a long signal.

    A SEANet network (transformers' EncodecEncoder / EncodecDecoder: a list of layers with one
    EncodecLSTM at the frame rate) runs layer by layer, and its LSTM continues from the state
    the previous window left at the last kept frame, with the LSTM outputs of the context frames
    taken from that window: so the LSTM sees one unbroken sequence, as in a whole-file pass.
    Any other network is called on the window as a whole (its context covers it).
    """

    def __init__(self, network: torch.nn.Module, steps_per_frame: int, left_frames: int):
        self.network = network
        layers = getattr(network, "layers", None)
        self.layers = list(layers) if layers is not None and any(_is_lstm_layer(m) for m in layers) else None
        self.steps_per_frame = steps_per_frame
        self.keep_frames = left_frames + 1  # LSTM outputs kept for the next window's context
        self.state = None  # (h, c) after the last kept frame
        self.cache: torch.Tensor | None = None  # LSTM-layer outputs [B, D, k] of frames [cache_start, done)
        self.cache_start = 0
        # an iSTFT decoder with integrated phase: its phases [B, F, k] of frames [phase_start, done)
        self.integrates_phase = bool(getattr(network, "integrates_phase", False))
        self.phase: torch.Tensor | None = None
        self.phase_start = 0

    def __call__(
        self, x: torch.Tensor, start: int, done: int, keep: int, state_only: bool = False
    ) -> torch.Tensor | None:
        """x: the window, starting at step `start`; steps before `done` are context (seen
        before), [done, keep) is kept, the rest is lookahead (seen again next time).
        `state_only`: only carry the state on to `keep` (a SEANet network stops after its
        LSTM); the output is None."""
        if self.integrates_phase:
            return self._with_phase(x, start, done, keep)
        if self.layers is None:
            return None if state_only else self.network(x)
        spf = self.steps_per_frame
        start_f, done_f, keep_f = start // spf, done // spf, -(-keep // spf)
        for layer in self.layers:
            if _is_lstm_layer(layer):
                x = self._lstm(layer, x, start_f, done_f, keep_f)
                if state_only:
                    return None
            else:
                x = layer(x)
        return x

    def _with_phase(self, z: torch.Tensor, start: int, done: int, keep: int) -> torch.Tensor:
        """The decoder over latent frames [start, ...), its running phase continued from the
        phases the last window gave frames [start, done)."""
        prefix = None
        # the phases of the last frames before `done` may have been computed without their
        # lookahead (a skipped prompt's last frames): this window, which has it, re-derives them
        known = max(start, done - getattr(self.network, "phase_lookahead_frames", 0))
        if known > start:
            assert self.phase is not None  # a window with context follows a kept one
            if start < self.phase_start or known > self.phase_start + self.phase.shape[-1]:
                raise RuntimeError("codec chunker: window reaches outside the kept phases")
            prefix = self.phase[..., start - self.phase_start : known - self.phase_start]
        audio, phase = self.network.forward_with_phase(z, prefix)  # type: ignore[operator]  # ISTFTDecoder
        history = phase[..., : keep - start]  # frames [start, keep)
        drop = max(0, history.shape[-1] - self.keep_frames)
        self.phase, self.phase_start = history[..., drop:], start + drop
        return audio

    def _lstm(self, layer, x: torch.Tensor, start_f: int, done_f: int, keep_f: int) -> torch.Tensor:
        """EncodecLSTM.forward (lstm(x) + x over [B, D, T]) with the state carried across windows."""
        new = x[..., done_f - start_f :].permute(2, 0, 1)  # [T, B, D] frames from done_f on
        split = keep_f - done_f
        kept, state = layer.lstm(new[:split], self.state)
        ahead, _ = layer.lstm(new[split:], state) if new.shape[0] > split else (new[:0], None)
        y_new = (torch.cat([kept, ahead], dim=0) + new).permute(1, 2, 0)  # [B, D, T]
        if self.cache is not None and start_f < done_f:
            if start_f < self.cache_start:
                raise RuntimeError("codec chunker: window reaches before the kept LSTM outputs")
            y = torch.cat([self.cache[..., start_f - self.cache_start :], y_new], dim=-1)
        else:
            y = y_new
        # remember the state at keep_f and the outputs of the frames before it
        self.state = state
        history = y[..., : keep_f - start_f]
        drop = max(0, history.shape[-1] - self.keep_frames)
        self.cache, self.cache_start = history[..., drop:], start_f + drop
        return y


def _is_lstm_layer(module: torch.nn.Module) -> bool:
    return type(module).__name__ == "EncodecLSTM" and isinstance(getattr(module, "lstm", None), torch.nn.LSTM)


class _Chunker:
    """Shared loop: a buffer of input steps (samples or frames), windows with context."""

    def __init__(self, codec: Codec, chunk: int, left: int, ahead: int, edge: int):
        self.codec = codec
        self.chunk, self.left, self.ahead, self.edge = chunk, left, ahead, max(ahead, edge)
        self._buffer: torch.Tensor | None = None  # [B, C, n]: steps from absolute index _start
        self._start = 0
        self._done = 0  # steps whose output was returned
        self._finished = False

    @property
    def _end(self) -> int:
        return self._start + (0 if self._buffer is None else self._buffer.shape[-1])

    def _append(self, x: torch.Tensor) -> None:
        if self._finished:
            raise CodecInputError(f"{type(self).__name__}.push after finish()")
        if self._buffer is not None and x.shape[:2] != self._buffer.shape[:2]:
            raise CodecInputError(
                f"{type(self).__name__}.push: {list(x.shape[:2])} does not continue {list(self._buffer.shape[:2])}"
            )
        self._buffer = x if self._buffer is None else torch.cat([self._buffer, x], dim=-1)

    def _ready(self) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        while True:
            # a window that starts at the signal's start also needs the edge lookahead
            ahead = self.edge if self._done <= self.left else self.ahead
            if self._end - self._done < self.chunk + ahead:
                return out
            out.append(self._window(self._done + self.chunk, self._done + self.chunk + ahead))

    def _last(self) -> list[torch.Tensor]:
        if self._finished:
            raise CodecInputError(f"{type(self).__name__}.finish called twice")
        self._finished = True
        return [self._window(self._end, self._end)] if self._end > self._done else []

    def _run(self, window: torch.Tensor, start: int, keep: int) -> torch.Tensor:
        raise NotImplementedError

    def _select(self, out: torch.Tensor, offset: int, length: int) -> torch.Tensor:
        raise NotImplementedError

    def _window(self, keep: int, end: int) -> torch.Tensor:
        assert self._buffer is not None  # _window runs only on pushed input
        start = max(0, self._done - self.left)
        window = self._buffer[..., start - self._start : end - self._start]
        with torch.inference_mode(), cached_weights():
            out = self._run(window, start, keep)
        out = self._select(out, self._done - start, keep - self._done)
        self._advance(keep)
        return out

    def _advance(self, done: int) -> None:
        """Steps before `done` are out; drop input no later window needs."""
        assert self._buffer is not None
        self._done = done
        keep_from = max(0, self._done - self.left)
        self._buffer = self._buffer[..., keep_from - self._start :]
        self._start = keep_from


class ChunkedEncoder(_Chunker):
    """Audio at the codec rate, pushed in pieces of any length -> codes, emitted per chunk.

    push(audio [B, 1, n] or [n]) -> codes [B, Q, t] of every chunk completed so far (t may be 0);
    finish() -> the rest. The concatenated codes equal `codec.model.encode` of the whole audio
    (ceil(N / hop) frames in all; BENCHMARKS.md "Chunked codec" for the measured agreement).
    """

    def __init__(self, codec: Codec, kbps: float = 6.0, chunk_seconds: float = DEFAULT_CHUNK_SECONDS):
        context = codec.chunk_context
        self.hop = context.hop_length
        super().__init__(
            codec,
            _chunk_frames(codec, chunk_seconds) * self.hop,
            context.encode_left,
            context.encode_lookahead,
            context.encode_edge,
        )
        self.n_q = codec.levels_for_kbps(kbps)
        self._net = _Network(codec.model.encoder, self.hop, context.encode_left // self.hop)

    def push(self, audio: torch.Tensor) -> torch.Tensor:
        audio = torch.as_tensor(audio, dtype=torch.float32)
        if audio.dim() == 1:
            audio = audio[None, None]
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise CodecInputError(f"ChunkedEncoder.push: audio must be [n] or [B, 1, n], got {list(audio.shape)}")
        self._append(audio.to(self.codec.device))
        return self._cat(self._ready())

    def finish(self) -> torch.Tensor:
        """Codes of everything not yet emitted (the last, partial chunk)."""
        if self._buffer is None:
            raise CodecInputError("ChunkedEncoder: no audio was pushed")
        return self._cat(self._last())

    def _run(self, window: torch.Tensor, start: int, keep: int) -> torch.Tensor:
        # CodecModel.encode, with the encoder run by _Network
        z = self._net(window * self.codec.config.input_gain, start, self._done, keep)
        assert z is not None  # not state_only
        return self.codec.model.quantizer.encode(z, self.n_q)  # [B, Q, ceil(len / hop)]

    def _select(self, codes: torch.Tensor, offset: int, length: int) -> torch.Tensor:
        first = offset // self.hop
        return codes[..., first : first + -(-length // self.hop)]

    def _cat(self, pieces: list[torch.Tensor]) -> torch.Tensor:
        if pieces:
            return torch.cat(pieces, dim=-1)
        batch = 1 if self._buffer is None else self._buffer.shape[0]
        return torch.zeros(batch, self.n_q, 0, dtype=torch.long, device=self.codec.device)


class ChunkedDecoder(_Chunker):
    """Codes pushed in pieces of any length -> audio at the codec rate, emitted per chunk.

    push(codes [B, Q, t]) -> audio [B, 1, n] of every chunk whose frames (and the decoder's
    lookahead) have arrived (n may be 0); finish() -> the rest. The concatenated audio equals
    `codec.decode(all codes)` up to float rounding: T * hop samples in all. A chunk recomputes
    `chunk_context.decode_left / hop` frames of context, so small chunks (low latency) cost
    more per frame.
    """

    def __init__(self, codec: Codec, chunk_frames: int | None = None, latent_map: LatentMap | None = None):
        context = codec.chunk_context
        self.latent_map = latent_map  # as in Codec.decode, called with each window's first frame
        self.hop = context.hop_length
        if chunk_frames is None:
            chunk_frames = _chunk_frames(codec, DEFAULT_CHUNK_SECONDS)
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise CodecInputError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
        super().__init__(
            codec,
            chunk_frames,
            context.decode_left // self.hop,
            context.decode_lookahead // self.hop,
            context.decode_edge // self.hop,
        )
        self._net = _Network(codec.model.decoder, 1, self.left)

    @property
    def frames_done(self) -> int:
        """Frames whose audio has been returned (or skipped) so far."""
        return self._done

    @property
    def lookahead_frames(self) -> int:
        """Frames past the last one out that must have arrived before it can come out."""
        return self.edge if self._done <= self.left else self.ahead

    def push(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, Q, t] -> the audio of every whole chunk now ready, [B, 1, n]."""
        if not self._take(codes):
            return self._empty(codes.shape[0])
        return self._cat(self._ready())

    def push_ready(self, codes: torch.Tensor, final: bool = False) -> torch.Tensor:
        """Codes [B, Q, t] -> the audio of every frame whose lookahead has arrived, in one
        window whatever its length (streaming); `final`: all of it (then like `finish`)."""
        self._take(codes)
        if final:
            return self.finish()
        keep = self._end - self.lookahead_frames
        if keep <= self._done:
            return self._empty(1 if self._buffer is None else self._buffer.shape[0])
        return self._window(keep, self._end)

    @torch.inference_mode()
    def skip(self, codes: torch.Tensor) -> None:
        """Take codes [B, Q, t] as decoded without returning their audio (a prompt whose audio
        is known): only the state later frames depend on is computed (a SEANet decoder stops
        after its LSTM)."""
        if not self._take(codes):
            return
        start = max(0, self._done - self.left)
        window = self._buffer[..., start - self._start :]  # type: ignore[index]  # _take appended
        with cached_weights():
            self._net(self._latent(window, start), start, self._done, self._end, state_only=True)
        self._advance(self._end)

    def finish(self) -> torch.Tensor:
        return self._cat(self._last())

    def _take(self, codes: torch.Tensor) -> bool:
        """Append pushed codes after checking them; False for an empty piece."""
        if isinstance(codes, torch.Tensor) and codes.dim() == 3 and codes.shape[-1] == 0:
            return False
        self._append(self.codec.check_codes(codes).to(self.codec.device))
        return True

    def _run(self, window: torch.Tensor, start: int, keep: int) -> torch.Tensor:
        # CodecModel.decode, with the decoder run by _Network
        audio = self._net(self._latent(window, start), start, self._done, keep)
        assert audio is not None  # not state_only
        return audio.float() / self.codec.config.input_gain  # [B, 1, len * hop]

    def _latent(self, window: torch.Tensor, start: int) -> torch.Tensor:
        """Codes [B, Q, t] from frame `start` on -> the decoder's input latents [B, D, t]."""
        latent = self.codec.model.quantizer.decode(window)
        return latent if self.latent_map is None else self.latent_map(latent, window, start)

    def _select(self, audio: torch.Tensor, offset: int, length: int) -> torch.Tensor:
        return audio[..., offset * self.hop : (offset + length) * self.hop]

    def _cat(self, pieces: list[torch.Tensor]) -> torch.Tensor:
        if pieces:
            return torch.cat(pieces, dim=-1)
        return self._empty(1 if self._buffer is None else self._buffer.shape[0])

    def _empty(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, 1, 0, device=self.codec.device)


def encode_chunked(
    codec: Codec, wav, sample_rate: int, kbps: float = 6.0, chunk_seconds: float = DEFAULT_CHUNK_SECONDS
) -> torch.Tensor:
    """`codec.encode` of in-memory audio, computed chunk by chunk -> codes [B, Q, T]."""
    audio = codec.prepare_audio(wav, sample_rate)  # [B, 1, N] at the codec rate (validated)
    encoder = ChunkedEncoder(codec, kbps, chunk_seconds)
    pieces = [encoder.push(audio), encoder.finish()]
    return torch.cat(pieces, dim=-1)


def decode_chunked(
    codec: Codec, codes: torch.Tensor, chunk_frames: int | None = None, latent_map: LatentMap | None = None
):
    """Yield audio pieces [B, 1, n] of `codec.decode(codes, latent_map)`, one chunk at a time."""
    decoder = ChunkedDecoder(codec, chunk_frames, latent_map)
    codes = codec.check_codes(codes)
    step = decoder.chunk
    for start in range(0, codes.shape[-1], step):
        piece = decoder.push(codes[..., start : start + step])
        if piece.shape[-1]:
            yield piece
    piece = decoder.finish()
    if piece.shape[-1]:
        yield piece


@dataclass
class RoundTrip:
    codes: torch.Tensor  # [1, Q, T] at the codec's frame rate
    sample_rate: int  # of the input and the output
    samples: int  # written (= the input's length)


def round_trip_file(
    codec: Codec,
    source: str | Path,
    sink: Callable[[np.ndarray], None],
    kbps: float = 6.0,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
) -> RoundTrip:
    """Read `source` block by block, mix to mono, encode + decode in chunks, and hand the
    reconstruction (float32 [n] at the input's rate, pieces in order) to `sink`.

    Exactly as many samples come out as went in. Unreadable input, NaN/inf samples and a file
    shorter than its header claims raise AudioError naming the file.
    """
    source = Path(source)
    check_not_truncated(source)
    try:
        handle = sf.SoundFile(str(source))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as e:
        raise AudioError(f"{source}: cannot read audio: {' '.join(str(e).split())}") from None
    with handle:
        rate = check_sample_rate(handle.samplerate, str(source))
        declared = handle.frames if handle.seekable() else None  # libsndfile's count (may differ for mp3)
        to_codec = _Resampler(rate, codec.sample_rate)
        from_codec = _Resampler(codec.sample_rate, rate)
        encoder = ChunkedEncoder(codec, kbps, chunk_seconds)
        decoder = ChunkedDecoder(codec, encoder.chunk // encoder.hop)
        codes: list[torch.Tensor] = []
        written = 0
        total = 0

        def emit(audio_codec_rate: torch.Tensor, last: bool) -> None:
            nonlocal written
            out = from_codec(audio_codec_rate[0, 0].cpu().numpy(), last)
            out = out[: max(0, total - written)]  # never more samples than were read
            if out.shape[0]:
                sink(out)
                written += out.shape[0]

        def run(new_codes: torch.Tensor) -> None:
            if new_codes.shape[-1]:
                codes.append(new_codes.cpu())
                emit(decoder.push(new_codes), last=False)

        block = max(1, int(READ_BLOCK_SECONDS * rate))
        while True:
            try:
                data = handle.read(block, dtype="float32", always_2d=True)  # [n, C]
            except (sf.LibsndfileError, RuntimeError, ValueError) as e:
                raise AudioError(f"{source}: cannot read audio at sample {total}: {' '.join(str(e).split())}") from None
            if data.shape[0] == 0:
                break
            if not np.isfinite(data).all():
                raise AudioError(f"{source}: contains NaN or infinite samples (near sample {total})")
            total += data.shape[0]
            mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            run(encoder.push(torch.from_numpy(to_codec(mono, False).copy())))
        if total == 0:
            raise AudioError(f"{source}: no audio samples (header only, or the data is missing)")
        if declared is not None and 0 < declared and total < declared:
            raise AudioError(
                f"{source}: the header declares {declared} samples but the file holds {total} (truncated?)"
            )
        tail = to_codec(np.zeros(0, np.float32), True)  # the resampler's last samples
        if tail.shape[0]:
            run(encoder.push(torch.from_numpy(tail.copy())))
        run(encoder.finish())
        emit(decoder.finish(), last=True)
        if written < total:  # resampler rounding: pad the last few samples with silence
            sink(np.zeros(total - written, np.float32))
            written = total
    return RoundTrip(torch.cat(codes, dim=-1), rate, written)


class _Resampler:
    """soxr streaming resampler (VHQ, as `core.audio.resample`); identity when the rates match."""

    def __init__(self, from_rate: int, to_rate: int):
        self._stream = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="VHQ")
        )

    def __call__(self, x: np.ndarray, last: bool) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x, last=last)
