"""Audio in and out: load any format soundfile reads, resample with soxr, normalise, save.

Audio inside audiolm is a float32 torch tensor shaped `[channels, samples]` plus an integer
sample rate. Everything a user can get wrong about a file — a missing path, a directory, an
empty or header-only file, corrupt bytes, a format libsndfile does not know, NaN/inf samples,
an absurd sample rate — raises `AudioError` with a one-line message that names the file. No
other exception type escapes `load_audio` for bad input.

Formats: whatever the bundled libsndfile reads (wav, flac, ogg/vorbis, ogg/opus, mp3, aiff,
...). Writing: wav and flac, chosen by the file extension, written atomically (temp file in
the same folder, fsync, rename) so a kill never leaves half a file under the final name.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, overload

import numpy as np
import soundfile as sf
import soxr
import torch

from audiolm.core.checkpoint import make_temp_file
from audiolm.core.errors import AudioError

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000

# extension -> (libsndfile major format, default subtype)
_WRITE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}
_READ_BLOCK = 1 << 16  # frames per read: never trust a header's frame count for allocation


def _one_line(text: Any) -> str:
    return " ".join(str(text).split()) or "unknown error"


def check_sample_rate(sample_rate: Any, where: str) -> int:
    """Return `sample_rate` as an int, or raise AudioError naming `where` if it is absurd."""
    try:
        rate = int(sample_rate)
    except (TypeError, ValueError, OverflowError):
        raise AudioError(f"{where}: sample rate {sample_rate!r} is not a number") from None
    if rate != sample_rate or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{where}: sample rate {sample_rate!r} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    return rate


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def declared_wav_bytes(path: Path) -> tuple[int, int] | None:
    """(bytes the WAV header's data chunk declares, bytes present after it) for a RIFF/WAVE
    file, or None when it is not one or the size is a streaming placeholder (0 or 0xFFFFFFFF).
    libsndfile silently reads a truncated WAV as shorter; this is how we notice."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(f.fileno()).st_size
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], int.from_bytes(chunk[4:], "little")
                if name == b"data":
                    if length in (0, 0xFFFFFFFF):
                        return None
                    return length, size - f.tell()
                f.seek(length + (length & 1), os.SEEK_CUR)
    except OSError:
        return None


def check_not_truncated(path: Path) -> None:
    """AudioError if a WAV file holds less data than its header declares."""
    sizes = declared_wav_bytes(path)
    if sizes is not None and sizes[1] < sizes[0]:
        raise AudioError(
            f"{path}: truncated WAV: the header declares {sizes[0]} bytes of audio but only {sizes[1]} are "
            "present (repair or re-export the file)"
        )


def _read_all(path: Path) -> tuple[np.ndarray, int]:
    """Read every frame of `path` as float32 [samples, channels]; libsndfile errors -> AudioError."""
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels = f.samplerate, f.channels
            check_sample_rate(rate, str(path))
            if channels < 1 or channels > 64:
                raise AudioError(f"{path}: {channels} channels is not plausible audio")
            blocks = []
            while True:
                block = f.read(_READ_BLOCK, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                blocks.append(block)
    except AudioError:
        raise
    except sf.LibsndfileError as e:
        raise AudioError(f"{path}: cannot read audio: {_sndfile_message(e)}") from None
    except (RuntimeError, ValueError, TypeError, OSError, MemoryError, OverflowError) as e:
        # libsndfile / numpy surface corrupt headers in several ways; all are bad input here
        raise AudioError(f"{path}: cannot read audio: {_one_line(e)}") from None
    if not blocks:
        raise AudioError(f"{path}: no audio samples (header only, or the data is missing)")
    data = np.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
    return data, rate


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False) -> tuple[torch.Tensor, int]:
    """Load an audio file as float32 `[channels, samples]` and its sample rate.

    With `sample_rate`, the audio is resampled (soxr, very high quality) and that rate is
    returned. With `mono=True`, channels are averaged into one (`[1, samples]`).
    """
    path = Path(path)
    _check_path(path)
    if sample_rate is not None:
        sample_rate = check_sample_rate(sample_rate, f"{path} (requested rate)")
    check_not_truncated(path)
    data, rate = _read_all(path)
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [channels, samples]
    if mono and wav.shape[0] > 1:
        wav = wav.mean(dim=0, keepdim=True)
    if sample_rate is not None and sample_rate != rate:
        wav = resample(wav, rate, sample_rate)
        rate = sample_rate
    return wav, rate


def _sndfile_message(e: Exception) -> str:
    """libsndfile's error in one line. It says "File does not exist or is not a regular file
    (possibly a pipe?)" for a regular file it cannot identify (a 3-byte mp3): callers have checked
    the path is a regular file, so that is said as what it is."""
    message = _one_line(getattr(e, "error_string", e))
    lower = message.lower()
    if "possibly a pipe" in lower:
        return "not a recognised audio file (unsupported format, or too short or damaged to identify)"
    if "not recognised" in lower or "unknown format" in lower:
        return f"unsupported or unrecognised audio format ({message})"
    return message


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the header (cheap); AudioError for unreadable files."""
    path = Path(path)
    _check_path(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # noqa: BLE001 - any libsndfile failure is bad input here
        raise AudioError(f"{path}: cannot read audio: {_sndfile_message(e)}") from None
    check_sample_rate(info.samplerate, str(path))
    return info.frames / info.samplerate


def audio_sample_rate(path: str | os.PathLike) -> int:
    """The sample rate in the header; AudioError for unreadable files or absurd rates."""
    path = Path(path)
    _check_path(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # noqa: BLE001 - any libsndfile failure is bad input here
        raise AudioError(f"{path}: cannot read audio: {_sndfile_message(e)}") from None
    return check_sample_rate(info.samplerate, str(path))


@overload
def resample(wav: torch.Tensor, from_sr: int, to_sr: int) -> torch.Tensor: ...
@overload
def resample(wav: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray: ...
def resample(wav: torch.Tensor | np.ndarray, from_sr: int, to_sr: int) -> torch.Tensor | np.ndarray:
    """Resample `wav` [..., N] from `from_sr` to `to_sr` with soxr (VHQ); same type and dtype out.

    The output has `round(N * to_sr / from_sr)` samples (soxr's length rule).
    """
    from_sr = check_sample_rate(from_sr, "resample (source rate)")
    to_sr = check_sample_rate(to_sr, "resample (target rate)")
    if from_sr == to_sr:
        return wav
    is_tensor = isinstance(wav, torch.Tensor)
    array = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    lead, n = array.shape[:-1], array.shape[-1]
    flat = array.reshape(int(np.prod(lead)), n).astype(dtype, copy=False)  # [channels, N]
    out_len = int(round(n * to_sr / from_sr))
    if n == 0 or flat.shape[0] == 0:
        out = np.zeros((flat.shape[0], out_len), dtype=dtype)
    else:
        # soxr wants [frames, channels]
        out = soxr.resample(np.ascontiguousarray(flat.T), from_sr, to_sr, quality="VHQ").T
        out = np.ascontiguousarray(out, dtype=dtype)
    out = out.reshape(*lead, out.shape[-1])
    if is_tensor:
        return torch.from_numpy(out).to(device=wav.device)
    return out


def mono_float32(wav, sample_rate: int, to_rate: int) -> np.ndarray:
    """One channel of audio (tensor or array, any shape holding N samples) -> float32 [N'] at
    `to_rate`: what the pretrained judges and Harvest take."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().float().numpy()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if sample_rate != to_rate:
        wav = np.asarray(resample(wav, sample_rate, to_rate), dtype=np.float32)
    return wav


# integer PCM -> float: divide by the full scale (uint8 is offset binary)
_PCM_SCALE = {torch.int16: 32768.0, torch.int32: 2147483648.0, torch.int8: 128.0}
MAX_FLOAT_PEAK = 2.0  # float audio louder than this is taken for a unit mistake and refused


def as_float_audio(wav, where: str) -> torch.Tensor:
    """A tensor or numpy array of samples -> float32 tensor, with the dtype rules of the API:
    float16/32/64 as is; int8/int16/int32 PCM divided by full scale (uint8: (x - 128) / 128);
    bool, int64 and anything else refused (their scale is ambiguous). NaN/inf refused; float
    audio peaking above MAX_FLOAT_PEAK refused (integer PCM cast to float, most likely)."""
    if isinstance(wav, np.ndarray):
        if wav.dtype == np.uint8:
            wav = torch.from_numpy(wav.astype(np.float32) - 128.0) / 128.0
        elif wav.dtype.kind in "iufb" and wav.dtype.itemsize <= 8:
            wav = torch.from_numpy(np.ascontiguousarray(wav))
        else:
            raise AudioError(f"{where}: audio of dtype {wav.dtype} is not supported; use float32 in [-1, 1]")
    if not isinstance(wav, torch.Tensor):
        raise AudioError(f"{where}: expected a tensor or numpy array, got {type(wav).__name__}")
    if wav.dtype == torch.uint8:
        wav = (wav.float() - 128.0) / 128.0
    elif wav.dtype in _PCM_SCALE:
        wav = wav.float() / _PCM_SCALE[wav.dtype]
    elif not wav.is_floating_point():
        raise AudioError(
            f"{where}: audio of dtype {str(wav.dtype).replace('torch.', '')} is ambiguous; give float samples in "
            "[-1, 1] (or int16/int32 PCM, which is scaled)"
        )
    wav = wav.float()
    if wav.numel() and not torch.isfinite(wav).all():
        raise AudioError(f"{where}: audio contains NaN or infinite samples")
    if wav.numel():
        peak = float(wav.abs().max())
        if peak > MAX_FLOAT_PEAK:
            raise AudioError(
                f"{where}: float audio peaks at {peak:g}, far outside [-1, 1] (integer PCM cast to float? "
                "divide by 32768)"
            )
    return wav


def check_channels_first(wav: torch.Tensor, where: str, max_channels: int = 64) -> None:
    """A 2-D array must be [channels, samples]; soundfile's [samples, channels] is refused with
    the reason (transposing silently would guess wrong for short clips)."""
    if wav.dim() == 2 and wav.shape[0] > max_channels:
        hint = " (soundfile's [samples, channels] layout: pass wav.T)" if wav.shape[1] <= max_channels else ""
        raise AudioError(
            f"{where}: audio shaped {list(wav.shape)} has {wav.shape[0]} channels{hint}; expected [channels, samples]"
        )
    if wav.dim() == 2 and wav.shape[1] < wav.shape[0]:
        raise AudioError(
            f"{where}: audio shaped {list(wav.shape)} looks like [samples, channels] (soundfile's "
            "layout): pass wav.T to give [channels, samples]"
        )


def _is_float(x: torch.Tensor | np.ndarray) -> bool:
    if isinstance(x, torch.Tensor):
        return x.is_floating_point()
    return np.issubdtype(x.dtype, np.floating)


def normalize_peak(wav: torch.Tensor, peak: float = 0.95) -> torch.Tensor:
    """Scale `wav` so its largest absolute sample is `peak` (silence stays silence)."""
    top = wav.abs().max() if wav.numel() else wav.new_tensor(0.0)
    if top <= 0:
        return wav.clone()
    return wav * (peak / top)


def rms_db(wav: torch.Tensor) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for silence)."""
    if wav.numel() == 0:
        return -math.inf
    rms = wav.double().pow(2).mean().sqrt().item()
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def normalize_loudness(wav: torch.Tensor, target_db: float = -23.0, max_peak: float = 0.99) -> torch.Tensor:
    """Scale `wav` to an RMS level of `target_db` dBFS, then lower it if a peak would exceed `max_peak`.

    RMS over the whole clip is a simple stand-in for LUFS that is good enough to put speech
    and music from different synthesizers on one level.
    """
    level = rms_db(wav)
    if not math.isfinite(level):
        return wav.clone()
    out = wav * (10.0 ** ((target_db - level) / 20.0))
    top = out.abs().max()
    if top > max_peak:
        out = out * (max_peak / top)
    return out


def save_audio(
    path: str | os.PathLike,
    wav: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    atomic: bool = True,
) -> Path:
    """Write `wav` ([channels, samples] or [samples]) to a .wav or .flac file, atomically.

    `subtype` is a libsndfile subtype ("PCM_16" by default, "PCM_24", "FLOAT" for wav).
    Integer subtypes clip samples to [-1, 1]. Samples must be floating point (integer PCM:
    divide by 32768 or use `pcm_to_float`). `atomic=False` writes `path` directly (for a
    claimed temp file, see core/outputs.py).
    """
    path = Path(path)
    if isinstance(wav, (torch.Tensor, np.ndarray)) and not _is_float(wav):
        raise AudioError(
            f"{path}: audio to save must be floating point in [-1, 1], got {wav.dtype} "
            "(integer PCM: divide by its full scale, e.g. 32768 for int16)"
        )
    suffix = path.suffix.lower()
    if suffix not in _WRITE_FORMATS:
        raise AudioError(f"{path}: cannot write '{suffix or '(no extension)'}' audio; use .wav or .flac")
    rate = check_sample_rate(sample_rate, str(path))
    major, default_subtype = _WRITE_FORMATS[suffix]
    subtype = (subtype or default_subtype).upper()
    if not sf.check_format(major, subtype):
        raise AudioError(f"{path}: {major} cannot store subtype {subtype}")
    array = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise AudioError(f"{path}: audio to save must be [channels, samples] or [samples], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise AudioError(f"{path}: refusing to save NaN or infinite samples")
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        array = np.clip(array, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not atomic:
        try:
            sf.write(str(path), np.ascontiguousarray(array.T), rate, subtype=subtype, format=major)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise AudioError(f"{path}: cannot write audio: {_one_line(e)}") from None
        return path

    fd, tmp = make_temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            sf.write(f, np.ascontiguousarray(array.T), rate, subtype=subtype, format=major)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, (sf.LibsndfileError, RuntimeError)):
            raise AudioError(f"{path}: cannot write audio: {_one_line(e)}") from None
        raise
    return path


class AudioWriter:
    """Write a mono .wav/.flac file block by block, atomically: the blocks go to a temp file
    beside `path` and `commit()` moves it into place (without commit, e.g. on an error, the
    temp file is removed and `path` is untouched).

        with AudioWriter("out.wav", 24000) as w:
            for block in blocks:          # float32 [n] numpy arrays
                w.write(block)
            w.commit()
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, subtype: str | None = None, atomic: bool = True):
        self.path = Path(path)
        self.atomic = atomic
        suffix = self.path.suffix.lower()
        if suffix not in _WRITE_FORMATS:
            raise AudioError(f"{self.path}: cannot write '{suffix or '(no extension)'}' audio; use .wav or .flac")
        self.rate = check_sample_rate(sample_rate, str(self.path))
        self.major, default_subtype = _WRITE_FORMATS[suffix]
        self.subtype = (subtype or default_subtype).upper()
        self._file: sf.SoundFile | None = None
        self._tmp: str | None = None
        self.samples = 0

    def __enter__(self) -> AudioWriter:
        if self.atomic:
            fd, self._tmp = make_temp_file(self.path)
        else:  # a claimed temp file: written in place, published by its OutputSet
            fd, self._tmp = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644), None
        try:
            self._raw = os.fdopen(fd, "w+b")
            self._file = sf.SoundFile(self._raw, "w", self.rate, 1, self.subtype, format=self.major)
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if not np.isfinite(block).all():
            raise AudioError(f"{self.path}: refusing to save NaN or infinite samples")
        if not self.subtype.startswith(("FLOAT", "DOUBLE")):
            block = np.clip(block, -1.0, 1.0)
        assert self._file is not None
        self._file.write(block)
        self.samples += block.shape[0]

    def commit(self) -> Path:
        assert self._file is not None
        self._file.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self._file = None
        if self._tmp is not None:
            os.replace(self._tmp, self.path)
        self._tmp = None
        return self.path

    def _discard(self) -> None:
        for closer in (getattr(self._file, "close", None), getattr(getattr(self, "_raw", None), "close", None)):
            try:
                if closer is not None:
                    closer()
            except Exception:  # noqa: BLE001 - best effort while failing
                pass
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None

    def __exit__(self, *exc) -> None:
        if self._file is not None or self._tmp is not None:
            self._discard()
