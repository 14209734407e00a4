"""`audiolm eval codec`: the codec against Opus at the same bit rates, speech and music apart.

For every clip of the chosen corpus split and every bit rate, the clip (mono, 24 kHz) goes
through our codec and through Opus (hard CBR), and both reconstructions are scored against
the original:

    speech: mel distance, SI-SDR, STOI, wideband PESQ (16 kHz), ViSQOL speech mode (16 kHz)
    music:  mel distance, SI-SDR, ViSQOL audio mode (48 kHz)

(STOI and PESQ are models of speech intelligibility and quality; they are not reported for
music.) Scores are averaged per (system, bit rate, kind); NaN scores (PESQ on a clip without
detectable speech) are left out of the mean and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from audiolm.core.audio import load_audio
from audiolm.evaluation.codec.opus import opus_round_trip
from audiolm.models.codec import metrics as M
from tqdm.auto import tqdm

SPEECH_METRICS = ("mel_distance", "si_sdr", "stoi", "pesq_wb", "visqol")
MUSIC_METRICS = ("mel_distance", "si_sdr", "visqol")
HIGHER_IS_BETTER = {"mel_distance": False, "si_sdr": True, "stoi": True, "pesq_wb": True, "visqol": True}


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


def score_pair(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int, kind: str,
               use_visqol: bool = True) -> dict[str, float]:
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
    return scores


def evaluate_codec(codec, items, bandwidths: list[float], *, opus: bool = True, use_visqol: bool = True,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Score `codec` (and Opus) on corpus `items` (CorpusItem list) at each bit rate."""
    rows: dict[tuple[str, float, str], Row] = {}
    systems = ["audiolm"] + (["opus"] if opus else [])
    bar = tqdm(total=len(items) * len(bandwidths), desc="eval codec", unit="clip",
               disable=not progress, dynamic_ncols=True)
    for item in items:
        wav, sr = load_audio(item.audio_path, sample_rate=codec.sample_rate, mono=True)
        reference = wav[0]  # [N]
        for kbps in bandwidths:
            codes = codec.encode(reference, sr, kbps=kbps)  # [1, Q, T]
            outputs = {"audiolm": codec.decode(codes)[0, 0, : reference.numel()].cpu()}
            if opus:
                outputs["opus"] = opus_round_trip(reference, sr, kbps)
            for system in systems:
                row = rows.setdefault((system, kbps, item.kind), Row(system, kbps, item.kind))
                for name, value in score_pair(reference, outputs[system], sr, item.kind, use_visqol).items():
                    row.scores.setdefault(name, []).append(value)
            bar.update(1)
    bar.close()
    order = {"speech": 0, "music": 1}
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
            lines.append(f"| {r['kbps']:g} | {r['system']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
