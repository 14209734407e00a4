"""`audiolm wavenet generate`: audio sample by sample with a trained WaveNet.

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from audiolm.cli.args import check_output, UsageError
from audiolm.core.errors import ConfigError


def _setup_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="WaveNet checkpoint or training run directory")
    p.add_argument("--samples", type=int, help="new samples to generate (default with --codes: all they cover)")
    p.add_argument("-o", "--out", required=True, help="output .wav or .flac (prompt + continuation)")
    p.add_argument("--prompt", metavar="WAV", help="audio to continue")
    p.add_argument("--gc-id", metavar="K", help="speaker / instrument id (a number or a label of the model)")
    p.add_argument("--codes", metavar="FILE",
                   help='vocoder models: safetensors with "codes" [Q, T] or [1, Q, T], e.g. from '
                        '`audiolm codec IN OUT --save-codes FILE` or `audiolm continue --save-prompt FILE`; '
                        "codes with more levels than the vocoder's are cut to its first levels")
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
    from audiolm.core.checkpoint import load_tensors  # lazy: keeps `audiolm --help` fast
    tensors = load_tensors(path)
    if "codes" not in tensors:
        raise ConfigError(f"{path}: no tensor named 'codes' (found: {', '.join(sorted(tensors)) or 'none'})")
    codes = tensors["codes"]
    if codes.dim() == 3 and codes.shape[0] != 1:
        raise ConfigError(f"{path}: codes must be [Q, T] or [1, Q, T], got {list(codes.shape)}")
    if codes.dim() not in (2, 3):
        raise ConfigError(f"{path}: codes must be [Q, T] or [1, Q, T], got {list(codes.shape)}")
    return codes


def _run_generate(args: argparse.Namespace) -> int:
    import torch  # lazy: keeps `audiolm --help` fast
    from tqdm.auto import tqdm  # lazy: keeps `audiolm --help` fast

    from audiolm.core.audio import load_audio, save_audio  # lazy: keeps `audiolm --help` fast
    from audiolm.models.wavenet.model import WaveNet  # lazy: keeps `audiolm --help` fast

    out = Path(args.out)
    if out.suffix.lower() not in (".wav", ".flac"):
        raise UsageError(f"{out}: the output must be a .wav or .flac file")
    check_output(out, args.overwrite)
    if args.save_every < 0:
        raise UsageError("--save-every must be >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA GPU is available")
    model = WaveNet.from_pretrained(args.checkpoint, device=args.device)
    cfg = model.config
    prompt = None
    if args.prompt:
        wav, _ = load_audio(args.prompt, sample_rate=cfg.sample_rate, mono=True)  # [1, N]
        prompt = model.encode_audio(wav[0])
    gc = _parse_gc_id(args.gc_id, list(cfg.gc_labels))
    codes = _load_codes(args.codes) if args.codes else None
    if codes is not None and cfg.has_lc and codes.shape[-2] > cfg.lc_n_q:
        # residual VQ: the first levels of a higher bit rate are exactly the lower bit rate's codes
        print(f"{args.codes}: {codes.shape[-2]} codec levels; this vocoder uses the first {cfg.lc_n_q}",
              file=sys.stderr)
        codes = codes[..., : cfg.lc_n_q, :]
    n = args.samples
    if n is None:
        if codes is None:
            raise UsageError("--samples is required (unless --codes gives the length)")
        n = codes.shape[-1] * cfg.lc_hop - (0 if prompt is None else prompt.shape[0])
    if n < 1:
        raise UsageError(f"--samples must be >= 1, got {n}")
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
            save_audio(out, model.decode_audio(ids[0, :valid].cpu()), cfg.sample_rate)  # atomic rewrite
            state["saved"] = valid

    ids = model.generate(n, prompt=prompt, gc=gc, codes=codes, seed=args.seed, temperature=args.temperature,
                         naive=args.naive, callback=on_progress, callback_every=every)
    bar.update(ids.shape[1] - state["done"])
    bar.close()
    save_audio(out, model.decode_audio(ids[0].cpu()), cfg.sample_rate)
    print(f"wrote {out} ({ids.shape[1]} samples, {ids.shape[1] / cfg.sample_rate:.2f} s)")
    return 0


def register(cli) -> None:
    cli.add("wavenet generate", "generate audio sample by sample with a trained WaveNet",
            _setup_generate, _run_generate)
