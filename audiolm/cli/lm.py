"""CLI: `audiolm tokenize` and `audiolm train semantic|coarse|fine` (torch imported lazily)."""

from __future__ import annotations

import json
import dataclasses
import argparse
from pathlib import Path

from audiolm.cli.app import UsageError
from audiolm.core.config import load_config_file
from audiolm.core.errors import ConfigError
from audiolm.models.lm.config import STAGES, StageConfig


def register(cli) -> None:
    cli.add(
        "tokenize",
        "tokenize a corpus once into memory-mappable semantic + acoustic token shards",
        _tokenize_setup,
        _tokenize_run,
    )
    for stage in STAGES:
        cli.add(
            f"train {stage}",
            f"train the {stage} LM stage from token shards (audiolm tokenize)",
            _train_setup,
            lambda args, stage=stage: _train_run(args, stage),
        )


def _tokenize_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", metavar="CORPUS", help="corpus folder (audiolm corpus build)")
    parser.add_argument("out", metavar="OUT", help="token directory to write (resumed if interrupted)")
    parser.add_argument("--codec", metavar="DIR", help="codec directory (default: the embedded codec)")
    parser.add_argument("--semantic", metavar="DIR", help="semantic tokenizer directory (default: embedded)")
    parser.add_argument("--kbps", type=float, default=6.0, help="codec bandwidth: sets the RVQ levels kept (default 6)")
    parser.add_argument("--shard-size", type=int, default=64, help="utterances per shard (default 64)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it holds other tokens")


def _tokenize_run(args: argparse.Namespace) -> int:
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast
    from audiolm.training.data.tokenize_corpus import tokenize_corpus  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.tokenizer import SemanticTokenizer  # lazy: keeps `audiolm --help` fast

    if args.shard_size < 1:
        raise UsageError("--shard-size must be at least 1")
    from audiolm.core.corpus import read_manifest  # lazy: keeps `audiolm --help` fast

    read_manifest(args.corpus)  # a bad corpus fails before the tokenizers load
    codec = Codec.from_pretrained(args.codec)
    semantic = SemanticTokenizer.from_pretrained(args.semantic)
    index = tokenize_corpus(
        args.corpus,
        args.out,
        codec,
        semantic,
        kbps=args.kbps,
        codec_dir=args.codec,
        semantic_dir=args.semantic,
        shard_size=args.shard_size,
        overwrite=args.overwrite,
    )
    print(f"tokens written to {index.parent}")
    return 0


def _train_setup(parser: argparse.ArgumentParser) -> None:
    from audiolm.training.trainer import add_training_arguments  # lazy: keeps `audiolm --help` fast

    parser.add_argument("--tokens", required=True, metavar="DIR", help="token directory (audiolm tokenize)")
    parser.add_argument("--kind", help="train and validate on utterances of this kind only (speech, music)")
    add_training_arguments(parser, stage_train_defaults())


def stage_train_defaults():
    """TrainConfig defaults of the LM stages (flags and --train-config override them)."""
    from audiolm.training.trainer import TrainConfig  # lazy: keeps `audiolm --help` fast

    return TrainConfig(steps=2000, batch_size=16, lr=3e-4, warmup_steps=100, valid_every=200, save_every=200)


def _train_run(args: argparse.Namespace, stage: str) -> int:
    from audiolm.models.lm.stage import complete_stage_config  # lazy: keeps `audiolm --help` fast
    from audiolm.training.lm.task import StageTask  # lazy: keeps `audiolm --help` fast
    from audiolm.training.trainer import resolve_model_config, train_from_args  # lazy: keeps `audiolm --help` fast

    user_config = None
    if args.config:
        user_config = load_config_file(StageConfig, args.config)
        if user_config.stage != stage and "stage" in _json_keys(args.config):
            raise ConfigError(f"{args.config}: stage is {user_config.stage!r}, but this is `train {stage}`")
        user_config = dataclasses.replace(user_config, stage=stage)
    if args.resume:
        # the run's own (completed) config; a --config given too must complete to the same one
        config = resolve_model_config(argparse.Namespace(resume=True, out=args.out, config=None), StageConfig, None)
        task = StageTask(config, args.tokens, args.kind)
        if user_config is not None:
            from audiolm.training.data.shards import read_token_index  # lazy: keeps `audiolm --help` fast

            if complete_stage_config(user_config, read_token_index(args.tokens)) != config:
                raise ConfigError(f"{args.config}: differs from the model config of the run in {args.out}")
    else:
        task = StageTask(user_config or StageConfig(stage=stage), args.tokens, args.kind)
    train_from_args(task, args, stage_train_defaults())
    return 0


def _json_keys(path: str) -> set[str]:
    return set(json.loads(Path(path).read_text()))
