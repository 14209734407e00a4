"""Judges that hear what a listener hears: pretrained models whose weights ship in their wheels.

    speaker_similarity(ref, est, sr)   cosine of GE2E speaker embeddings (Resemblyzer's weights),
                                       1 = same voice, lower for different speakers
    dnsmos(wav, sr)                    DNSMOS P.835 OVRL / SIG / BAK and P.808 MOS (speechmos' ONNX
                                       models), 1..5, no reference needed
    f0_errors(ref, est, sr)            gross pitch error (voiced in both, |f0 error| > 20 %) and
                                       voicing decision error (voiced/unvoiced disagree), 0..1,
                                       of pyworld's Harvest pitch tracks

Every judge takes mono 1-D tensors or arrays at any sample rate (resampled to 16 kHz). Nothing
downloads. The optional wheels (eval extra: resemblyzer, speechmos + onnxruntime, pyworld) are
imported where they are first needed, so importing this module needs none of them.

GE2E without Resemblyzer's runtime: `resemblyzer` imports webrtcvad, which imports
pkg_resources (gone from current setuptools), so we load its `pretrained.pt` `model_state`
(torch.load weights_only=True) into `GE2E`, a copy of its network (3-layer LSTM 256 on 40 mel
bands at 16 kHz, linear 256, ReLU, L2 norm), and compute its mel front end (librosa's Slaney
mel, 25 ms / 10 ms, power 2) in torch. Utterance embedding as `embed_utterance`: 1.6 s
partials at 1.3 per second, averaged and normalised. Resemblyzer's `preprocess_wav` would also
raise the level to -30 dBFS (done here) and cut long silences with the VAD (not done: both
clips of a pair keep their silences, the judge compares like with like).
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audiolm.core.audio import mono_float32
from audiolm.core.errors import AudiolmError
from audiolm.models.codec.harvest import HarvestUnavailable, harvest_f0, load_pyworld

JUDGE_RATE = 16_000

__all__ = ["GE2E", "JudgeUnavailable", "dnsmos", "f0_errors", "speaker_embedding", "speaker_similarity"]


class JudgeUnavailable(AudiolmError, ImportError):
    """A judge's wheel is not installed (pip install 'audiolm[eval]')."""


def _mono16k(wav, sample_rate: int) -> np.ndarray:
    return mono_float32(wav, sample_rate, JUDGE_RATE)


# -- GE2E speaker similarity -----------------------------------------------------------------


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults (Slaney scale and area norm):
    [n_mels, n_fft / 2 + 1]."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights.astype(np.float32)


class GE2E(nn.Module):
    """Resemblyzer's speaker encoder: mel frames [B, T, 40] -> unit embeddings [B, 256]."""

    n_mels, n_fft, hop_length, partial_frames = 40, 400, 160, 160

    mel_basis: torch.Tensor  # buffer
    window: torch.Tensor  # buffer

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(self.n_mels, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.register_buffer(
            "mel_basis", torch.from_numpy(slaney_mel_filterbank(JUDGE_RATE, self.n_fft, self.n_mels)), persistent=False
        )
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        embeds = torch.relu(self.linear(hidden[-1]))
        return embeds / embeds.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def mel_frames(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [N] at 16 kHz -> power mel [frames, 40] (librosa.feature.melspectrogram)."""
        spec = (
            torch.stft(
                wav.float(),
                self.n_fft,
                self.hop_length,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            .abs()
            .square()
        )  # [F, frames]
        return (self.mel_basis @ spec).T

    @torch.inference_mode()
    def embed_utterance(self, wav: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """wav [N] at 16 kHz -> unit embedding [256] (Resemblyzer's `embed_utterance`)."""
        samples_per_frame = self.hop_length
        n_frames = int(np.ceil((len(wav) + 1) / samples_per_frame))
        frame_step = max(1, int(np.round((JUDGE_RATE / rate) / samples_per_frame)))
        steps = max(1, n_frames - self.partial_frames + frame_step + 1)
        starts = list(range(0, steps, frame_step))
        last = starts[-1] * samples_per_frame
        coverage = (len(wav) - last) / (self.partial_frames * samples_per_frame)
        if coverage < min_coverage and len(starts) > 1:
            starts = starts[:-1]
        needed = (starts[-1] + self.partial_frames) * samples_per_frame
        if needed >= len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = self.mel_frames(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))
        partials = torch.stack([mel[s : s + self.partial_frames] for s in starts])
        embed = self(partials).mean(dim=0)
        return (embed / embed.norm()).numpy()


def _resemblyzer_weights() -> Path:
    spec = importlib.util.find_spec("resemblyzer")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise JudgeUnavailable("speaker similarity needs the resemblyzer wheel (pip install 'audiolm[eval]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"
    if not path.is_file():
        raise JudgeUnavailable(f"{path}: Resemblyzer's weights are missing")
    return path


@functools.lru_cache(maxsize=1)
def _ge2e() -> GE2E:
    model = GE2E()
    state = torch.load(_resemblyzer_weights(), map_location="cpu", weights_only=True)["model_state"]
    # the file also holds the GE2E loss' similarity weight and bias, which the encoder does not use
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})
    return model.eval()


def _level_up(wav: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """Raise (never lower) the level to `target_dbfs` RMS, as Resemblyzer's preprocess_wav."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if rms <= 0:
        return wav
    change = target_dbfs - 20 * math.log10(rms)
    return wav * (10 ** (change / 20)) if change > 0 else wav


def speaker_embedding(wav, sample_rate: int) -> np.ndarray:
    """Unit GE2E embedding [256] of one utterance."""
    return _ge2e().embed_utterance(_level_up(_mono16k(wav, sample_rate)))


def speaker_similarity(reference, estimate, sample_rate: int) -> float:
    """Cosine of the GE2E embeddings of two clips (1 = the same voice)."""
    return float(np.dot(speaker_embedding(reference, sample_rate), speaker_embedding(estimate, sample_rate)))


# -- DNSMOS ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _dnsmos_model():
    try:
        import onnxruntime as ort  # optional dependency (eval extra)
        from speechmos import dnsmos as speechmos_dnsmos  # optional dependency (eval extra)
    except ImportError as e:
        raise JudgeUnavailable(f"DNSMOS needs speechmos and onnxruntime (pip install 'audiolm[eval]'): {e}") from None
    models = Path(speechmos_dnsmos.__file__).resolve().parent
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # one thread, like every bench here
    # speechmos' DNSMOS opens its sessions with all cores; build it with ours instead
    judge = speechmos_dnsmos.DNSMOS.__new__(speechmos_dnsmos.DNSMOS)
    judge.primary_model_path = str(models / "dnsmos_models" / "sig_bak_ovr.onnx")
    judge.onnx_sess = ort.InferenceSession(judge.primary_model_path, options, providers=["CPUExecutionProvider"])
    judge.p808_onnx_sess = ort.InferenceSession(
        str(models / "dnsmos_models" / "model_v8.onnx"), options, providers=["CPUExecutionProvider"]
    )
    return judge


def dnsmos(wav, sample_rate: int) -> dict[str, float]:
    """DNSMOS of one clip: {"ovrl", "sig", "bak", "p808"} (1..5; clips under 9 s are looped)."""
    audio = np.clip(_mono16k(wav, sample_rate), -1.0, 1.0).astype(np.float64)
    if not np.any(audio):
        audio = audio + 1e-6  # an all-zero clip makes DNSMOS' dB mel undefined
    result = _dnsmos_model()(audio, JUDGE_RATE, False)
    return {
        "ovrl": float(result["ovrl_mos"]),
        "sig": float(result["sig_mos"]),
        "bak": float(result["bak_mos"]),
        "p808": float(result["p808_mos"]),
    }


# -- F0 agreement ------------------------------------------------------------------------------


def _pyworld():
    """pyworld, or JudgeUnavailable (the F0 judge's one-line error)."""
    try:
        return load_pyworld()
    except HarvestUnavailable as e:
        raise JudgeUnavailable(f"F0 errors: {e}") from None


def pitch_track(wav, sample_rate: int, frame_period_ms: float = 10.0) -> np.ndarray:
    """F0 in Hz per 10 ms frame (0 = unvoiced), pyworld's Harvest at 16 kHz, 50-800 Hz."""
    _pyworld()
    return harvest_f0(wav, sample_rate, frame_period_ms)


def f0_errors(reference, estimate, sample_rate: int, threshold: float = 0.2) -> dict[str, float]:
    """{"gpe", "vde"}: gross pitch error = share of frames voiced in both whose F0 differs by
    more than `threshold` (20 %) of the reference's (NaN if no frame is voiced in both);
    voicing decision error = share of all frames whose voiced/unvoiced decisions differ."""
    ref_f0, est_f0 = pitch_track(reference, sample_rate), pitch_track(estimate, sample_rate)
    n = min(len(ref_f0), len(est_f0))
    ref_f0, est_f0 = ref_f0[:n], est_f0[:n]
    ref_voiced, est_voiced = ref_f0 > 0, est_f0 > 0
    both = ref_voiced & est_voiced
    gpe = float(np.mean(np.abs(est_f0[both] - ref_f0[both]) > threshold * ref_f0[both])) if both.any() else math.nan
    vde = float(np.mean(ref_voiced != est_voiced)) if n else math.nan
    return {"gpe": gpe, "vde": vde}
