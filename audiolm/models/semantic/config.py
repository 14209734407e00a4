"""Configs of the semantic side: the SSL encoder + its w2v-BERT pretraining, and the tokenizer.

Both are plain dataclasses written as JSON inside checkpoints (`audiolm.core.checkpoint`), so an
encoder or a tokenizer rebuilds from its directory alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SAMPLE_RATE = 16000  # every semantic encoder here reads 16 kHz mono audio
SSL_KIND = "ssl"  # checkpoint kind of an exported pretraining model (W2vBertModel)


@dataclass
class SSLConfig:
    """A small conformer encoder over 16 kHz audio, pretrained with the two w2v-BERT losses.

    Sized for CPU training on about an hour of speech + music: ~5 M parameters by default.
    Layer numbering (used by `layer` everywhere): 0 = the projected front-end features that
    enter the conformer, i = the output of conformer layer i (1..num_layers).
    """

    sample_rate: int = SAMPLE_RATE
    frame_rate: int = 25  # output frames per second: 25 (hop 640, as AudioLM) or 50 (hop 320)
    # front-end: "mel" = log-mel frames (25 ms / 10 ms) stacked to the frame rate, as in
    # w2v-BERT; "mfcc" = 13 MFCCs + Δ + ΔΔ stacked the same way (cepstra drop the pitch
    # harmonics that 80 log-mel bins resolve: on a corpus of few voices, mel-input layers
    # cluster by speaker; BENCHMARKS.md, "Semantic tokens"); "conv" = the wav2vec 2.0 convolutional waveform
    # encoder (strides 5,2,2,2,2,2,2[,2]).
    frontend: Literal["mel", "mfcc", "conv"] = "mfcc"
    n_mels: int = 80
    feature_dim: int = 256  # front-end output channels; also the quantizer's input
    conv_channels: int = 128  # channels of the inner "conv" front-end layers
    hidden_size: int = 192
    num_layers: int = 6
    contrastive_layers: int = 3  # the first N layers form the contrastive module, the rest MLM
    num_heads: int = 4
    intermediate_size: int = 768
    depthwise_kernel: int = 15  # conformer convolution module kernel (odd)
    dropout: float = 0.0  # dropout costs ~20% of a CPU step; a few epochs of data do not need it
    # Gumbel product quantizer over the front-end features: targets for both losses
    codebook_groups: int = 2
    codebook_size: int = 64  # entries per group
    codevector_dim: int = 128
    codebook_logit_scale: float = 4.0  # std of the quantizer's initial logits (wav2vec 2.0: ~16)
    gumbel_noise_scale: float = 0.0  # Gumbel noise in the training samples (1 = Gumbel-softmax; see quantizer.py)
    # masking (spans of masked frames, replaced by a learned vector before the conformer)
    mask_prob: float = 0.5  # span starts per frame * span length (an upper bound on coverage)
    mask_span_seconds: float = 0.2
    # losses
    # MLM targets: 0 = the Gumbel quantizer's ids (w2v-BERT); K > 0 = ids from an external
    # K-cluster tokenizer (HuBERT-style: k-means of MFCCs, then of an earlier run's layer).
    # Cluster targets give the MLM module a stable, phone-correlated task from step 0; the
    # quantizer's own ids can collapse on short CPU runs (BENCHMARKS.md, "Semantic tokens").
    target_clusters: int = 0
    contrastive_weight: float = 1.0  # scales contrastive + diversity (0 = HuBERT-style MLM only)
    num_negatives: int = 50
    contrastive_temperature: float = 0.1
    diversity_weight: float = 0.1
    mlm_weight: float = 1.0
    # MLM loss on unmasked frames too, relative to masked ones (HuBERT's alpha is 0 for masked-only;
    # a small corpus gains from the direct frame -> target signal)
    mlm_unmasked_weight: float = 0.5
    gumbel_max_temperature: float = 2.0
    gumbel_min_temperature: float = 0.5
    gumbel_decay_steps: int = 1500  # exponential decay from max to min over this many steps
    # training crops
    crop_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.sample_rate != SAMPLE_RATE:
            raise ValueError(f"sample_rate must be {SAMPLE_RATE}, got {self.sample_rate}")
        if self.frame_rate not in (25, 50):
            raise ValueError(f"frame_rate must be 25 or 50, got {self.frame_rate}")
        if self.num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {self.num_layers}")
        if self.depthwise_kernel % 2 != 1:
            raise ValueError(f"depthwise_kernel must be odd, got {self.depthwise_kernel}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        if self.frontend not in ("mel", "mfcc", "conv"):
            raise ValueError(f"frontend must be mel, mfcc or conv, got {self.frontend!r}")
        if self.mlm_unmasked_weight < 0:
            raise ValueError(f"mlm_unmasked_weight must be >= 0, got {self.mlm_unmasked_weight}")
        if self.target_clusters < 0:
            raise ValueError(f"target_clusters must be >= 0, got {self.target_clusters}")
        if self.contrastive_weight < 0:
            raise ValueError(f"contrastive_weight must be >= 0, got {self.contrastive_weight}")
        if self.codevector_dim % self.codebook_groups:
            raise ValueError(
                f"codevector_dim {self.codevector_dim} must be divisible by codebook_groups {self.codebook_groups}"
            )

    @property
    def hop_length(self) -> int:
        """Samples per output frame (320 at 50 Hz, 640 at 25 Hz)."""
        return self.sample_rate // self.frame_rate

    @property
    def mask_span_frames(self) -> int:
        return max(1, round(self.mask_span_seconds * self.frame_rate))

    def check_pretraining(self) -> None:
        """Pretraining needs both modules: 1 <= contrastive_layers < num_layers. (A tokenizer's
        encoder, truncated to its layer, need not satisfy this.)"""
        if not 1 <= self.contrastive_layers < self.num_layers:
            raise ValueError(
                f"contrastive_layers must be in [1, num_layers), got {self.contrastive_layers} of {self.num_layers}"
            )


@dataclass
class TokenizerConfig:
    """What a `SemanticTokenizer` directory holds besides tensors.

    source "ssl": our encoder (`ssl` config, truncated to `layer` layers) + k-means;
    source "hf":  a transformers encoder saved under `hf_encoder/` + k-means;
    source "mfcc": MFCC(+deltas) features + k-means (the baseline).
    """

    source: Literal["ssl", "hf", "mfcc"]
    layer: int
    vocab_size: int  # K, the number of k-means centroids
    frame_rate: int
    sample_rate: int = SAMPLE_RATE
    standardize: bool = False  # features are standardized with train mean/std before k-means
    ssl: SSLConfig | None = None
