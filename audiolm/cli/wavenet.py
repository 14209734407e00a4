"""`audiolm wavenet generate`: audio sample by sample with a trained WaveNet.

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from audiolm.cli.args import UsageError, check_finite, pick_device
from audiolm.core.errors import ConfigError


def _setup_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="WaveNet checkpoint or training run directory")
    p.add_argument("--samples", type=int, help="new samples to generate (default with --codes: all they cover)")
    p.add_argument("-o", "--out", required=True, help="output .wav or .flac (prompt + continuation)")
    p.add_argument("--prompt", metavar="WAV", help="audio to continue")
    p.add_argument("--gc-id", metavar="K", help="speaker / instrument id (a number or a label of the model)")
    p.add_argument(
        "--codes",
        metavar="FILE",
        help='vocoder models: safetensors with "codes" [Q, T] or [1, Q, T], e.g. from '
        "`audiolm codec IN OUT --save-codes FILE` or `audiolm continue --save-prompt FILE`; "
        "codes with more levels than the vocoder's are cut to its first levels",
    )
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="rewrite the output every N samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    p.add_argument("--naive", action="store_true", help="recompute the whole receptive field per sample (slow)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")


def _parse_gc_id(value: str | None, labels: list[str]):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass

    if value in labels:
        return labels.index(value)
    known = ", ".join(labels[:10]) if labels else "none (the model has no labels)"
    raise ConfigError(f"--gc-id {value!r} is neither a number nor one of the model's labels: {known}")


def _load_codes(path: str):
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.core.checkpoint import load_tensors  # lazy: keeps `audiolm --help` fast

    tensors = load_tensors(path)
    if "codes" not in tensors:
        raise ConfigError(f"{path}: no tensor named 'codes' (found: {', '.join(sorted(tensors)) or 'none'})")
    codes = tensors["codes"]
    if codes.dim() == 3 and codes.shape[0] != 1:
        raise ConfigError(f"{path}: codes must be [Q, T] or [1, Q, T], got {list(codes.shape)}")
    if codes.dim() not in (2, 3):
        raise ConfigError(f"{path}: codes must be [Q, T] or [1, Q, T], got {list(codes.shape)}")
    if codes.is_floating_point() or codes.dtype == torch.bool or codes.is_complex():
        raise ConfigError(f"{path}: codes must be integers, got {codes.dtype}")
    if codes.numel() == 0 or int(codes.min()) < 0:
        raise ConfigError(f"{path}: codes must be a non-empty set of ids >= 0")
    return codes


MAX_SECONDS = 3600.0  # of generated audio in one command


def _check_generate_arguments(args: argparse.Namespace) -> int:
    """Ranges of every number, the output name, and the model's sample rate (from its
    config.json alone) to bound --samples: all before the model loads. Returns the rate."""
    from audiolm.core.checkpoint import (  # lazy: keeps `audiolm --help` fast
        read_checkpoint_header,
        resolve_checkpoint_dir,
    )

    out = Path(args.out)
    if out.suffix.lower() not in (".wav", ".flac"):
        raise UsageError(f"{out}: the output must be a .wav or .flac file")
    if args.save_every < 0:
        raise UsageError("--save-every must be >= 0")
    check_finite(args.temperature, "--temperature", low=0.0)
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed must be in [0, {2**32 - 1}], got {args.seed}")
    header = read_checkpoint_header(resolve_checkpoint_dir(args.checkpoint))
    rate = header.get("config", {}).get("sample_rate") if isinstance(header.get("config"), dict) else None
    if not isinstance(rate, int) or isinstance(rate, bool) or not 1000 <= rate <= 384_000:
        raise ConfigError(f"{args.checkpoint}: config sample_rate {rate!r} is not a sample rate")
    if args.samples is not None and not 1 <= args.samples <= MAX_SECONDS * rate:
        raise UsageError(
            f"--samples must be in [1, {int(MAX_SECONDS * rate)}] ({MAX_SECONDS:g} s at {rate} Hz), got {args.samples}"
        )
    if args.prompt:
        from audiolm.core.audio import audio_duration, check_not_truncated  # lazy: keeps `audiolm --help` fast

        check_not_truncated(Path(args.prompt))
        audio_duration(args.prompt)
    if args.codes:
        _load_codes(args.codes)
    return rate


def _run_generate(args: argparse.Namespace) -> int:
    _check_generate_arguments(args)
    import torch  # lazy: keeps `audiolm --help` fast
    from tqdm.auto import tqdm  # lazy: keeps `audiolm --help` fast

    from audiolm.core.audio import load_audio, save_audio  # lazy: keeps `audiolm --help` fast
    from audiolm.core.outputs import OutputSet  # lazy: keeps `audiolm --help` fast
    from audiolm.models.wavenet.model import WaveNet  # lazy: keeps `audiolm --help` fast

    out = Path(args.out)
    device = pick_device(args.device)
    with OutputSet() as outputs:
        claim = outputs.claim(out, args.overwrite, "-o")
        model = WaveNet.from_pretrained(args.checkpoint, device=device)
        cfg = model.config
        prompt = None
        if args.prompt:
            wav, _ = load_audio(args.prompt, sample_rate=cfg.sample_rate, mono=True)  # [1, N]
            prompt = model.encode_audio(wav[0])
        gc = _parse_gc_id(args.gc_id, list(cfg.gc_labels))
        codes = _load_codes(args.codes) if args.codes else None
        if codes is not None and cfg.has_lc and codes.shape[-2] > cfg.lc_n_q:
            # residual VQ: the first levels of a higher bit rate are exactly the lower bit rate's codes
            print(
                f"{args.codes}: {codes.shape[-2]} codec levels; this vocoder uses the first {cfg.lc_n_q}",
                file=sys.stderr,
            )
            codes = codes[..., : cfg.lc_n_q, :]
        n = args.samples
        if n is None:
            if codes is None:
                raise UsageError("--samples is required (unless --codes gives the length)")
            n = codes.shape[-1] * cfg.lc_hop - (0 if prompt is None else prompt.shape[0])
        if not 1 <= n <= MAX_SECONDS * cfg.sample_rate:
            raise UsageError(f"--samples must be in [1, {int(MAX_SECONDS * cfg.sample_rate)}], got {n}")
        # check the arguments before any output (and before a long run ends in an error)
        model.conditioning.check_gc(gc, 1)
        model.conditioning.check_codes(codes, 1)

        bar = tqdm(total=n, desc="wavenet", unit="sample", unit_scale=True, file=sys.stderr, dynamic_ncols=True)
        every = math.gcd(args.save_every, 1000) if args.save_every else 1000
        start = 0 if prompt is None else prompt.shape[0]
        state = {"done": start, "saved": start}

        def on_progress(ids: torch.Tensor, valid: int) -> None:
            bar.update(valid - state["done"])
            state["done"] = valid
            if args.save_every and valid - state["saved"] >= args.save_every:
                save_audio(claim.temp, model.decode_audio(ids[0, :valid].cpu()), cfg.sample_rate, atomic=False)
                claim.publish()  # the first publish never replaces; later ones replace our own file
                state["saved"] = valid

        ids = model.generate(
            n,
            prompt=prompt,
            gc=gc,
            codes=codes,
            seed=args.seed,
            temperature=args.temperature,
            naive=args.naive,
            callback=on_progress,
            callback_every=every,
        )
        bar.update(ids.shape[1] - state["done"])
        bar.close()
        save_audio(claim.temp, model.decode_audio(ids[0].cpu()), cfg.sample_rate, atomic=False)
        outputs.publish()
    print(f"wrote {out} ({ids.shape[1]} samples, {ids.shape[1] / cfg.sample_rate:.2f} s)")
    return 0


def register(cli) -> None:
    cli.add(
        "wavenet generate", "generate audio sample by sample with a trained WaveNet", _setup_generate, _run_generate
    )
