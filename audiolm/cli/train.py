"""`audiolm train {codec,pitch,ssl,kmeans,semantic,coarse,fine,wavenet}`: every model through the
one Trainer (audiolm/training/trainer.py); each command builds its Task.

    audiolm train codec --data CORPUS --out RUN [--config JSON] [--init CODEC] [--pitch-net RUN] [--resume] [--cpu-seconds S] [trainer flags]
    audiolm train pitch --data CORPUS --out RUN [--max-items N] [--music-items N] [--jobs J] [trainer flags]
    audiolm train {semantic,coarse,fine} --tokens DIR --out RUN [--config JSON] [--init STAGE] [--kind K] [--resume] [...]

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from audiolm.cli.args import UsageError, check_finite, check_output
from audiolm.core.config import load_config_file
from audiolm.core.errors import ConfigError
from audiolm.models.lm.config import STAGES, StageConfig, StageName

TRAIN_DEFAULTS = dict(
    steps=3000,
    batch_size=8,
    lr=3e-4,
    weight_decay=0.0,
    warmup_steps=50,
    valid_every=250,
    valid_batches=4,
    save_every=250,
    log_every=10,
)


def _codec_train_defaults():
    from audiolm.training.trainer import TrainConfig  # lazy: keeps `audiolm --help` fast

    return TrainConfig(**TRAIN_DEFAULTS)


def _setup_codec(parser: argparse.ArgumentParser) -> None:
    from audiolm.training.trainer import add_training_arguments  # lazy: keeps `audiolm --help` fast

    parser.add_argument("--data", required=True, metavar="CORPUS", help="corpus folder (manifest.jsonl)")
    parser.add_argument(
        "--cpu-seconds",
        type=float,
        default=None,
        metavar="S",
        help="stop (checkpointed) at the first multiple of --save-every steps at which this process "
        "has used S CPU seconds, all threads counted: equal-budget comparisons on a shared machine",
    )
    parser.add_argument(
        "--init",
        metavar="CODEC",
        help="start a new run from this codec's weights (a codec directory or run; the same network, "
        "the noise envelope per bin may become banded). With training.frozen [encoder, quantizer] "
        "in --config it trains a new decoder for the codec's tokens as they are",
    )
    parser.add_argument(
        "--pitch-net",
        metavar="RUN",
        help="track F0 for the pitch code with this trained pitch net (`audiolm train pitch`) instead "
        "of YIN: it goes into the codec (config pitch_net) and stays frozen. Needs a pitch-code config "
        "(pitch_codebook); with --init a YIN codec, its decoder learns the net's F0",
    )
    add_training_arguments(parser, _codec_train_defaults())


def _run_codec(args: argparse.Namespace) -> int:
    from audiolm.models.codec.config import CodecConfig  # lazy: keeps `audiolm --help` fast
    from audiolm.training.codec.task import CodecTask  # lazy: keeps `audiolm --help` fast
    from audiolm.training.trainer import (  # lazy: keeps `audiolm --help` fast
        read_run_file,
        resolve_model_config,
        train_from_args,
    )

    if args.cpu_seconds is not None and not args.cpu_seconds > 0:
        raise UsageError(f"--cpu-seconds must be > 0, got {args.cpu_seconds:g}")
    config = resolve_model_config(args, CodecConfig, CodecConfig())
    if args.resume:
        if args.pitch_net is not None:
            raise UsageError("--pitch-net starts a run with a pitch net; a resumed run keeps its own (drop it)")
        # the weights a run started from (`--init`, `--pitch-net`), for a run killed before its first checkpoint
        run = read_run_file(Path(args.out))
        args.init, args.pitch_net = run.get("init"), run.get("pitch_net")
    elif args.pitch_net is not None:
        config = _with_pitch_net(config, args.pitch_net)

    def make_task(seed: int) -> CodecTask:
        return CodecTask.from_corpus(config, args.data, seed=seed, init=args.init, pitch_net=args.pitch_net)

    if args.cpu_seconds is None:
        # train_from_args leaves the run's seed (--seed, or run.json's on --resume) in args.seed
        train_from_args(lambda: make_task(args.seed), args, _codec_train_defaults())
    else:
        _train_codec_cpu_budget(make_task, args)
    return 0


def _with_pitch_net(config, pitch_net: str):
    """The codec config with the trained pitch net's config as its tracker (`--pitch-net`)."""
    from audiolm.core.checkpoint import load_checkpoint, resolve_checkpoint_dir  # lazy: keeps `audiolm --help` fast
    from audiolm.models.codec.config import PitchNetConfig  # lazy: keeps `audiolm --help` fast

    if not Path(pitch_net).exists():
        raise UsageError(f"--pitch-net {pitch_net}: no such run or model directory")
    net = load_checkpoint(resolve_checkpoint_dir(pitch_net), "pitch", PitchNetConfig).config
    try:
        return dataclasses.replace(config, pitch_net=net)
    except ValueError as e:  # CodecConfig's checks: a pitch-code codec with the net's framing
        raise ConfigError(f"--pitch-net {pitch_net}: {e}") from None


def _train_codec_cpu_budget(make_task, args: argparse.Namespace) -> None:
    """Train in legs of --save-every steps until --steps or --cpu-seconds of process CPU time.

    The shared Trainer stops only at a step count, so the budget is checked between legs
    (`fit(stop_after=...)` checkpoints and exports at each leg's end)."""
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.training.trainer import Trainer, train_config_from_args  # lazy: keeps `audiolm --help` fast

    start = time.process_time()
    config = train_config_from_args(args, _codec_train_defaults())
    torch.manual_seed(config.seed)  # before the task builds its model: --seed sets the initial weights
    trainer = Trainer(make_task(config.seed), config, args.out, resume=args.resume)
    out = None
    while trainer.step < config.steps:
        out = trainer.fit(stop_after=min(trainer.step + config.save_every, config.steps))
        used = time.process_time() - start
        if used >= args.cpu_seconds:
            print(f"CPU budget reached: {used:.0f} CPU s at step {trainer.step}", file=sys.stderr)
            break
    if out is None:
        out = trainer.export()
    print(f"model written to {out}")


def _pitch_train_defaults():
    from audiolm.training.trainer import TrainConfig  # lazy: keeps `audiolm --help` fast

    # 8-20 min on one CPU thread at the default PitchNetConfig (0.63 M parameters, 16 x 1 s crops;
    # BENCHMARKS.md, codec section, "Session 13")
    return TrainConfig(
        steps=8000,
        batch_size=16,
        lr=1e-3,
        weight_decay=0.01,
        warmup_steps=200,
        valid_every=500,
        valid_batches=4,
        save_every=500,
        log_every=50,
    )


def _setup_pitch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="CORPUS", help="corpus folder (manifest.jsonl)")
    p.add_argument(
        "--max-items", type=int, default=1500, help="speech items of the train split to label (default 1500)"
    )
    p.add_argument("--music-items", type=int, default=150, help="music items of the train split (default 150)")
    p.add_argument("--valid-items", type=int, default=64, help="valid-split items scored against Harvest (default 64)")
    p.add_argument(
        "--jobs", type=int, default=1, help="processes for the Harvest labels (about 2.5x real time each; default 1)"
    )
    from audiolm.training.trainer import add_training_arguments  # lazy: keeps `audiolm --help` fast

    add_training_arguments(p, _pitch_train_defaults())


def _run_pitch(args: argparse.Namespace) -> int:
    from audiolm.models.codec.config import PitchNetConfig  # lazy: keeps `audiolm --help` fast
    from audiolm.training.trainer import (  # lazy: keeps `audiolm --help` fast
        read_run_file,
        resolve_model_config,
        train_from_args,
    )

    for flag in ("max_items", "valid_items", "jobs"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.music_items < 0:
        raise UsageError(f"--music-items must be >= 0, got {args.music_items}")
    _require_pyworld()
    config = resolve_model_config(args, PitchNetConfig, PitchNetConfig())
    if args.resume:  # the items a run labelled are its own
        run = read_run_file(Path(args.out))
        args.max_items, args.music_items, args.valid_items = run["items"]
    from audiolm.training.pitch.task import PitchTask  # lazy: keeps `audiolm --help` fast

    def make_task() -> PitchTask:  # after train_from_args has set args.seed (the run's own on --resume)
        return PitchTask(
            config,
            args.data,
            Path(args.out) / "labels",
            max_items=args.max_items,
            music_items=args.music_items,
            valid_items=args.valid_items,
            seed=args.seed,
            jobs=args.jobs,
        )

    train_from_args(make_task, args, _pitch_train_defaults())
    return 0


def _require_pyworld() -> None:
    """A one-line error when the eval extra's pyworld (the Harvest labels) is missing."""
    from audiolm.models.codec.harvest import HarvestUnavailable, load_pyworld  # lazy: keeps `audiolm --help` fast

    try:
        load_pyworld()
    except HarvestUnavailable as e:
        raise UsageError(f"train pitch labels with Harvest: {e}") from None


def _ssl_train_defaults():
    from audiolm.training.trainer import TrainConfig  # lazy: keeps `audiolm --help` fast

    # about half an hour on a small CPU with the default SSLConfig (25 Hz, 8 x 2 s crops per step)
    return TrainConfig(
        steps=1500,
        batch_size=8,
        lr=1e-3,
        warmup_steps=100,
        valid_every=250,
        valid_batches=8,
        save_every=250,
        log_every=25,
    )


def _setup_ssl(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (manifest.jsonl); trains on its train split")
    p.add_argument(
        "--targets",
        help="tokenizer directory whose ids the MLM module predicts (HuBERT-style, e.g. "
        "`audiolm train kmeans --mfcc`); sets target_clusters to its K unless the config sets it. "
        "Pass it again with --resume",
    )
    from audiolm.training.trainer import add_training_arguments  # lazy: keeps `audiolm --help` fast

    add_training_arguments(p, _ssl_train_defaults())


def _run_ssl(args: argparse.Namespace) -> int:
    from audiolm.models.semantic.config import SSLConfig  # lazy: keeps `audiolm --help` fast
    from audiolm.training.semantic.task import SSLTask  # lazy: keeps `audiolm --help` fast
    from audiolm.training.trainer import resolve_model_config, train_from_args  # lazy: keeps `audiolm --help` fast

    defaults = SSLConfig()
    if args.targets:
        from audiolm.models.semantic.tokenizer import SemanticTokenizer  # lazy: keeps `audiolm --help` fast

        targets = SemanticTokenizer.from_pretrained(args.targets)
        defaults = dataclasses.replace(defaults, target_clusters=targets.vocab_size, frame_rate=targets.frame_rate)
    config = resolve_model_config(args, SSLConfig, defaults)
    train_from_args(lambda: SSLTask.from_corpus(config, args.data, args.targets), args, _ssl_train_defaults())
    return 0


def _setup_kmeans(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ssl", help="SSL training run or exported model (audiolm train ssl --out RUN)")
    src.add_argument("--hf", help="local transformers directory: HuBERT, wav2vec 2.0 or w2v-BERT 2.0")
    src.add_argument("--mfcc", action="store_true", help="the MFCC baseline tokenizer")
    p.add_argument("--layer", type=int, default=None, help="feature layer (required with --ssl / --hf)")
    p.add_argument("--k", type=int, default=256, help="number of centroids = vocabulary size (default 256)")
    p.add_argument("--out", required=True, help="tokenizer directory to write (SemanticTokenizer.from_pretrained)")
    p.add_argument("--data", help="corpus folder (default: the corpus the SSL run trained on)")
    p.add_argument("--frame-rate", type=int, default=50, choices=(25, 50), help="frame rate for --mfcc")
    p.add_argument("--max-frames", type=int, default=400_000, help="frames sampled for k-means (default 400000)")
    p.add_argument("--steps", type=int, default=300, help="mini-batch k-means steps (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _run_kmeans(args: argparse.Namespace) -> int:
    from audiolm.core.checkpoint import resolve_checkpoint_dir  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.kmeans import resolve_device  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.tokenizer import SemanticTokenizer  # lazy: keeps `audiolm --help` fast

    check_output(args.out, args.overwrite)
    if (args.ssl or args.hf) and args.layer is None:
        raise UsageError("--layer is required with --ssl / --hf")
    data = args.data
    if args.ssl:
        tok = SemanticTokenizer.from_ssl(args.ssl, args.layer)
        if data is None:
            record = resolve_checkpoint_dir(args.ssl) / "ssl_data.json"
            if record.is_file():
                data = json.loads(record.read_text()).get("data")
    elif args.hf:
        tok = SemanticTokenizer.from_hf(args.hf, args.layer)
    else:
        tok = SemanticTokenizer.mfcc(args.frame_rate)
    if data is None:
        raise UsageError("--data is required (the SSL run does not record its corpus)")
    device = resolve_device(args.device)
    tok.to(device)
    tok.fit_kmeans(data, args.k, max_frames=args.max_frames, steps=args.steps, seed=args.seed, device=str(device))
    out = tok.to("cpu").save(args.out)
    print(f"tokenizer written to {out} (K={tok.vocab_size}, layer {tok.layer}, {tok.frame_rate} Hz)")
    return 0


def _setup_stage(parser: argparse.ArgumentParser) -> None:
    from audiolm.training.trainer import add_training_arguments  # lazy: keeps `audiolm --help` fast

    parser.add_argument("--tokens", required=True, metavar="DIR", help="token directory (audiolm tokenize)")
    parser.add_argument("--kind", help="train and validate on utterances of this kind only (speech, music)")
    parser.add_argument(
        "--init",
        metavar="STAGE",
        help="start a new run from this stage's weights (a checkpoint directory such as "
        "checkpoints/stage_coarse, or a run): fine-tuning, e.g. on your own audio's tokens. "
        "Its config is the run's (a --config given too must describe the same model; it may change "
        "dropout, join_voice and the context: model.max_seq_len, window_frames)",
    )
    add_training_arguments(parser, stage_train_defaults())


def stage_train_defaults():
    """TrainConfig defaults of the LM stages (flags and --train-config override them)."""
    from audiolm.training.trainer import TrainConfig  # lazy: keeps `audiolm --help` fast

    return TrainConfig(steps=2000, batch_size=16, lr=3e-4, warmup_steps=100, valid_every=200, save_every=200)


def _run_stage(args: argparse.Namespace, stage: StageName) -> int:
    from audiolm.models.lm.stage import complete_stage_config  # lazy: keeps `audiolm --help` fast
    from audiolm.training.lm.task import StageTask, read_init_stage_config  # lazy: keeps `audiolm --help` fast
    from audiolm.training.trainer import (  # lazy: keeps `audiolm --help` fast
        read_run_file,
        resolve_model_config,
        train_from_args,
    )

    user_config = None
    if args.config:
        user_config = load_config_file(StageConfig, args.config)
        if user_config.stage != stage and "stage" in _json_keys(args.config):
            raise ConfigError(f"{args.config}: stage is {user_config.stage!r}, but this is `train {stage}`")
        user_config = dataclasses.replace(user_config, stage=stage)
    if args.resume:
        # the run's own (completed) config; a --config given too must complete to the same one
        config = resolve_model_config(argparse.Namespace(resume=True, out=args.out, config=None), StageConfig, None)
        if user_config is not None:
            from audiolm.training.data.shards import read_token_index  # lazy: keeps `audiolm --help` fast

            if complete_stage_config(user_config, read_token_index(args.tokens)) != config:
                raise ConfigError(f"{args.config}: differs from the model config of the run in {args.out}")
        args.init = read_run_file(Path(args.out)).get("init")  # for a run killed before its first checkpoint
    elif args.init is not None:
        # the init stage's own config, or a --config that must complete to the same model but for
        # task.INIT_MAY_DIFFER (dropout, join_voice, the context; StageTask checks)
        config = user_config or read_init_stage_config(args.init, stage)
    else:
        config = user_config or StageConfig(stage=stage)
    # a factory: the trainer seeds torch (--seed) before the task builds its Transformer
    train_from_args(lambda: StageTask(config, args.tokens, args.kind, init=args.init), args, stage_train_defaults())
    return 0


def _json_keys(path: str) -> set[str]:
    return set(json.loads(Path(path).read_text()))


def _wavenet_train_defaults():
    from audiolm.training.trainer import TrainConfig  # lazy: keeps `audiolm --help` fast

    return TrainConfig(
        steps=5000,
        batch_size=4,
        lr=1e-3,
        warmup_steps=200,
        valid_every=500,
        valid_batches=4,
        save_every=500,
        log_every=25,
    )


def _setup_wavenet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="a folder of audio files (searched recursively) or a corpus folder")
    p.add_argument(
        "--gc",
        action="store_true",
        help="global conditioning on the corpus 'speaker' labels (or one subfolder per label)",
    )
    p.add_argument("--lc-codec", metavar="DIR", help="codec directory: condition on its codes (a vocoder)")
    p.add_argument("--lc-kbps", type=float, default=6.0, help="codec bit rate for the codes (default 6)")
    from audiolm.training.trainer import add_training_arguments  # lazy: keeps `audiolm --help` fast

    add_training_arguments(p, _wavenet_train_defaults())


def _run_wavenet(args: argparse.Namespace) -> int:
    from audiolm.models.wavenet.config import WaveNetConfig  # lazy: keeps `audiolm --help` fast
    from audiolm.training.trainer import resolve_model_config, train_from_args  # lazy: keeps `audiolm --help` fast
    from audiolm.training.wavenet.task import WaveNetTask  # lazy: keeps `audiolm --help` fast

    config = resolve_model_config(args, WaveNetConfig, WaveNetConfig())
    codec = None
    if args.lc_codec:
        from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast

        codec = Codec.from_pretrained(args.lc_codec)
    use_gc = args.gc or (args.resume and config.has_gc)
    train_from_args(
        lambda: WaveNetTask(config, args.data, gc=use_gc, codec=codec, kbps=args.lc_kbps),
        args,
        _wavenet_train_defaults(),
    )
    return 0


_POSITIVE_INT_FLAGS = ("steps", "batch_size", "grad_accum", "valid_every", "save_every", "keep_last")


def _check_train_flags(args: argparse.Namespace) -> None:
    """The trainer flags' ranges, before any data or model loads."""
    for name in _POSITIVE_INT_FLAGS:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    for name in ("warmup_steps", "num_workers"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    check_finite(getattr(args, "lr", None), "--lr", positive=True)
    if getattr(args, "init", None) is not None and args.resume:
        raise UsageError("--init starts a new run from trained weights; --resume continues a run (drop one)")
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed < 2**32:
        raise UsageError(f"--seed must be in [0, {2**32 - 1}], got {seed}")


def _run_in_locked_dir(run):
    """Wrap a `train ...` run: check the flags and --out, lock the run directory for the whole
    run (a second `train --out RUN` fails in one line; the Trainer inside shares the lock and
    removes what a killed run left there)."""

    def wrapped(args: argparse.Namespace) -> int:
        from audiolm.core.outputs import RunLock  # lazy: keeps `audiolm --help` fast

        _check_train_flags(args)
        if int(os.environ.get("RANK", "0")) > 0:
            # a multi-process launch (torchrun / accelerate): process 0 owns the run directory
            # (checks, lock, clean-up) and is the only writer; the others would see its files
            return run(args)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out}: is a file, not a run directory")
        if args.resume and not (out / "run.json").is_file():
            raise UsageError(f"{out}: no training run to resume (no run.json)")
        if not args.resume and out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
            raise UsageError(f"{out}: already holds files; pass --resume to continue that run or choose another --out")
        with RunLock(out):
            return run(args)

    return wrapped


def register(cli) -> None:
    cli.add(
        "train ssl",
        "pretrain the SSL encoder (w2v-BERT: contrastive + masked prediction)",
        _setup_ssl,
        _run_in_locked_dir(_run_ssl),
    )
    cli.add(
        "train kmeans",
        "fit k-means on one encoder layer and write a SemanticTokenizer directory",
        _setup_kmeans,
        _run_kmeans,
    )
    cli.add(
        "train wavenet",
        "train a WaveNet on raw μ-law samples (optionally GC / LC conditioned)",
        _setup_wavenet,
        _run_in_locked_dir(_run_wavenet),
    )
    for stage in STAGES:
        cli.add(
            f"train {stage}",
            f"train the {stage} LM stage from token shards (audiolm tokenize)",
            _setup_stage,
            _run_in_locked_dir(lambda args, stage=stage: _run_stage(args, stage)),
        )
    cli.add(
        "train codec",
        "train the codec from scratch on a corpus (RVQ, mel + adversarial losses)",
        _setup_codec,
        _run_in_locked_dir(_run_codec),
    )
    cli.add(
        "train pitch",
        "train the codec's pitch net: Harvest's F0 distilled into a small causal classifier",
        _setup_pitch,
        _run_in_locked_dir(_run_pitch),
    )
