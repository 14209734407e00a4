"""`SemanticTokenizer`: audio -> semantic tokens (nearest k-means centroid of one layer's features).

    tok = SemanticTokenizer.from_pretrained()          # the shipped checkpoints/semantic/
    tokens = tok.encode(wav, sample_rate)             # LongTensor [B, T] at tok.frame_rate Hz

A tokenizer directory is an audiolm checkpoint of kind "semantic_tokenizer":
    config.json          TokenizerConfig (source, layer, K, frame rate, the SSL config)
    model.safetensors    our encoder's weights up to `layer` (empty for "hf" / "mfcc")
    kmeans.safetensors   centroids [K, D] (+ mean / std [D] when features are standardized)
    hf_encoder/          a transformers encoder (source "hf" only), via save_pretrained
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audiolm.core.audio import resample
from audiolm.core.checkpoint import (
    load_checkpoint,
    load_state_dict_checked,
    load_tensors,
    resolve_checkpoint_dir,
    save_checkpoint,
)
from audiolm.core.corpus import read_manifest
from audiolm.core.errors import AudioError, CheckpointError, ConfigError
from audiolm.core.paths import shipped_checkpoint
from audiolm.models.semantic.config import SAMPLE_RATE, SSL_KIND, SSLConfig, TokenizerConfig
from audiolm.models.semantic.encoder import SSLEncoder
from audiolm.models.semantic.features import MFCCFeatures, SSLFeatures, iter_corpus_features
from audiolm.models.semantic.hf_adapters import HFLayerFeatures
from audiolm.models.semantic.kmeans import FrameReservoir, assign, fit_kmeans

KIND = "semantic_tokenizer"
KMEANS_FILE = "kmeans.safetensors"
HF_DIR = "hf_encoder"


def default_checkpoint_dir() -> Path:
    return shipped_checkpoint("semantic")


def load_ssl_encoder(path: str | Path, num_layers: int | None = None) -> SSLEncoder:
    """Our encoder from an "ssl" checkpoint or training run, keeping layers 1..num_layers."""
    ckpt = load_checkpoint(resolve_checkpoint_dir(path), SSL_KIND, SSLConfig)
    config: SSLConfig = ckpt.config
    if num_layers is not None:
        if not 0 <= num_layers <= config.num_layers:
            raise ConfigError(f"{path}: layer {num_layers} out of range 0..{config.num_layers}")
        config = dataclasses.replace(config, num_layers=num_layers)
    encoder = SSLEncoder(config)
    state = {k[len("encoder.") :]: v for k, v in ckpt.state_dict.items() if k.startswith("encoder.")}
    state = {k: v for k, v in state.items() if not k.startswith("layers.") or int(k.split(".")[1]) < config.num_layers}
    load_state_dict_checked(encoder, state, str(ckpt.path))
    return encoder.eval()


def load_centroids(kmeans: torch.Tensor | str | Path) -> dict[str, torch.Tensor]:
    """A centroid tensor [K, D], or a path: a tokenizer directory, a .safetensors file with
    "centroids" (and optionally "mean"/"std"), a .npy array or a .pt tensor (weights_only)."""
    if isinstance(kmeans, torch.Tensor):
        return {"centroids": kmeans.detach().float().cpu()}
    path = Path(kmeans)
    if path.is_dir():
        path = path / KMEANS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: k-means centroids not found")
    if path.suffix == ".npy":
        return {"centroids": torch.from_numpy(np.load(path, allow_pickle=False)).float()}
    if path.suffix in (".pt", ".pth"):
        value = torch.load(path, map_location="cpu", weights_only=True)
        tensors = value if isinstance(value, dict) else {"centroids": value}
    else:
        tensors = load_tensors(path)
    if "centroids" not in tensors or tensors["centroids"].ndim != 2:
        raise CheckpointError(f"{path}: expected a 'centroids' tensor of shape [K, D]")
    for name in ("centroids", "mean", "std"):
        if name in tensors and not torch.isfinite(tensors[name].float()).all():
            raise CheckpointError(f"{path}: k-means {name} hold NaN or infinite values (a failed k-means fit?)")
    if "std" in tensors and (tensors["std"].float() <= 0).any():
        raise CheckpointError(f"{path}: k-means std must be positive")
    return {k: v.float() for k, v in tensors.items() if k in ("centroids", "mean", "std")}


class SemanticTokenizer(nn.Module):
    """Frame features of one source (our encoder layer, a transformers encoder layer, or MFCCs)
    mapped to the index of their nearest k-means centroid."""

    sample_rate: int = SAMPLE_RATE

    # the feature source: an SSL encoder layer, a transformers adapter or MFCCs (.dim, features)
    source: Any
    centroids: torch.Tensor  # buffer
    mean: torch.Tensor  # buffer
    std: torch.Tensor  # buffer

    def __init__(
        self, config: TokenizerConfig, source: nn.Module, kmeans: dict[str, torch.Tensor] | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.source = source.eval()
        self.register_buffer("centroids", torch.zeros(0, self.source.dim), persistent=False)
        self.register_buffer("mean", torch.zeros(self.source.dim), persistent=False)
        self.register_buffer("std", torch.ones(self.source.dim), persistent=False)
        if kmeans is not None:
            self.set_kmeans(kmeans)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, directory: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> SemanticTokenizer:
        """Load a tokenizer directory (default: the shipped checkpoints/semantic/)."""
        if directory is None:
            directory = default_checkpoint_dir()
            if not (directory / "config.json").is_file():
                raise CheckpointError(
                    f"{directory}: no shipped semantic tokenizer; train one with `audiolm train ssl` + "
                    "`audiolm train kmeans`, or pass a directory"
                )
        ckpt = load_checkpoint(directory, KIND, TokenizerConfig)
        config: TokenizerConfig = ckpt.config
        if config.source == "ssl":
            if config.ssl is None:
                raise CheckpointError(f"{directory}: source 'ssl' but no ssl config")
            encoder = SSLEncoder(config.ssl)
            load_state_dict_checked(encoder, ckpt.state_dict, str(directory))
            source: nn.Module = SSLFeatures(encoder, config.layer)
        elif config.source == "hf":
            source = HFLayerFeatures(Path(directory) / HF_DIR, config.layer)
        else:
            source = MFCCFeatures(config.frame_rate)
        tok = cls(config, source, load_centroids(Path(directory) / KMEANS_FILE))
        if tok.vocab_size != config.vocab_size:
            raise CheckpointError(
                f"{directory}: {tok.vocab_size} centroids but config says vocab_size {config.vocab_size}"
            )
        return tok.to(device)

    @classmethod
    def from_ssl(
        cls, path: str | Path, layer: int, kmeans: torch.Tensor | str | Path | None = None
    ) -> SemanticTokenizer:
        """Our encoder from an SSL run / checkpoint, truncated to `layer`; k-means optional
        (fit with `fit_kmeans`)."""
        encoder = load_ssl_encoder(path, layer)
        config = TokenizerConfig(
            source="ssl", layer=layer, vocab_size=0, frame_rate=encoder.config.frame_rate, ssl=encoder.config
        )
        return cls._with_kmeans(config, SSLFeatures(encoder, layer), kmeans)

    @classmethod
    def from_hf(
        cls, directory: str | Path, layer: int, kmeans: torch.Tensor | str | Path | None = None
    ) -> SemanticTokenizer:
        """HuBERT, wav2vec 2.0 or w2v-BERT 2.0 from a local transformers directory, layer `layer`,
        with `kmeans` centroids (a [K, D] tensor or a path; None = fit later with `fit_kmeans`)."""
        source = HFLayerFeatures(directory, layer)
        config = TokenizerConfig(source="hf", layer=layer, vocab_size=0, frame_rate=source.frame_rate)
        return cls._with_kmeans(config, source, kmeans)

    @classmethod
    def mfcc(cls, frame_rate: int = 50, kmeans: torch.Tensor | str | Path | None = None) -> SemanticTokenizer:
        """The baseline: standardized MFCC + Δ + ΔΔ, then k-means."""
        config = TokenizerConfig(source="mfcc", layer=0, vocab_size=0, frame_rate=frame_rate, standardize=True)
        return cls._with_kmeans(config, MFCCFeatures(frame_rate), kmeans)

    @classmethod
    def _with_kmeans(cls, config, source, kmeans) -> SemanticTokenizer:
        return cls(config, source, None if kmeans is None else load_centroids(kmeans))

    def set_kmeans(self, kmeans: dict[str, torch.Tensor]) -> None:
        centroids = kmeans["centroids"]
        if centroids.ndim != 2 or centroids.shape[1] != self.source.dim:
            raise CheckpointError(
                f"k-means centroids have shape {tuple(centroids.shape)}, expected [K, {self.source.dim}] for this encoder layer"
            )
        device = self.centroids.device
        self.centroids = centroids.float().to(device)
        self.mean = kmeans.get("mean", torch.zeros(centroids.shape[1])).float().to(device)
        self.std = kmeans.get("std", torch.ones(centroids.shape[1])).float().to(device)
        self.config = dataclasses.replace(self.config, vocab_size=centroids.shape[0])

    # -- properties ----------------------------------------------------------------------------

    @property
    def frame_rate(self) -> int:
        return self.config.frame_rate

    @property
    def vocab_size(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def layer(self) -> int:
        return self.config.layer

    # -- encoding ------------------------------------------------------------------------------

    def _as_batch(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """[N] / [B, N] / [B, C, N] at any rate -> [B, N] mono at 16 kHz on our device."""
        if isinstance(wav, np.ndarray):
            wav = torch.from_numpy(np.ascontiguousarray(wav))
        if not isinstance(wav, torch.Tensor) or not wav.is_floating_point():
            raise AudioError("wav must be a float tensor [N], [B, N] or [B, C, N]")
        if wav.ndim == 1:
            wav = wav[None]
        elif wav.ndim == 3:
            wav = wav.mean(dim=1)
        elif wav.ndim != 2:
            raise AudioError(f"wav must be [N], [B, N] or [B, C, N], got shape {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise AudioError("wav contains NaN or infinite samples")
        wav = resample(wav.float(), int(sample_rate), SAMPLE_RATE)
        return wav.to(self.centroids.device)

    @torch.no_grad()
    def features(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """The (standardized) features k-means sees: [B, T, D]."""
        feats = self.source(self._as_batch(wav, sample_rate)).float()
        return (feats - self.mean) / self.std

    @torch.no_grad()
    def encode(self, wav: torch.Tensor | np.ndarray, sample_rate: int, deduplicate: bool = False) -> torch.Tensor:
        """wav [N] / [B, N] / [B, C, N] at `sample_rate` -> tokens LongTensor [B, T] at
        `frame_rate` Hz, T = N_16k // hop. With `deduplicate`, runs of a repeated token collapse
        to one (AudioLM); rows of different lengths are then right-padded with -1."""
        if self.vocab_size == 0:
            raise ConfigError("this tokenizer has no k-means centroids yet; call fit_kmeans() first")
        feats = self.features(wav, sample_rate)  # [B, T, D]
        b, t, d = feats.shape
        tokens = assign(feats.reshape(b * t, d), self.centroids).view(b, t)
        return self.deduplicate(tokens) if deduplicate else tokens

    @staticmethod
    def deduplicate(tokens: torch.Tensor) -> torch.Tensor:
        """Collapse runs of repeated tokens per row: [B, T] -> [B, T'] (-1 right-padding)."""
        rows = [torch.unique_consecutive(row[row >= 0]) for row in tokens]
        out = torch.full(
            (len(rows), max((len(r) for r in rows), default=0)), -1, dtype=torch.long, device=tokens.device
        )
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    # -- k-means fitting -----------------------------------------------------------------------

    def fit_kmeans(
        self,
        corpus: str | Path,
        k: int,
        *,
        split: str = "train",
        max_frames: int = 400_000,
        steps: int = 300,
        seed: int = 0,
        device: str = "auto",
        progress: bool = True,
    ) -> SemanticTokenizer:
        """Fit K centroids on this source's features of the corpus `split` (speech and music).

        Features stream through a reservoir of `max_frames` frames (a uniform sample of every
        frame; mean and std over all of them), so memory does not grow with the corpus."""
        items = read_manifest(corpus, split=split)
        if not items:
            raise ConfigError(f"{corpus}: no {split} items to fit k-means on")
        reservoir = FrameReservoir(max_frames, seed=seed)
        for feats in iter_corpus_features(
            lambda w: {"x": self.source(w)},
            items,
            device=self.centroids.device,
            progress=progress,
            desc="k-means features",
        ):
            reservoir.add(feats["x"])
        if reservoir.seen < k:
            raise ConfigError(f"{corpus}: {reservoir.seen} feature frames in the {split} split, fewer than k={k}")
        return self.fit_kmeans_on(
            reservoir.frames(),
            k,
            max_frames=max_frames,
            steps=steps,
            seed=seed,
            device=device,
            progress=progress,
            stats=reservoir.mean_std(),
        )

    def fit_kmeans_on(
        self,
        feats: torch.Tensor,
        k: int,
        *,
        max_frames: int = 400_000,
        steps: int = 300,
        seed: int = 0,
        device: str = "auto",
        progress: bool = True,
        stats: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> SemanticTokenizer:
        """Fit K centroids on raw source features [N, D] (standardized first when configured).
        `stats`: (mean, std) of the population `feats` was sampled from (default: of `feats`)."""
        feats = feats.float()
        if not self.config.standardize:
            mean, std = torch.zeros(feats.shape[1]), torch.ones(feats.shape[1])
        elif stats is not None:
            mean, std = stats[0].float(), stats[1].float().clamp_min(1e-5)
        else:
            mean, std = feats.mean(0), feats.std(0).clamp_min(1e-5)
        if feats.shape[0] > max_frames:
            gen = torch.Generator().manual_seed(seed)
            feats = feats[torch.randperm(feats.shape[0], generator=gen)[:max_frames]]
        centroids = fit_kmeans((feats - mean) / std, k, steps=steps, seed=seed, device=device, progress=progress)
        self.set_kmeans({"centroids": centroids, "mean": mean, "std": std})
        return self

    # -- saving --------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write a directory `from_pretrained` loads (atomically replacing an existing one)."""
        if self.vocab_size == 0:
            raise ConfigError("cannot save a tokenizer without k-means centroids; call fit_kmeans() first")
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        state = self.source.encoder.state_dict() if self.config.source == "ssl" else {}
        kmeans = {"centroids": self.centroids.cpu(), "mean": self.mean.cpu(), "std": self.std.cpu()}
        meta = {"vocab_size": self.vocab_size, "frame_rate": self.frame_rate, "layer": self.layer}
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        try:
            staged = save_checkpoint(
                tmp / "t", KIND, self.config, state, extra_tensors={KMEANS_FILE: kmeans}, meta=meta
            )
            if self.config.source == "hf":
                self.source.save(staged / HF_DIR)
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(staged, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory
