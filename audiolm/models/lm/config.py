"""Configs of the stage language models: the transformer's shape and the stage's token layout.

`TransformerConfig` is the network; `StageConfig` says which stage it is and how audio tokens
become the model's input (see `layouts.py` for the semantic, coarse and AR fine layouts and
`fine_bark.py` for the Bark-style fine layout).
A stage checkpoint stores the `StageConfig` as its config.json, so a model rebuilds from its
directory alone. Fields that describe the token sources (semantic vocabulary, codebook size,
number of RVQ levels, frame rates) default to 0 and are filled from the token shards' index
when training starts (`complete_stage_config`), so a user's config file only needs sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

StageName = Literal["semantic", "coarse", "fine"]
STAGES: tuple[StageName, ...] = ("semantic", "coarse", "fine")
FINE_STYLES = ("ar", "bark")


@dataclass
class TransformerConfig:
    """A decoder-only transformer: pre-norm RMSNorm, RoPE, SDPA attention, SwiGLU/GELU MLP."""

    vocab_size: int = 0  # 0: filled in from the stage layout
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    mlp: Literal["swiglu", "gelu"] = "swiglu"
    hidden_dim: int = 0  # MLP width; 0: 8/3 * dim for SwiGLU (rounded up to 64), 4 * dim for GELU
    max_seq_len: int = 512  # the trained context; generation slides a window of this length
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    dropout: float = 0.0
    causal: bool = True  # False: every position attends to every other (the Bark-style fine stage)

    def __post_init__(self) -> None:
        for name, low, high in (
            ("vocab_size", 0, 1 << 24),
            ("dim", 2, 1 << 16),
            ("n_layers", 1, 512),
            ("n_heads", 1, 1024),
            ("hidden_dim", 0, 1 << 18),
            ("max_seq_len", 2, 1 << 20),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
        for name in ("rope_base", "norm_eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.mlp not in ("swiglu", "gelu"):
            raise ValueError(f"mlp must be 'swiglu' or 'gelu', got {self.mlp!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"head dim {self.dim // self.n_heads} must be even for RoPE")
        if self.max_seq_len < 2:
            raise ValueError(f"max_seq_len must be at least 2, got {self.max_seq_len}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def mlp_hidden_dim(self) -> int:
        if self.hidden_dim:
            return self.hidden_dim
        if self.mlp == "gelu":
            return 4 * self.dim
        return 64 * -(-(8 * self.dim // 3) // 64)


@dataclass
class StageConfig:
    """One LM stage: its token layout and its transformer.

    The stage's sequence length is `model.max_seq_len`. Coarse and fine stages work on windows
    of `window_frames` acoustic frames (0: as many as fit in `max_seq_len`).
    """

    stage: StageName = "semantic"
    model: TransformerConfig = field(default_factory=TransformerConfig)
    # token sources; 0 = read from the token shards' index
    semantic_vocab: int = 0
    semantic_frame_rate: float = 0.0
    codebook_size: int = 0
    acoustic_frame_rate: float = 0.0
    n_q: int = 0  # acoustic levels in the shards; the fine stage predicts coarse_levels..n_q-1
    # layout
    coarse_levels: int = 2  # Qc: levels modelled by the coarse stage
    dedup_semantic: bool = False  # semantic stage: drop consecutive repeats (loses timing)
    window_frames: int = 0  # coarse / fine: acoustic frames per training window
    # fine stage: "ar" = AudioLM-style autoregressive over a flat window (`layouts.FineLayout`);
    # "bark" = non-causal, one pass per fine level (`fine_bark.py`). See BENCHMARKS.md.
    fine_style: Literal["ar", "bark"] = "ar"
    # training data: windows may run across the utterances of one voice (speaker label), joined
    # in token-shard order, so the stage sees speech resume after an utterance's final silence
    # (single-sentence clips otherwise teach it to stop; BENCHMARKS.md, "Session 7")
    join_voice: bool = False

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.fine_style not in FINE_STYLES:
            raise ValueError(f"fine_style must be one of {FINE_STYLES}, got {self.fine_style!r}")
        if self.fine_style != "ar" and self.stage != "fine":
            raise ValueError(f"fine_style {self.fine_style!r} is only for the fine stage, not {self.stage!r}")
        if self.coarse_levels < 1:
            raise ValueError(f"coarse_levels must be at least 1, got {self.coarse_levels}")
        for name in ("semantic_vocab", "codebook_size", "n_q", "coarse_levels", "window_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 24:
                raise ValueError(f"{name} must be an integer in [0, {1 << 24}], got {value!r}")
        for name in ("semantic_frame_rate", "acoustic_frame_rate"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 10_000):
                raise ValueError(f"{name} must be a finite rate in [0, 10000] Hz, got {value!r}")

    # keys a trained stage's config.json must hold: a missing one would silently take today's
    # default (a missing model.causal ran the fine stage with the wrong attention)
    SAVED_KEYS: ClassVar[tuple[str, ...]] = (
        "stage",
        "semantic_vocab",
        "semantic_frame_rate",
        "codebook_size",
        "acoustic_frame_rate",
        "n_q",
        "coarse_levels",
        "window_frames",
        "fine_style",
        "model.vocab_size",
        "model.dim",
        "model.n_layers",
        "model.n_heads",
        "model.max_seq_len",
        "model.causal",
        "model.mlp",
    )

    def check_saved(self) -> None:
        """A trained stage's config must be complete: every token source known, a window, the
        attention its style needs. ValueError naming the first problem."""
        need = {
            "semantic": ("semantic_vocab", "semantic_frame_rate"),
            "coarse": (
                "semantic_vocab",
                "semantic_frame_rate",
                "codebook_size",
                "acoustic_frame_rate",
                "n_q",
                "window_frames",
            ),
            "fine": ("codebook_size", "acoustic_frame_rate", "n_q", "window_frames"),
        }[self.stage]
        for name in need + ("model.vocab_size",):
            value = self.model.vocab_size if name == "model.vocab_size" else getattr(self, name)
            if not value > 0:
                raise ValueError(f"a trained {self.stage} stage needs {name} > 0, got {value}")
        if self.stage != "semantic" and self.coarse_levels > self.n_q:
            raise ValueError(f"coarse_levels {self.coarse_levels} > n_q {self.n_q}")
        if self.stage == "fine" and self.n_q <= self.coarse_levels:
            raise ValueError(
                f"the fine stage needs n_q > coarse_levels, got n_q {self.n_q}, coarse_levels {self.coarse_levels}"
            )
        bark = self.stage == "fine" and self.fine_style == "bark"
        if self.model.causal == bark:
            raise ValueError(
                f"model.causal is {str(self.model.causal).lower()}, but a {self.stage} stage "
                f"({self.fine_style} style) needs {str(not bark).lower()}"
            )
