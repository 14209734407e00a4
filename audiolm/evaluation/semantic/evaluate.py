"""How much phone information semantic tokens carry: cross-validated phone purity and PNMI.

For every frame (centre (t + ½) / frame_rate s) the label is the phone covering that instant.
Statistics are gathered on train-split frames and scored on valid-split frames (held-out
voices), within one phone inventory at a time (flite and espeak-ng name phones differently),
then averaged over inventories:

  purity = accuracy on valid of each token's majority phone on train (unseen token -> the
           most frequent phone);
  PNMI   = 1 - H(phone | token) / H(phone), both cross-entropies on valid frames:
           H(phone | token) under p(phone | token) = (c(token, phone) + α p(phone)) / (c(token) + α)
           estimated on train (a rarely seen token falls back to the prior, not to uniform),
           H(phone) under the train prior p(phone) (add-one smoothed over the inventory).

`evaluate_semantic` scores each candidate layer of our encoder and an MFCC + k-means baseline
with the same K and frame rate, k-means fitted on the train split, all in one run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from audiolm.core.corpus import read_manifest, read_phones
from audiolm.core.errors import ConfigError
from audiolm.models.semantic.features import MFCCFeatures, SSLFeatures, extract_corpus
from audiolm.models.semantic.kmeans import assign, fit_kmeans


def frame_labels(phones: list[tuple[float, float, str]], num_frames: int, frame_rate: int) -> list[str | None]:
    """The phone covering each frame centre (None where no phone interval covers it)."""
    if not phones:
        return [None] * num_frames
    starts = np.array([p[0] for p in phones])
    ends = np.array([p[1] for p in phones])
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    idx = np.searchsorted(starts, centres, side="right") - 1
    labels: list[str | None] = []
    for t, i in zip(centres, idx):
        labels.append(phones[i][2] if i >= 0 and t < ends[i] else None)
    return labels


@dataclass
class Scores:
    purity: float
    pnmi: float
    h_phone: float  # nats, cross-entropy of the train prior on valid frames
    h_phone_given_token: float
    train_frames: int
    valid_frames: int


def cross_validated_scores(
    train_tokens: np.ndarray,
    train_phones: np.ndarray,
    valid_tokens: np.ndarray,
    valid_phones: np.ndarray,
    vocab_size: int,
    num_phones: int,
    smoothing: float = 1.0,
) -> Scores:
    """Purity and PNMI of tokens (ints < vocab_size) against phone ids (ints < num_phones)."""
    counts = np.zeros((vocab_size, num_phones))
    np.add.at(counts, (train_tokens, train_phones), 1.0)
    phone_counts = counts.sum(0)
    prior = (phone_counts + 1.0) / (phone_counts.sum() + num_phones)  # [P]
    token_counts = counts.sum(1, keepdims=True)  # [K, 1]
    conditional = (counts + smoothing * prior[None]) / (token_counts + smoothing)  # [K, P]
    majority = np.where(token_counts[:, 0] > 0, counts.argmax(1), prior.argmax())  # [K]
    purity = float((majority[valid_tokens] == valid_phones).mean())
    h_phone = float(-np.log(prior[valid_phones]).mean())
    h_cond = float(-np.log(conditional[valid_tokens, valid_phones]).mean())
    return Scores(purity, 1.0 - h_cond / h_phone, h_phone, h_cond, len(train_tokens), len(valid_tokens))


def score_tokens(
    train: list[tuple[np.ndarray, str, list[str | None]]],
    valid: list[tuple[np.ndarray, str, list[str | None]]],
    vocab_size: int,
    smoothing: float = 1.0,
) -> dict[str, dict[str, float]]:
    """Scores per inventory and their mean. train / valid: [(tokens [T], inventory, labels [T])]."""
    result: dict[str, dict[str, float]] = {}
    for inventory in sorted({inv for _, inv, _ in train} & {inv for _, inv, _ in valid}):
        phone_ids: dict[str, int] = {}

        def flatten(rows, inventory=inventory, phone_ids=phone_ids):
            toks, labs = [], []
            for tokens, inv, labels in rows:
                if inv != inventory:
                    continue
                for tok, lab in zip(tokens.tolist(), labels):
                    if lab is not None:
                        toks.append(tok)
                        labs.append(phone_ids.setdefault(lab, len(phone_ids)))
            return np.array(toks, dtype=np.int64), np.array(labs, dtype=np.int64)

        tr_t, tr_p = flatten(train)
        va_t, va_p = flatten(valid)
        if len(tr_t) == 0 or len(va_t) == 0:
            continue
        s = cross_validated_scores(tr_t, tr_p, va_t, va_p, vocab_size, len(phone_ids), smoothing)
        result[inventory] = {
            "purity": s.purity,
            "pnmi": s.pnmi,
            "valid_frames": s.valid_frames,
            "train_frames": s.train_frames,
        }
    if result:
        result["mean"] = {m: float(np.mean([r[m] for r in result.values()])) for m in ("purity", "pnmi")}
    return result


def evaluate_semantic(
    corpus,
    *,
    encoder=None,
    layers: Iterable[int] | None = None,
    tokenizer=None,
    k: int = 256,
    frame_rate: int | None = None,
    smoothing: float = 1.0,
    max_kmeans_frames: int = 200_000,
    kmeans_steps: int = 300,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Score candidate layers of `encoder` (an SSLEncoder; k-means fitted per layer with K=k)
    and/or a fitted `tokenizer` (as is), plus the MFCC + k-means baseline at the same K and
    frame rate. Returns {"k", "frame_rate", "rows": [{"name", "purity", "pnmi", per-inventory}]}."""
    if tokenizer is not None:
        k, frame_rate = tokenizer.vocab_size, tokenizer.frame_rate
    elif encoder is not None:
        frame_rate = encoder.config.frame_rate
    frame_rate = frame_rate or 50
    fit_items = read_manifest(corpus, split="train")
    train_speech = [it for it in fit_items if it.kind == "speech" and it.phones]
    valid_speech = [it for it in read_manifest(corpus, split="valid", kind="speech") if it.phones]
    if not train_speech or not valid_speech:
        raise ConfigError(f"{corpus}: needs speech with phone alignments in both train and valid splits")

    mfcc = MFCCFeatures(frame_rate).to(device)
    layer_list: list[int] = []
    ssl = None
    if encoder is not None:
        layer_list = sorted(set(layers if layers is not None else range(encoder.num_layers + 1)))
        ssl = SSLFeatures(encoder.to(device), max(layer_list))

    def extract(wav: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = {"mfcc": mfcc(wav)}
        if ssl is not None:
            feats |= {f"layer {i}": f for i, f in ssl.layers(wav, layer_list).items()}
        if tokenizer is not None:
            feats["tokenizer"] = tokenizer.source(wav)
        return feats

    # one pass over every file; fit_items already holds the train speech
    items = fit_items + valid_speech
    feats = extract_corpus(extract, items, device=device, progress=progress, desc="eval features")
    n_fit = len(fit_items)
    train_index = [i for i, it in enumerate(fit_items) if it.kind == "speech" and it.phones]
    phones = {it.id: read_phones(it.phones_path) for it in train_speech + valid_speech if it.phones_path}

    rows: list[dict[str, Any]] = []
    for name, per_item in feats.items():
        if name == "tokenizer":
            mean, std, centroids = tokenizer.mean.cpu(), tokenizer.std.cpu(), tokenizer.centroids.cpu()
        else:
            fit = torch.cat(per_item[:n_fit]).float()
            if name == "mfcc":  # standardized, as SemanticTokenizer.mfcc does
                mean, std = fit.mean(0), fit.std(0).clamp_min(1e-5)
            else:
                mean, std = torch.zeros(fit.shape[1]), torch.ones(fit.shape[1])
            if fit.shape[0] > max_kmeans_frames:
                gen = torch.Generator().manual_seed(seed)
                fit = fit[torch.randperm(fit.shape[0], generator=gen)[:max_kmeans_frames]]
            centroids = fit_kmeans(
                (fit - mean) / std, k, steps=kmeans_steps, seed=seed, device=device, progress=progress
            )

        def rows_for(indices, item_list, offset, per_item=per_item, mean=mean, std=std, centroids=centroids):
            out = []
            for i, item in zip(indices, item_list):
                x = (per_item[offset + i].float() - mean) / std
                tokens = assign(x, centroids).numpy()
                inventory, ph = phones[item.id]
                out.append((tokens, inventory, frame_labels(ph, len(tokens), frame_rate)))
            return out

        train_rows = rows_for(train_index, [fit_items[i] for i in train_index], 0)
        valid_rows = rows_for(range(len(valid_speech)), valid_speech, n_fit)
        scores = score_tokens(train_rows, valid_rows, centroids.shape[0], smoothing)
        label = {
            "mfcc": "MFCC + k-means (baseline)",
            "tokenizer": f"tokenizer (layer {getattr(tokenizer, 'layer', '?')})",
        }.get(name, f"SSL {name}")
        rows.append(
            {
                "name": label,
                "source": name,
                **scores.get("mean", {"purity": float("nan"), "pnmi": float("nan")}),
                "inventories": {inv: s for inv, s in scores.items() if inv != "mean"},
            }
        )
    baseline = next(r for r in rows if r["source"] == "mfcc")
    for r in rows:
        r["purity_vs_mfcc"] = r["purity"] / baseline["purity"] if baseline["purity"] else float("nan")
        r["pnmi_vs_mfcc"] = r["pnmi"] / baseline["pnmi"] if baseline["pnmi"] > 0 else float("nan")
    return {"k": k, "frame_rate": frame_rate, "smoothing": smoothing, "rows": rows}


def format_table(result: dict) -> str:
    """A markdown table of `evaluate_semantic` output."""
    inventories = sorted({inv for r in result["rows"] for inv in r["inventories"]})
    head = ["source", "purity", "PNMI", "purity ×MFCC", "PNMI ×MFCC"]
    for inv in inventories:
        head += [f"purity {inv}", f"PNMI {inv}"]
    lines = [
        f"Cross-validated phone purity / PNMI (train-split statistics, valid-split frames), K={result['k']}, {result['frame_rate']} Hz",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in result["rows"]:
        cells = [
            r["name"],
            f"{r['purity']:.3f}",
            f"{r['pnmi']:.3f}",
            f"{r['purity_vs_mfcc']:.2f}",
            f"{r['pnmi_vs_mfcc']:.2f}",
        ]
        for inv in inventories:
            s = r["inventories"].get(inv)
            cells += [f"{s['purity']:.3f}", f"{s['pnmi']:.3f}"] if s else ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
