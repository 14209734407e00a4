"""`audiolm eval codec`: the codec against Opus at the same bit rates, speech and music apart.

For every clip of the chosen corpus split and every bit rate, the clip (mono, 24 kHz) goes
through our codec and through Opus (hard CBR), and both reconstructions are scored against
the original:

    speech: mel distance, SI-SDR, STOI, wideband PESQ (16 kHz), ViSQOL speech mode (16 kHz),
            and the listener judges (audiolm.evaluation.judges): GE2E speaker similarity to the
            original, DNSMOS OVRL / SIG / BAK, F0 gross pitch error and voicing decision error
    music:  mel distance, SI-SDR, ViSQOL audio mode (48 kHz)

With `diagnose`, speech also gets the loss split of loss_split.py: ViSQOL of four hybrids
(only the codec's magnitude, phase, envelope or fine structure) and the envelope error in dB.
(STOI, PESQ and the judges model speech; they are not reported for music.) With the judges on,
a row "original" gives DNSMOS of the uncoded clips, the ceiling for both codecs. Scores are
averaged per (system, bit rate, kind); NaN scores (PESQ on a clip without detectable speech,
GPE on a clip with no frame voiced in both) are left out of the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from audiolm.core.audio import load_audio
from audiolm.evaluation import judges as J
from audiolm.evaluation.codec.loss_split import envelope_error_db, spectral_hybrids
from audiolm.evaluation.codec.opus import opus_round_trip
from audiolm.models.codec import metrics as M

SPEECH_METRICS = (
    "mel_distance",
    "si_sdr",
    "stoi",
    "pesq_wb",
    "visqol",
    "speaker_sim",
    "dnsmos_ovrl",
    "dnsmos_sig",
    "dnsmos_bak",
    "f0_gpe",
    "f0_vde",
    "envelope_db",
    "visqol_magnitude",
    "visqol_phase",
    "visqol_envelope",
    "visqol_fine",
)
MUSIC_METRICS = ("mel_distance", "si_sdr", "visqol")
HIGHER_IS_BETTER = {
    "mel_distance": False,
    "si_sdr": True,
    "stoi": True,
    "pesq_wb": True,
    "visqol": True,
    "speaker_sim": True,
    "dnsmos_ovrl": True,
    "dnsmos_sig": True,
    "dnsmos_bak": True,
    "f0_gpe": False,
    "f0_vde": False,
    "envelope_db": False,
    "visqol_magnitude": True,
    "visqol_phase": True,
    "visqol_envelope": True,
    "visqol_fine": True,
}


@dataclass
class Row:
    system: str  # "audiolm" or "opus"
    kbps: float
    kind: str  # "speech" or "music"
    scores: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"system": self.system, "kbps": self.kbps, "kind": self.kind}
        for name, values in self.scores.items():
            finite = [v for v in values if math.isfinite(v)]
            out[name] = float(np.mean(finite)) if finite else None
        out["clips"] = max((len(v) for v in self.scores.values()), default=0)
        return out


def judge_scores(reference: torch.Tensor | None, estimate: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """The listener judges for one speech clip (reference None: DNSMOS of `estimate` alone)."""
    scores = {f"dnsmos_{k}": v for k, v in J.dnsmos(estimate, sample_rate).items() if k != "p808"}
    if reference is not None:
        scores["speaker_sim"] = J.speaker_similarity(reference, estimate, sample_rate)
        f0 = J.f0_errors(reference, estimate, sample_rate)
        scores["f0_gpe"], scores["f0_vde"] = f0["gpe"], f0["vde"]
    return scores


def score_pair(
    reference: torch.Tensor,
    estimate: torch.Tensor,
    sample_rate: int,
    kind: str,
    use_visqol: bool = True,
    use_judges: bool = False,
    diagnose: bool = False,
) -> dict[str, float]:
    """All metrics for one clip; reference/estimate are mono [N] at `sample_rate`."""
    scores = {
        "mel_distance": M.mel_distance(reference, estimate, sample_rate),
        "si_sdr": M.si_sdr(reference, estimate),
    }
    if kind == "speech":
        scores["stoi"] = M.stoi(reference, estimate, sample_rate)
        scores["pesq_wb"] = M.pesq_wb(reference, estimate, sample_rate)
    if use_visqol:
        scores["visqol"] = M.visqol(reference, estimate, sample_rate, "speech" if kind == "speech" else "audio")
    if use_judges and kind == "speech":
        scores.update(judge_scores(reference, estimate, sample_rate))
    if diagnose and kind == "speech":
        scores["envelope_db"] = envelope_error_db(reference, estimate, sample_rate)
        if use_visqol:
            for part, hybrid in spectral_hybrids(reference, estimate, sample_rate).items():
                scores[f"visqol_{part}"] = M.visqol(reference, hybrid, sample_rate, "speech")
    return scores


def evaluate_codec(
    codec,
    items,
    bandwidths: list[float],
    *,
    opus: bool = True,
    use_visqol: bool = True,
    use_judges: bool = True,
    diagnose: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Score `codec` (and Opus) on corpus `items` (CorpusItem list) at each bit rate."""
    rows: dict[tuple[str, float, str], Row] = {}
    systems = ["audiolm"] + (["opus"] if opus else [])
    bar = tqdm(
        total=len(items) * len(bandwidths), desc="eval codec", unit="clip", disable=not progress, dynamic_ncols=True
    )
    for item in items:
        wav, sr = load_audio(item.audio_path, sample_rate=codec.sample_rate, mono=True)
        reference = wav[0]  # [N]
        if use_judges and item.kind == "speech":
            row = rows.setdefault(("original", 0.0, item.kind), Row("original", 0.0, item.kind))
            for name, value in judge_scores(None, reference, sr).items():
                row.scores.setdefault(name, []).append(value)
        for kbps in bandwidths:
            codes = codec.encode(reference, sr, kbps=kbps)  # [1, Q, T]
            outputs = {"audiolm": codec.decode(codes)[0, 0, : reference.numel()].cpu()}
            if opus:
                outputs["opus"] = opus_round_trip(reference, sr, kbps)
            for system in systems:
                row = rows.setdefault((system, kbps, item.kind), Row(system, kbps, item.kind))
                scores = score_pair(reference, outputs[system], sr, item.kind, use_visqol, use_judges, diagnose)
                for name, value in scores.items():
                    row.scores.setdefault(name, []).append(value)
            bar.update(1)
    bar.close()
    order = {"speech": 0, "music": 1}
    systems = ["original"] + systems
    ordered = sorted(rows.values(), key=lambda r: (order.get(r.kind, 2), r.kbps, systems.index(r.system)))
    return [row.summary() for row in ordered]


def format_table(results: list[dict[str, Any]], title: str = "") -> str:
    """Markdown: one table per kind, a row per (bit rate, system), a column per metric."""
    lines = [f"# {title}", ""] if title else []
    for kind, metrics in (("speech", SPEECH_METRICS), ("music", MUSIC_METRICS)):
        rows = [r for r in results if r["kind"] == kind]
        if not rows:
            continue
        present = [m for m in metrics if any(r.get(m) is not None for r in rows)]
        arrows = {m: ("↑" if HIGHER_IS_BETTER[m] else "↓") for m in present}
        lines.append(f"## {kind} ({rows[0]['clips']} clips)")
        lines.append("")
        lines.append("| kbps | system | " + " | ".join(f"{m} {arrows[m]}" for m in present) + " |")
        lines.append("|---:|---|" + "---:|" * len(present))
        for r in rows:
            cells = ["—" if r.get(m) is None else f"{r[m]:.3f}" for m in present]
            kbps = "—" if r["system"] == "original" else f"{r['kbps']:g}"
            lines.append(f"| {kbps} | {r['system']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
