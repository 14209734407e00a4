"""WaveNetConfig: every hyperparameter of the raw-sample WaveNet, shared by training and
generation and saved as `config.json` inside each checkpoint.

Shapes follow the original WaveNet (van den Oord et al. 2016): μ-law classes in and out, a
causal input convolution, `layers` dilated causal convolutions of kernel 2 whose dilations run
1, 2, 4, ... 2^(layers/stacks - 1) and repeat `stacks` times, gated tanh × sigmoid units, 1×1
residual and skip convolutions, then ReLU-1×1-ReLU-1×1 and a softmax over the next sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WaveNetConfig:
    sample_rate: int = 24000
    quantization_channels: int = 256  # μ-law classes (μ = classes - 1), input and output
    layers: int = 20
    stacks: int = 2  # dilations 1..2^(layers/stacks - 1), repeated `stacks` times
    input_kernel_size: int = 2  # the causal input convolution sees this many past samples
    residual_channels: int = 64
    dilation_channels: int = 64  # channels of each gate half (tanh and sigmoid)
    skip_channels: int = 256
    # global conditioning: an embedding of a speaker / instrument id (0 = none)
    gc_cardinality: int = 0
    gc_channels: int = 32
    gc_labels: list[str] = field(default_factory=list)  # id -> label, from the training data
    # local conditioning on codec tokens (0 levels = none): an embedding per level summed,
    # a frame-rate convolution, then repeated `lc_hop` times to the sample rate
    lc_n_q: int = 0
    lc_codebook_size: int = 1024
    lc_hop: int = 320  # samples per codec frame: sample_rate / frame_rate (24 kHz / 75 Hz)
    lc_channels: int = 64
    lc_kernel_size: int = 3  # frame-rate convolution over the code embeddings (odd)
    # training crops: samples per example (must exceed the receptive field)
    crop_samples: int = 4096

    def __post_init__(self) -> None:
        positive = (
            "sample_rate",
            "quantization_channels",
            "layers",
            "stacks",
            "input_kernel_size",
            "residual_channels",
            "dilation_channels",
            "skip_channels",
            "gc_channels",
            "lc_codebook_size",
            "lc_hop",
            "lc_channels",
            "lc_kernel_size",
            "crop_samples",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.quantization_channels < 2:
            raise ValueError(f"quantization_channels must be >= 2, got {self.quantization_channels}")
        if self.layers % self.stacks:
            raise ValueError(f"layers ({self.layers}) must be a multiple of stacks ({self.stacks})")
        if self.gc_cardinality < 0 or self.lc_n_q < 0:
            raise ValueError("gc_cardinality and lc_n_q must be >= 0")
        if self.gc_labels and len(self.gc_labels) != self.gc_cardinality:
            raise ValueError(f"gc_labels has {len(self.gc_labels)} labels but gc_cardinality is {self.gc_cardinality}")
        if self.lc_kernel_size % 2 == 0:
            raise ValueError(f"lc_kernel_size must be odd, got {self.lc_kernel_size}")
        if self.crop_samples <= self.receptive_field:
            raise ValueError(
                f"crop_samples ({self.crop_samples}) must exceed the receptive field ({self.receptive_field})"
            )
        if self.lc_n_q and self.crop_samples % self.lc_hop:
            raise ValueError(f"crop_samples ({self.crop_samples}) must be a multiple of lc_hop ({self.lc_hop})")

    @property
    def dilations(self) -> list[int]:
        per_stack = self.layers // self.stacks
        return [2 ** (i % per_stack) for i in range(self.layers)]

    @property
    def receptive_field(self) -> int:
        """Past samples the prediction of the next sample depends on: the input convolution
        sees `input_kernel_size` of them, and each kernel-2 layer of dilation d adds d."""
        return self.input_kernel_size + sum(self.dilations)

    @property
    def mu(self) -> int:
        return self.quantization_channels - 1

    @property
    def gate_channels(self) -> int:
        return 2 * self.dilation_channels

    @property
    def has_gc(self) -> bool:
        return self.gc_cardinality > 0

    @property
    def has_lc(self) -> bool:
        return self.lc_n_q > 0
