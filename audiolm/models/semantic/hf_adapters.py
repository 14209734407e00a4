"""Pretrained encoders from a local transformers directory: HuBERT, wav2vec 2.0, w2v-BERT 2.0.

Each becomes a feature source like ours (see features.py): `forward(wav [B, N] @ 16 kHz) ->
[B, N // hop, D]`, layer `layer` of `hidden_states` (0 = the input to the first transformer
layer). Inputs are padded so that frame t is centred on (t + ½)·hop like every other source:
  - HuBERT / wav2vec 2.0 (and wav2vec 2.0-conformer): raw waveform (standardized per row when
    the checkpoint's feature extractor says `do_normalize`), strided CNN;
  - w2v-BERT 2.0 (`Wav2Vec2BertModel`): 80-bin fbank frames stacked by 2, computed by
    `SeamlessM4TFeatureExtractor` (the directory's preprocessor_config.json, else its defaults).
Nothing is downloaded: the directory must hold config.json and the weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from audiolm.core.errors import CheckpointError
from audiolm.models.semantic.config import SAMPLE_RATE

WAVEFORM_TYPES = ("hubert", "wav2vec2", "wav2vec2-conformer")
FBANK_TYPES = ("wav2vec2-bert",)
SUPPORTED = WAVEFORM_TYPES + FBANK_TYPES


def _model_type(directory: Path) -> str:
    cfg = directory / "config.json"
    if not cfg.is_file():
        raise CheckpointError(f"{directory}: no config.json; expected a transformers model directory")
    try:
        model_type = json.loads(cfg.read_text()).get("model_type")
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg}: not valid JSON ({e})") from None
    if model_type not in SUPPORTED:
        raise CheckpointError(f"{cfg}: model_type {model_type!r} is not one of {', '.join(SUPPORTED)}")
    return model_type


class HFLayerFeatures(nn.Module):
    """Layer `layer` of a transformers speech encoder loaded from `directory`."""

    def __init__(self, directory: str | Path, layer: int) -> None:
        super().__init__()
        from transformers import AutoModel  # lazy: transformers takes seconds to import

        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"{directory}: pretrained encoder directory not found")
        self.directory = directory
        self.model_type = _model_type(directory)
        try:
            self.model = AutoModel.from_pretrained(str(directory), local_files_only=True).eval()
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{directory}: cannot load the encoder ({str(e).splitlines()[0]})") from None
        config = self.model.config
        if not 0 <= layer <= config.num_hidden_layers:
            raise CheckpointError(f"{directory}: layer {layer} out of range 0..{config.num_hidden_layers}")
        self.layer = layer
        self.dim = config.hidden_size
        self.feature_extractor = None
        if self.model_type in FBANK_TYPES:
            from transformers import SeamlessM4TFeatureExtractor  # lazy: transformers takes seconds to import

            if (directory / "preprocessor_config.json").is_file():
                self.feature_extractor = SeamlessM4TFeatureExtractor.from_pretrained(str(directory))
            else:
                self.feature_extractor = SeamlessM4TFeatureExtractor()
            self.hop = 160 * self.feature_extractor.stride
            # fbank frame i covers [160 i, 160 i + 400); shifting by 120 centres each stacked
            # group of `stride` frames on (t + ½)·hop
            self.pad = (120, 120 + self.hop)
        else:
            self.hop = math.prod(config.conv_stride)
            receptive = 1
            for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride))):
                receptive = (receptive - 1) * stride + kernel
            side = max(0, (receptive - self.hop) // 2)
            self.pad = (side, side + self.hop)
            self.normalize = config.feat_extract_norm == "layer"
            if (directory / "preprocessor_config.json").is_file():
                pre = json.loads((directory / "preprocessor_config.json").read_text())
                self.normalize = bool(pre.get("do_normalize", self.normalize))
        if SAMPLE_RATE % self.hop:
            raise CheckpointError(f"{directory}: total stride {self.hop} does not divide {SAMPLE_RATE}")
        self.frame_rate = SAMPLE_RATE // self.hop

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav: [B, N] at 16 kHz -> [B, N // hop, hidden]."""
        n_frames = wav.shape[-1] // self.hop
        device = next(self.model.parameters()).device
        if self.feature_extractor is not None:
            array = torch.nn.functional.pad(wav, self.pad).cpu().numpy().astype(np.float32)
            inputs = self.feature_extractor(list(array), sampling_rate=SAMPLE_RATE, return_tensors="pt")
            out = self.model(
                input_features=inputs["input_features"].to(device),
                attention_mask=inputs["attention_mask"].to(device),
                output_hidden_states=True,
            )
        else:
            if self.normalize:
                wav = (wav - wav.mean(-1, keepdim=True)) / torch.sqrt(wav.var(-1, keepdim=True) + 1e-7)
            padded = torch.nn.functional.pad(wav, self.pad).to(device)
            out = self.model(input_values=padded, output_hidden_states=True)
        hidden = out.hidden_states[self.layer]  # [B, T', hidden]
        if hidden.shape[1] < n_frames:  # a frame short at the very end: repeat the last one
            hidden = torch.cat([hidden, hidden[:, -1:].expand(-1, n_frames - hidden.shape[1], -1)], dim=1)
        return hidden[:, :n_frames]

    def save(self, directory: str | Path) -> None:
        """Write the encoder (and its feature extractor) with save_pretrained."""
        self.model.save_pretrained(str(directory))
        if self.feature_extractor is not None:
            self.feature_extractor.save_pretrained(str(directory))
