"""The one set of test helpers: imported as `from tests.helpers import ...` (tests/ is a package;
its sub-folders mirror audiolm/ and hold only test modules).

- Running the command line: `run_cli(capsys, *argv)` through `audiolm.cli.app.main` (the exit-code
  contract, captured stdout/stderr); `run_command(argv)` runs one command in process with errors
  raised (so a test can match a UsageError's message).
- Audio: `tone(...)`, a harmonic tone with optional seeded noise, torch [C, N] float32.
- Codecs: `tiny_codec()` / `save_tiny_codec(dir)`, the real codec at `CodecConfig.tiny()` with
  random, spread codebooks; `FakeCodec`, a duck-typed stand-in with no network at all.
- Pipelines: `build_tiny_pipeline(root)` and its parts (`stage_config`, `save_stage`,
  `save_tokenizer`, `write_recipe`, `tokens_info`); the session fixture `tiny_pipeline` in
  tests/conftest.py builds one for every test that only reads it.
- WaveNets: `tiny_wavenet_config(...)`, `random_wavenet(config)`.

`build_tiny_pipeline(root)` writes, under `root`:

    codec/            CodecConfig.tiny() with random weights (24 kHz, hop 320, 75 Hz, 16 levels)
    semantic/         an MFCC SemanticTokenizer with K random centroids (50 Hz)
    semantic_stage/   three tiny random LM stages saved with save_checkpoint, their
    coarse_stage/     StageConfigs completed against the codec / tokenizer above
    fine_stage/       (fine stage: N_Q levels = 3 kbps, coarse stage: 2 levels)
    pipeline.json     the recipe, paths relative to it

and returns the recipe path. Everything is random, so the audio is noise, but every shape,
rate and vocabulary is the real pipeline's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

K = 16  # semantic vocabulary
SEMANTIC_RATE = 50
N_Q = 4  # acoustic levels modelled by the fine stage (3 kbps of the tiny codec)
COARSE_LEVELS = 2
SEMANTIC_CONTEXT = 64  # semantic stage max_seq_len: (64 - 1) / 50 Hz = 1.26 s of context


# -- the command line -------------------------------------------------------------------------


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`audiolm ARGV...` in process through `main` (arguments may be paths or numbers):
    returns (exit code, stdout, stderr)."""
    from audiolm.cli.app import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_command(argv: Sequence[str]) -> int:
    """Parse `argv` with every command registered and run that command directly: returns its exit
    code; a UsageError / AudiolmError propagates (so a test can match its message)."""
    from audiolm.cli.app import build_cli
    from audiolm.core.outputs import OutputSet

    args = build_cli().parser.parse_args([str(a) for a in argv])
    outputs = OutputSet()  # what `main` gives every command: args.claim_output
    args.claim_output = lambda path, overwrite, flag="--out": outputs.claim(path, overwrite, flag)
    try:
        return int(args._command.run(args) or 0)
    finally:
        outputs.release()


# -- audio ------------------------------------------------------------------------------------


def tone(
    seconds: float = 0.5,
    sample_rate: int = 24000,
    freq: float = 220.0,
    harmonics: Sequence[float] = (0.3, 0.0, 0.1),
    noise: float = 0.01,
    seed: int = 0,
    channels: int = 1,
) -> torch.Tensor:
    """A test signal [channels, N] float32: sum over k of harmonics[k] * sin(2 pi (k + 1) f t),
    with f = freq * (c + 1) on channel c, plus `noise` * N(0, 1) from `seed` (so no frame is
    exactly silent). The default is a 220 Hz tone with its third harmonic, peak ~0.4."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for c in range(channels):
        wav = torch.zeros_like(t)
        for k, a in enumerate(harmonics):
            if a:
                wav += a * torch.sin(2 * math.pi * freq * (c + 1) * (k + 1) * t)
        if noise:
            wav += noise * torch.randn(t.shape, generator=gen).double()
        rows.append(wav)
    return torch.stack(rows).float()


# -- codecs -----------------------------------------------------------------------------------


def random_codec(config=None, seed: int = 0):
    """The real `Codec` built from `config` (default `CodecConfig.tiny()`: 24 kHz, hop 320, 16
    levels of 1024), random weights and random codebooks spread apart (so codes vary), marked
    initialised (no k-means on first use)."""
    from audiolm.models.codec.codec import Codec
    from audiolm.models.codec.config import CodecConfig
    from audiolm.models.codec.model import CodecModel

    torch.manual_seed(seed)
    model = CodecModel(CodecConfig.tiny() if config is None else config)
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.embed.normal_()
            layer.inited.fill_(True)
    return Codec(model)


def tiny_codec(seed: int = 0):
    """`random_codec` at `CodecConfig.tiny()`."""
    return random_codec(seed=seed)


def tiny_frame_rate_config(**changes):
    """`CodecConfig.tiny()` with the frame-rate networks (STFT encoder, iSTFT decoder, one
    ConvNeXt block each of width 16), then `changes`."""
    import dataclasses

    from audiolm.models.codec.config import CodecConfig

    frame_rate = dict(
        encoder="stft", decoder="istft", frame_dim=16, frame_intermediate=32, encoder_layers=1, decoder_layers=1
    )
    return dataclasses.replace(CodecConfig.tiny(), **(frame_rate | changes))


def tiny_pitched_codec(seed: int = 0):
    """`tiny_codec` as a source-filter codec: level 0 of its codes is the pitch (0 = unvoiced),
    an STFT encoder and a harmonic-plus-noise iSTFT decoder."""
    return random_codec(tiny_frame_rate_config(istft_phase="harmonic_noise", pitch_codebook=True), seed)


def random_codes(codec, frames: int, seed: int, voiced_share: float = 0.6) -> torch.Tensor:
    """Random codes [2, Q, frames] at 3 kbps; a pitched codec's level 0 voiced on about
    `voiced_share` of the frames."""
    g = torch.Generator().manual_seed(seed)
    Q = codec.levels_for_kbps(3.0)
    codes = torch.randint(0, codec.codebook_size, (2, Q, frames), generator=g)
    if codec.model.quantizer.__class__.__name__ == "PitchedResidualVQ":
        voiced = torch.rand(2, frames, generator=g) < voiced_share
        codes[:, 0] = torch.where(voiced, torch.randint(1, codec.codebook_size, (2, frames), generator=g), 0)
    return codes


def assert_prompts_batch_as_alone(lm, prompt: torch.Tensor, sample_rate: int = 24000) -> None:
    """`lm.continue_prompts` of `prompt` and a shorter cut of it (rows of other lengths in one
    batch, 2 samples each) equals `generate_continuation` of each prompt alone."""
    prompts = [lm.encode_prompt(prompt, sample_rate), lm.encode_prompt(prompt[: int(0.45 * sample_rate)], sample_rate)]
    together = lm.continue_prompts(prompts, seconds=0.5, seed=0, num_samples=2)
    for p, result in zip(prompts, together):
        alone = lm.generate_continuation(None, None, seconds=0.5, seed=0, num_samples=2, prompt=p)
        assert torch.equal(result.codes, alone.codes)
        torch.testing.assert_close(result.audio, alone.audio, atol=1e-4, rtol=1e-3)


def continue_cli_outputs(tmp_path: Path, capsys, runs) -> dict[str, torch.Tensor]:
    """`audiolm continue` of a 0.6 s tone (seed 0, 0.5 s, eager step) for each (name, recipe,
    extra flags) in `runs` -> {name: the written audio}."""
    from audiolm.cli.app import main
    from audiolm.core.audio import load_audio, save_audio

    save_audio(tmp_path / "p.wav", tone(0.6, freq=220.0), 24000)
    outputs = {}
    for name, recipe, extra in runs:
        out = tmp_path / f"{name}.wav"
        argv = ["continue", str(tmp_path / "p.wav"), "-o", str(out), "--seconds", "0.5", "--seed", "0"]
        assert main([*argv, "--pipeline", str(recipe), "--no-compile", *extra]) == 0, capsys.readouterr().err
        outputs[name] = load_audio(out)[0]
    return outputs


def save_tiny_codec(directory: Path, seed: int = 0) -> Path:
    """`tiny_codec(seed)` saved to `directory` (returns the path `Codec.save` gives)."""
    return tiny_codec(seed).save(directory)


class FakeCodec:
    """Duck-typed stand-in for audiolm.models.codec.Codec at a tiny scale: codes [B, Q, T] from the
    frame energies of the signal (equal audio -> equal codes), encode calls counted, and RVQ
    codebooks [codebook_size, 8] per level as `Codec.codebooks` gives. `n_q` fixes the levels;
    without it, two levels per 1.5 kbps (as the real codec)."""

    def __init__(self, sample_rate: int = 24000, hop: int = 320, codebook_size: int = 16, n_q: int | None = None):
        self.sample_rate, self.hop, self.codebook_size, self.n_q = sample_rate, hop, codebook_size, n_q
        self.calls = 0

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def levels_for_kbps(self, kbps: float) -> int:
        return self.n_q or int(kbps / 1.5) * 2

    def encode(self, wav: torch.Tensor, sample_rate: int, kbps: float = 6.0) -> torch.Tensor:
        assert sample_rate == self.sample_rate, (sample_rate, self.sample_rate)
        self.calls += 1
        wav = wav.reshape(-1, wav.shape[-1])  # [B, N] from [N], [1, N] or [B, 1, N]
        n = math.ceil(wav.shape[-1] / self.hop)
        frames = torch.nn.functional.pad(wav, (0, n * self.hop - wav.shape[-1])).view(wav.shape[0], n, self.hop)
        energy = (frames.abs().mean(-1) * 1000).long()  # [B, T]
        return torch.stack([(energy + level) % self.codebook_size for level in range(self.levels_for_kbps(kbps))], 1)

    def codebooks(self, n_q: int | None = None) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(1)
        return [torch.randn(self.codebook_size, 8, generator=gen) * 5 for _ in range(n_q or self.levels_for_kbps(6.0))]


# -- tiny pipelines ---------------------------------------------------------------------------


def tokens_info(
    semantic_vocab: int = K,
    semantic_rate: float = SEMANTIC_RATE,
    n_q: int = N_Q,
    codebook_size: int = 1024,
    acoustic_rate: float = 75.0,
) -> dict:
    """What a token directory's index.json says about its tokenizers (complete_stage_config input)."""
    return {
        "semantic": {"vocab_size": semantic_vocab, "frame_rate": semantic_rate},
        "codec": {"codebook_size": codebook_size, "frame_rate": acoustic_rate, "n_q": n_q},
    }


def stage_config(stage: str, info: dict | None = None, max_seq_len: int | None = None):
    from audiolm.models.lm.config import StageConfig, TransformerConfig
    from audiolm.models.lm.stage import complete_stage_config

    seq = max_seq_len or {"semantic": SEMANTIC_CONTEXT, "coarse": 64, "fine": 64}[stage]
    config = StageConfig(
        stage=stage,
        model=TransformerConfig(dim=32, n_layers=1, n_heads=2, max_seq_len=seq),
        coarse_levels=COARSE_LEVELS,
    )
    return complete_stage_config(config, info or tokens_info())


def save_stage(directory: Path, config, seed: int = 0) -> Path:
    from audiolm.core.checkpoint import save_checkpoint
    from audiolm.models.lm.stage import stage_kind
    from audiolm.models.lm.transformer import Transformer

    torch.manual_seed(seed)
    model = Transformer(config.model)
    return save_checkpoint(directory, stage_kind(config.stage), config, model.state_dict())


def save_tokenizer(directory: Path, vocab: int = K, frame_rate: int = SEMANTIC_RATE, seed: int = 0) -> Path:
    from audiolm.models.semantic.tokenizer import SemanticTokenizer

    gen = torch.Generator().manual_seed(seed)
    return SemanticTokenizer.mfcc(frame_rate, kmeans=torch.randn(vocab, 39, generator=gen)).save(directory)


def write_recipe(root: Path, name: str = "tiny", **overrides) -> Path:
    recipe = {
        "name": name,
        "codec": "codec",
        "semantic_tokenizer": "semantic",
        "semantic_stage": "semantic_stage",
        "coarse_stage": "coarse_stage",
        "fine_stage": "fine_stage",
        "kbps": 3.0,
        "sampling": {"semantic": {"temperature": 1.0}, "coarse": {"top_k": 50}, "fine": {"temperature": 0.8}},
        "description": "tiny random components for tests",
    }
    recipe.update(overrides)
    path = root / f"{name}.json" if name != "tiny" else root / "pipeline.json"
    path.write_text(json.dumps(recipe, indent=2))
    return path


def build_tiny_pipeline(root: str | Path) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    save_tiny_codec(root / "codec")
    save_tokenizer(root / "semantic")
    for i, stage in enumerate(("semantic", "coarse", "fine")):
        save_stage(root / f"{stage}_stage", stage_config(stage), seed=i)
    return write_recipe(root)


# -- WaveNets: a few layers, a few channels, receptive fields of tens of samples ---------------


def tiny_wavenet_config(**overrides):
    from audiolm.models.wavenet.config import WaveNetConfig

    fields = dict(
        sample_rate=8000,
        layers=6,
        stacks=2,
        residual_channels=8,
        dilation_channels=8,
        skip_channels=16,
        gc_channels=4,
        lc_channels=8,
        crop_samples=64,
    )
    fields.update(overrides)
    return WaveNetConfig(**fields)


def random_wavenet(config, seed: int = 0, std: float = 0.3):
    """Random weights large enough that the next-sample distribution is far from uniform, so
    fast and naive paths that differed would quickly sample differently."""
    from audiolm.models.wavenet.model import WaveNet

    torch.manual_seed(seed)
    model = WaveNet(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model
