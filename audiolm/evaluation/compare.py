"""`audiolm bench compare`: the token pipeline next to raw-sample WaveNet, on the same held-out clips.

For each kind (speech, music) and each of N valid clips:

(a) token pipeline   continue the first `prompt_seconds` by `seconds`            (continuation)
(b) WaveNet          continue the same raw prompt sample by sample (`--wavenet`) (continuation)
(c) WaveNet vocoder  the clip's codec tokens -> audio (`--vocoder`, by default the shipped
                     checkpoints/wavenet_vocoder), next to the codec's own decoder
                     on the same tokens                                          (resynthesis)

Figures: real-time factor (wall seconds / seconds of audio made; below 1 is faster than real
time), acoustic consistency for continuations (how often a continuation is closest to its own
prompt among the N, as in `audiolm eval continuation`; the real continuation gives the ceiling,
1/N is chance) and mel distance to the original for resynthesis. Mel distances are computed at
the lower of the codec's and the vocoder's sample rates so the two decoders are compared on the
same band.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from audiolm.core.audio import resample
from audiolm.core.errors import ConfigError
from audiolm.core.paths import shipped_checkpoint
from audiolm.core.timing import Timer
from audiolm.evaluation.continuation import KINDS, MIN_REAL_SECONDS, embed, load_clips, retrieval_accuracy
from audiolm.models.codec.metrics import mel_distance


def _resample(wav: torch.Tensor, from_sr: int, to_sr: int) -> torch.Tensor:
    return wav if from_sr == to_sr else resample(wav, from_sr, to_sr)


def _gc_for(model, item) -> int | None:
    """The global-conditioning id of the clip's speaker / instrument (0 when unknown)."""
    cfg = model.config
    if not cfg.has_gc:
        return None
    labels = list(cfg.gc_labels)
    return labels.index(item.speaker) if item.speaker in labels else 0


def resolve_vocoder(arg: str | None) -> str | None:
    """`--vocoder` as given; unset: the shipped checkpoints/wavenet_vocoder if there is one;
    "none": no vocoder rows."""
    if arg is None:
        shipped = shipped_checkpoint("wavenet_vocoder")
        return str(shipped) if (shipped / "config.json").is_file() else None
    return None if arg.lower() == "none" else arg


def check_wavenet(model, where: str) -> None:
    if model.config.has_lc:
        raise ConfigError(f"{where}: this WaveNet is a vocoder (conditioned on codec codes); pass it as --vocoder")


def vocoder_kbps(vocoder, codec, where: str) -> float:
    """The codec bit rate whose codes the vocoder was trained on; checks rates and codebooks."""
    cfg = vocoder.config
    if not cfg.has_lc:
        raise ConfigError(f"{where}: this WaveNet has no local conditioning (lc_n_q 0): it is not a vocoder")
    if cfg.lc_codebook_size != codec.codebook_size:
        raise ConfigError(
            f"{where}: vocoder codebooks have {cfg.lc_codebook_size} entries, the codec {codec.codebook_size}"
        )
    if abs(cfg.sample_rate / cfg.lc_hop - codec.frame_rate) > 1e-6:
        raise ConfigError(
            f"{where}: vocoder expects {cfg.sample_rate / cfg.lc_hop:g} Hz codec frames, the codec gives {codec.frame_rate:g} Hz"
        )
    for kbps in codec.bandwidths:
        if codec.levels_for_kbps(kbps) == cfg.lc_n_q:
            return kbps
    raise ConfigError(f"{where}: vocoder takes {cfg.lc_n_q} codec levels; no bit rate of the codec gives that")


def compare(
    lm,
    corpus,
    *,
    wavenet=None,
    vocoder=None,
    split: str = "valid",
    n: int = 8,
    prompt_seconds: float = 3.0,
    seconds: float = 2.0,
    seed: int = 0,
    embedding: str = "codec",
    progress: bool = True,
) -> dict[str, Any]:
    """{"rows": [{"kind", "system", "task", "rtf", "mel_distance", "consistency", "n"}], ...}."""
    if n < 1 or not (prompt_seconds > 0 and seconds > 0):
        raise ConfigError("n, prompt_seconds and seconds must be positive")
    if wavenet is not None:
        check_wavenet(wavenet, "--wavenet")
    kbps = vocoder_kbps(vocoder, lm.codec, "--vocoder") if vocoder is not None else None
    sr = lm.sample_rate
    real_min = min(seconds, MIN_REAL_SECONDS)
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        items, clips = load_clips(corpus, split, kind, n, sr, prompt_seconds, seconds)
        if not clips:
            continue
        cut = int(prompt_seconds * sr)
        emb: dict[str, list[torch.Tensor]] = {"prompt": [], "pipeline": [], "wavenet": [], "real": []}
        wall = {"pipeline": 0.0, "wavenet": 0.0, "codec": 0.0, "vocoder": 0.0}
        made = dict.fromkeys(wall, 0.0)
        mel: dict[str, list[float]] = {"codec": [], "vocoder": []}
        steps = len(clips) * (1 + (wavenet is not None) + (vocoder is not None))
        bar = tqdm(total=steps, desc=f"compare {kind}", unit="clip", disable=not progress, dynamic_ncols=True)
        for i, (item, clip) in enumerate(zip(items, clips)):
            prompt = clip.audio[:, :cut]  # [1, P]
            emb["prompt"].append(embed(lm, prompt, embedding))
            emb["real"].append(embed(lm, clip.audio[:, cut:], embedding))
            # (a) the token pipeline
            with Timer(lm.device) as t:
                new = lm.continue_audio(prompt, sr, seconds=seconds, seed=seed + i, continuation_only=True)[0]  # [1, N]
            wall["pipeline"] += t.seconds
            made["pipeline"] += new.shape[-1] / sr
            emb["pipeline"].append(embed(lm, new, embedding))
            bar.update(1)
            # (b) WaveNet continuation of the raw prompt
            if wavenet is not None:
                wsr = wavenet.sample_rate
                ids = wavenet.encode_audio(_resample(prompt, sr, wsr)[0])  # [P']
                n_new = int(seconds * wsr)
                with Timer(wavenet.device) as t:
                    out = wavenet.generate(n_new, prompt=ids, gc=_gc_for(wavenet, item), seed=seed + i)  # [1, P' + n]
                wall["wavenet"] += t.seconds
                made["wavenet"] += n_new / wsr
                cont = wavenet.decode_audio(out[:, ids.shape[-1] :].cpu()).float()  # [1, n]
                emb["wavenet"].append(embed(lm, _resample(cont, wsr, sr), embedding))
                bar.update(1)
            # (c) resynthesis of the clip's first `seconds` from codec tokens
            if vocoder is not None:
                vsr = vocoder.sample_rate
                hop = lm.codec.hop_length
                audio = clip.audio[:, : int(seconds * sr) // hop * hop]  # [1, N] whole frames
                with torch.inference_mode():
                    codes = lm.codec.encode(audio[None].to(lm.codec.device), sr, kbps=kbps)  # [1, Q, T]
                    with Timer(lm.codec.device) as t:
                        decoded = lm.codec.decode(codes)[0].cpu()  # [1, N]
                wall["codec"] += t.seconds
                made["codec"] += audio.shape[-1] / sr
                with Timer(vocoder.device) as t:
                    ids = vocoder.generate(
                        codes.shape[-1] * vocoder.config.lc_hop,
                        codes=codes.to(vocoder.device),
                        gc=_gc_for(vocoder, item),
                        seed=seed + i,
                    )
                wall["vocoder"] += t.seconds
                made["vocoder"] += ids.shape[-1] / vsr
                vocoded = vocoder.decode_audio(ids.cpu()).float()  # [1, N'] at vsr
                rate = min(sr, vsr)
                reference = _resample(audio, sr, rate)
                mel["codec"].append(mel_distance(reference, _resample(decoded, sr, rate), rate))
                mel["vocoder"].append(mel_distance(reference, _resample(vocoded, vsr, rate), rate))
                bar.update(1)
        bar.close()
        prompts = torch.stack(emb["prompt"])
        N = len(clips)

        def add(system: str, task: str, rtf=None, mel_value=None, consistency=None, kind=kind, N=N) -> None:
            rows.append(
                {
                    "kind": kind,
                    "n": N,
                    "system": system,
                    "task": task,
                    "rtf": rtf,
                    "mel_distance": mel_value,
                    "consistency": consistency,
                }
            )

        add(
            "token pipeline",
            "continuation",
            wall["pipeline"] / made["pipeline"],
            consistency=retrieval_accuracy(prompts, torch.stack(emb["pipeline"])),
        )
        if wavenet is not None:
            add(
                "WaveNet",
                "continuation",
                wall["wavenet"] / made["wavenet"],
                consistency=retrieval_accuracy(prompts, torch.stack(emb["wavenet"])),
            )
        add("real audio", "continuation", consistency=retrieval_accuracy(prompts, torch.stack(emb["real"])))
        add("chance (1/N)", "continuation", consistency=1.0 / N)
        if vocoder is not None:
            add("codec decoder", "resynthesis", wall["codec"] / made["codec"], sum(mel["codec"]) / N)
            add("WaveNet vocoder", "resynthesis", wall["vocoder"] / made["vocoder"], sum(mel["vocoder"]) / N)
    if not rows:
        raise ConfigError(
            f"{corpus}: no {split} clip is at least {prompt_seconds + real_min:g} s long after its leading silence"
        )
    return {
        "pipeline": lm.recipe.name,
        "split": split,
        "n": n,
        "prompt_seconds": prompt_seconds,
        "seconds": seconds,
        "seed": seed,
        "embedding": embedding,
        "rows": rows,
    }


def format_table(report: dict[str, Any], machine: str) -> str:
    def cell(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"Pipeline `{report['pipeline']}` vs WaveNet on the {report['split']} split ({machine}): "
        f"{report['prompt_seconds']:g} s prompts continued by {report['seconds']:g} s; resynthesis of "
        f"{report['seconds']:g} s. RTF = wall s / audio s (lower is faster); consistency = continuations "
        f"closest to their own prompt ({report['embedding']} embedding).",
        "",
        "| kind | N | system | task | RTF | mel distance | consistency |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['kind']} | {r['n']} | {r['system']} | {r['task']} | {cell(r['rtf'])} | "
            f"{cell(r['mel_distance'])} | {cell(r['consistency'], 2)} |"
        )
    return "\n".join(lines) + "\n"
