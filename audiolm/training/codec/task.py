"""Training the codec from scratch: data, parts and losses for the shared Trainer.

One step (EnCodec recipe, Défossez et al. 2022):

    n_q  ~ uniform over the bandwidths' level counts (quantizer dropout: one codec, all rates)
    y    = codec(x, n_q)                  x: [B, 1, N] random crops at 24 kHz
    generator: L1(x, y) + multi-scale mel(x, y)            from step 0
               + adversarial (hinge or LSGAN) + feature matching, from `adversarial_start_step`,
                 against the multi-scale STFT and multi-period discriminators
               -> combined by the gradient balancer (shares of the gradient at y)
               + commitment loss (straight to the encoder, not balanced)
    discriminator: hinge / LSGAN on D(x) and D(y), from `adversarial_start_step` (one discriminator pass;
                   the trainer sends each part's loss into that part's parameters only)

Parts: "model" = `CodecModel` (exported), "discriminator" = `Critic` (the discriminators plus the balancer's running gradient norms, saved in trainer checkpoints so a
resumed run continues bit-identically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from audiolm.core.checkpoint import load_checkpoint, resolve_checkpoint_dir
from audiolm.core.config import config_to_dict
from audiolm.core.corpus import train_valid_audio
from audiolm.core.errors import CheckpointError, ConfigError
from audiolm.models.codec.config import CodecConfig, PitchNetConfig
from audiolm.models.codec.metrics import si_sdr
from audiolm.models.codec.model import CodecModel
from audiolm.models.codec.pitch import yin_f0
from audiolm.training.codec.balancer import Balancer
from audiolm.training.codec.discriminator import MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator
from audiolm.training.codec.grow import grow_decoder_state, silence_new_blocks
from audiolm.training.codec.losses import (
    MultiScaleMel,
    discriminator_adversarial_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    head_spectral_losses,
    multiscale_mel_loss,
    phase_derivative_loss,
    stft_magnitude_loss,
    waveform_l1_loss,
)
from audiolm.training.data.crops import AudioCrops
from audiolm.training.task import ItemKey, StepOutput, Task


class AudioCropDataset(AudioCrops):
    """Codec training items: crops [1, crop_samples] at the codec's sample rate (see AudioCrops)."""

    def __init__(self, files: list[Path], sample_rate: int, crop_samples: int, random: bool = True):
        super().__init__(files, sample_rate, crop_samples, random, what="codec")

    def __getitem__(self, key: ItemKey | int) -> torch.Tensor:
        return self.crop(key)[0][None]


class Critic(nn.Module):
    """The "discriminator" part: the multi-scale STFT and multi-period discriminators (either
    may be switched off) and the balancer state."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        cfg = config.training
        self.discriminator = (
            MultiScaleSTFTDiscriminator(cfg.discriminator_n_ffts, cfg.discriminator_filters)
            if cfg.discriminator_n_ffts
            else None
        )
        self.period_discriminator = (
            MultiPeriodDiscriminator(cfg.discriminator_periods, cfg.period_discriminator_filters)
            if cfg.discriminator_periods
            else None
        )
        weights = {
            "l1": cfg.weight_l1,
            "mel": cfg.weight_mel,
            "adversarial": cfg.weight_adversarial,
            "feature_matching": cfg.weight_feature_matching,
        }
        # optional terms join only when weighted: the balancer's state of older runs stays loadable
        if cfg.weight_phase > 0:
            weights["phase"] = cfg.weight_phase
        if cfg.weight_stft > 0:
            weights["stft"] = cfg.weight_stft
        self.balancer = Balancer(weights, ema_decay=cfg.balancer_ema_decay)

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """wav [B, 1, N] -> (logits, feature maps), one entry per sub-discriminator of each."""
        logits, features = [], []
        for disc in (self.discriminator, self.period_discriminator):
            if disc is not None:
                more_logits, more_features = disc(wav)
                logits += more_logits
                features += more_features
        return logits, features


# fields an --init codec may differ in from the run's config: how it trains, the noise envelope's
# resolution (a per-bin head's weights load into a banded one, frame_rate.py) and the tonal band
# the pitch tracker's thresholds and its code's resolution are decisions, not weights: a new
# decoder can learn a new tracker's pitch code (level 0 changes; the RVQ levels stay, their
# encoder does not see the pitch)
# (so may the tracker itself: a YIN codec's decoder may be re-trained on a pitch net's F0)
# and a frame-rate decoder may grow: more blocks, wider MLPs, more lookahead (grow.py), never less
INIT_MAY_DIFFER = (
    "training",
    "istft_noise_bands",
    "istft_tonal_max_hz",
    "pitch_threshold",
    "pitch_voicing_threshold",
    "pitch_code_step",
    "pitch_net",
    "decoder_layers",
    "decoder_intermediate",
    "decoder_lookahead",
)
PITCH_NET_PREFIX = "encoder.pitch_net."  # the pitch net's weights inside a codec's state dict


def init_weights(model: CodecModel, directory: str | Path) -> bool:
    """Load a codec's weights (a codec directory or training run) into `model`, whose config
    must equal the codec's but for INIT_MAY_DIFFER: fine-tuning, e.g. a new decoder for a codec's
    tokens as they are (training.frozen = encoder, quantizer). The codec's pitch net comes along
    when the model has the same one; returns whether it did (else `load_pitch_net` must)."""
    path = resolve_checkpoint_dir(directory)
    ckpt = load_checkpoint(path, "codec", CodecConfig)
    mine, theirs = config_to_dict(model.config), config_to_dict(ckpt.config)
    differ = sorted(k for k in mine if k not in INIT_MAY_DIFFER and mine[k] != theirs.get(k))
    if differ:
        shown = ", ".join(f"{k} {theirs.get(k)!r} vs {mine[k]!r}" for k in differ[:4])
        raise ConfigError(f"{path}: this codec does not fit the run's config ({shown}); --init needs the same network")
    if ckpt.config.istft_noise_bands and ckpt.config.istft_noise_bands != model.config.istft_noise_bands:
        raise ConfigError(
            f"{path}: its noise envelope has {ckpt.config.istft_noise_bands} bands, the run's config "
            f"{model.config.istft_noise_bands}; only a per-bin head (0) converts"
        )
    old_layers = _check_growth(path, ckpt.config, model.config)
    same_net = model.config.pitch_net is not None and ckpt.config.pitch_net == model.config.pitch_net
    state = {k: v for k, v in ckpt.state_dict.items() if same_net or not k.startswith(PITCH_NET_PREFIX)}
    grown = old_layers < model.config.decoder_layers
    state = grow_decoder_state(state, model)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(PITCH_NET_PREFIX)]
        if grown:  # the new blocks start from their own init, then as the identity
            missing = [k for k in missing if not _is_new_block(k, old_layers)]
        if missing or unexpected:
            raise RuntimeError(f"missing keys {missing[:3]}, unexpected keys {unexpected[:3]}")
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model: {str(e).splitlines()[0]}") from None
    if grown:
        silence_new_blocks(model, old_layers)
    return same_net


def _is_new_block(key: str, old_layers: int) -> bool:
    prefix = "decoder.backbone.blocks."
    return key.startswith(prefix) and int(key[len(prefix) :].split(".")[0]) >= old_layers


def _check_growth(path: Path, theirs: CodecConfig, mine: CodecConfig) -> int:
    """The --init codec's decoder depth, after checking that the run's decoder is the same or a
    grown copy of it (grow.py): a frame-rate decoder, no fewer blocks, no narrower MLPs, no less
    lookahead."""

    def size(c: CodecConfig) -> tuple[int, int, int]:
        return c.decoder_layers, c.decoder_width, c.decoder_lookahead

    if size(theirs) == size(mine):
        return theirs.decoder_layers
    if mine.decoder != "istft":
        raise ConfigError(f"{path}: only a frame-rate decoder ('istft') can grow; this config's is {mine.decoder!r}")
    if any(m < t for m, t in zip(size(mine), size(theirs))):
        raise ConfigError(
            f"{path}: its decoder has (blocks, MLP width, lookahead) {size(theirs)}, the run's "
            f"{size(mine)}; --init can grow a decoder, not shrink it"
        )
    return theirs.decoder_layers


def load_pitch_net(model: CodecModel, directory: str | Path) -> None:
    """Put a trained pitch net (`audiolm train pitch` run or its exported model) into `model`'s
    encoder; the model's config.pitch_net must be the net's own config."""
    path = resolve_checkpoint_dir(directory)
    ckpt = load_checkpoint(path, "pitch", PitchNetConfig)
    if model.config.pitch_net != ckpt.config:
        raise ConfigError(f"{path}: this pitch net's config differs from the codec config's pitch_net")
    net = getattr(model.encoder, "pitch_net", None)
    if not isinstance(net, nn.Module):
        raise ConfigError("this codec tracks pitch with YIN: it has no pitch net to load")
    try:
        net.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the pitch net: {str(e).splitlines()[0]}") from None


def _unwrap(module: nn.Module) -> Any:
    return getattr(module, "module", module)  # DDP / accelerate wrappers keep the model in .module


class CodecTask(Task):
    kind = "codec"

    def __init__(
        self,
        config: CodecConfig,
        train_files: list[Path],
        valid_files: list[Path] | None = None,
        seed: int = 0,
        init: str | Path | None = None,
        pitch_net: str | Path | None = None,
    ):
        """init: a codec directory (or run) whose weights the model starts from (`init_weights`).
        pitch_net: a trained pitch net (`audiolm train pitch`) for a config with `pitch_net` set;
        it stays frozen. Not needed when `init` is a codec with the same net."""
        self.config = config
        self.train_files = list(train_files)
        self.valid_files = list(valid_files or [])
        self.seed = seed
        self.model = CodecModel(config)
        self.init = None if init is None else str(resolve_checkpoint_dir(init).resolve())
        self.pitch_net = None if pitch_net is None else str(resolve_checkpoint_dir(pitch_net).resolve())
        has_net = False
        if self.init is not None:
            has_net = init_weights(self.model, self.init)
        if self.pitch_net is not None:
            if config.pitch_net is None:
                raise ConfigError("a pitch net was given, but the codec config tracks pitch with YIN (pitch_net null)")
            load_pitch_net(self.model, self.pitch_net)
            has_net = True
        if config.pitch_net is not None and not has_net:
            raise ConfigError(
                "the codec config tracks pitch with a net: give its weights (--pitch-net RUN, from "
                "`audiolm train pitch`) or --init a codec that has the same net"
            )
        self.model.freeze(config.training.frozen)
        self.critic = Critic(config)
        self.mel = MultiScaleMel(
            config.sample_rate,
            config.training.mel_min_log2,
            config.training.mel_max_log2,
            config.training.mel_bins,
            power=1,
        )
        self.levels = sorted({config.levels_for_kbps_unchecked(b) for b in config.bandwidths})
        self.crop_samples = int(round(config.training.crop_seconds * config.sample_rate))
        self._train_set: AudioCropDataset | None = None
        self._valid_set: AudioCropDataset | None = None

    @classmethod
    def from_corpus(
        cls,
        config: CodecConfig,
        corpus_dir: str | Path,
        seed: int = 0,
        init: str | Path | None = None,
        pitch_net: str | Path | None = None,
    ) -> CodecTask:
        """Train on the corpus' train split (speech and music), validate on its valid split."""
        train, valid = train_valid_audio(corpus_dir)
        return cls(config, train, valid, seed=seed, init=init, pitch_net=pitch_net)

    # -- Task API -----------------------------------------------------------------------------
    def model_config(self) -> CodecConfig:
        return self.config

    def parts(self) -> dict[str, nn.Module]:
        return {"model": self.model, "discriminator": self.critic}

    def run_info(self) -> dict[str, Any]:
        # a run killed before its first checkpoint resumes from step 0: from these weights again
        info = {} if self.init is None else {"init": self.init}
        return info | ({} if self.pitch_net is None else {"pitch_net": self.pitch_net})

    def train_dataset(self) -> Dataset:
        if self._train_set is None:
            self._train_set = AudioCropDataset(self.train_files, self.config.sample_rate, self.crop_samples)
        return self._train_set

    def valid_dataset(self) -> Dataset | None:
        if not self.valid_files:
            return None
        if self._valid_set is None:
            self._valid_set = AudioCropDataset(
                self.valid_files, self.config.sample_rate, self.crop_samples, random=False
            )
        return self._valid_set

    def collate(self, items: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(items)  # [B, 1, N]

    def optimizer_settings(self, part: str) -> dict[str, Any]:
        settings: dict[str, Any] = {"betas": (0.5, 0.9)}  # EnCodec's Adam betas for both parts
        if part == "discriminator" and self.config.training.discriminator_lr is not None:
            settings["lr"] = self.config.training.discriminator_lr
        return settings

    def levels_for_step(self, step: int) -> int:
        """Quantizer dropout: the step's number of levels, the same on every rank and on resume."""
        rng = np.random.default_rng([self.seed, max(step, 0)])
        return int(self.levels[int(rng.integers(len(self.levels)))])

    def training_step(self, parts: dict[str, nn.Module], batch: torch.Tensor, step: int) -> StepOutput:
        cfg = self.config.training
        model, critic = parts["model"], parts["discriminator"]
        wav = batch  # [B, 1, N]
        n_q = self.levels_for_step(step)
        # the pitch target [B, T] (bins, 0 = unvoiced), computed once: the F0 loss and teacher forcing share it
        f0_target = self._f0_target(wav) if cfg.weight_head_f0 > 0 else None
        out = model(wav, n_q, f0_target if cfg.teacher_forced_f0 else None)
        y = out.audio.float()  # [B, 1, N]
        mel = self.mel.to(y.device)
        losses = {"l1": waveform_l1_loss(y, wav), "mel": multiscale_mel_loss(mel, y, wav, cfg.mel_log_floor)}
        if cfg.weight_phase > 0:
            losses["phase"] = phase_derivative_loss(y, wav)
        if cfg.weight_stft > 0:
            losses["stft"] = stft_magnitude_loss(y, wav)
        adversarial = step >= cfg.adversarial_start_step
        disc_loss = torch.zeros((), device=y.device)
        if adversarial:
            batch_size = wav.shape[0]
            # one discriminator pass over real and fake serves both parts' losses: the trainer
            # back-propagates each part's loss into that part's parameters only (`inputs=`)
            logits, features = critic(torch.cat([wav, y], dim=0))
            real_logits = [l[:batch_size] for l in logits]
            fake_logits = [l[batch_size:] for l in logits]
            losses["adversarial"] = generator_adversarial_loss(cfg.adversarial_loss, fake_logits)
            losses["feature_matching"] = feature_matching_loss(
                [[f[:batch_size] for f in fs] for fs in features], [[f[batch_size:] for f in fs] for fs in features]
            )
            disc_loss = discriminator_adversarial_loss(cfg.adversarial_loss, real_logits, fake_logits)
        metrics = {name: float(loss.detach()) for name, loss in losses.items()}
        head_loss = self._head_losses(model, out, wav, f0_target, metrics)
        if cfg.balancer:
            generator_loss, norms = _unwrap(critic).balancer.balance(losses, y)
            metrics.update(norms)
        else:
            weights = _unwrap(critic).balancer.weights
            generator_loss = sum(weights[name] * loss for name, loss in losses.items())
        model_loss = generator_loss + cfg.weight_commitment * out.commitment_loss + head_loss
        metrics.update(out.metrics)
        metrics["commitment"] = float(out.commitment_loss.detach())
        metrics["n_q"] = float(n_q)
        if adversarial:
            metrics["discriminator"] = float(disc_loss.detach())
        return StepOutput(losses={"model": model_loss, "discriminator": disc_loss}, metrics=metrics)

    def _head_losses(
        self, model: nn.Module, out, wav: torch.Tensor, f0_target: torch.Tensor | None, metrics: dict[str, float]
    ) -> torch.Tensor:
        """The iSTFT head's own spectral losses, weighted, outside the balancer (their gradient
        does not pass through the output waveform the balancer measures at)."""
        cfg = self.config.training
        if out.head is None or not (
            cfg.weight_head_magnitude > 0 or cfg.weight_head_phase > 0 or cfg.weight_head_f0 > 0
        ):
            return torch.zeros((), device=wav.device)
        head = _unwrap(model).decoder.head
        log_magnitude, param = out.head
        magnitude_loss, phase_loss = head_spectral_losses(head, log_magnitude, param, wav * self.config.input_gain)
        metrics["head_magnitude"] = float(magnitude_loss.detach())
        metrics["head_phase"] = float(phase_loss.detach())
        total = cfg.weight_head_magnitude * magnitude_loss + cfg.weight_head_phase * phase_loss
        if f0_target is not None and out.f0_bins is not None:
            voiced = f0_target > 0
            if voiced.any():
                f0_loss = (torch.log(out.f0_bins[voiced]) - torch.log(f0_target[voiced])).abs().mean()
                metrics["head_f0"] = float(f0_loss.detach())
                total = total + cfg.weight_head_f0 * f0_loss
        return total

    def _f0_target(self, wav: torch.Tensor) -> torch.Tensor:
        """The YIN pitch of wav [B, 1, N] on the iSTFT head's frames, in bins [B, T] (0 = unvoiced)."""
        cfg = self.config
        frames = -(-wav.shape[-1] // cfg.hop_length)
        f0_hz, _ = yin_f0(wav[:, 0], cfg.sample_rate, frames, cfg.n_fft, cfg.hop_length)
        return f0_hz * cfg.n_fft / cfg.sample_rate

    @torch.no_grad()
    def validation_step(self, parts: dict[str, nn.Module], batch: torch.Tensor) -> dict[str, float]:
        """Reconstruction at the default 6 kbps (or the nearest bandwidth): L1, mel, SI-SDR, usage."""
        kbps = 6.0 if 6.0 in self.config.bandwidths else max(self.config.bandwidths)
        n_q = self.config.levels_for_kbps_unchecked(kbps)
        out = parts["model"](batch, n_q)
        y = out.audio.float()
        mel = self.mel.to(y.device)
        l1 = float(waveform_l1_loss(y, batch))
        mel_loss = float(multiscale_mel_loss(mel, y, batch, self.config.training.mel_log_floor))
        weights = _unwrap(parts["discriminator"]).balancer.weights
        return {
            "l1": l1,
            "mel": mel_loss,
            "model_loss": weights["l1"] * l1 + weights["mel"] * mel_loss,
            "commitment": float(out.commitment_loss),
            "si_sdr": float(np.mean([si_sdr(r[0], e[0]) for r, e in zip(batch.cpu(), y.cpu())])),
            "perplexity": out.metrics["perplexity"],
        }
