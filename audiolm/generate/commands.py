"""CLI: `audiolm bench decode` (torch imported lazily)."""

from __future__ import annotations

import argparse


def register(cli) -> None:
    cli.add(
        "bench decode",
        "decoding speed (tokens/s) of the LM stages vs Hugging Face generate(), and the bandwidth bound",
        _setup,
        _run,
    )


def _setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default cpu)")
    parser.add_argument("--sizes", default="10M,50M", help="comma-separated model sizes: 10M, 50M (default both)")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per run (default 128 on CPU, 512 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case; the best counts (default 3)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="weights and cache dtype, for both implementations (default float32)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face generate() peer")


def _run(args: argparse.Namespace) -> int:
    import torch

    from audiolm.cli import UsageError, print_json
    from audiolm.eval.machine import describe_machine
    from audiolm.generate.bench import SIZES, bench_decode

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise UsageError(f"--sizes: unknown size(s) {', '.join(unknown) or '(none)'}; known: {', '.join(SIZES)}")
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--batches: expected integers like 1,8, got {args.batches!r}") from None
    if not batches or min(batches) < 1:
        raise UsageError("--batches: batch sizes must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available")
    if args.repeats < 1 or (args.new_tokens is not None and args.new_tokens < 1):
        raise UsageError("--repeats and --new-tokens must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    new_tokens = args.new_tokens or (512 if device.type == "cuda" else 128)
    bandwidth, results = bench_decode(
        sizes, batches, device, new_tokens=new_tokens, repeats=args.repeats, with_hf=not args.no_hf,
        dtype=getattr(torch, args.dtype),
    )
    machine = describe_machine(args.device)
    if args.json:
        print_json(
            {"machine": machine, "bandwidth_GBps": bandwidth, "results": [r.to_json() for r in results]}
        )
        return 0
    print(f"machine: {machine}; copy bandwidth {bandwidth:.1f} GB/s; {new_tokens} new tokens per run; {args.dtype}")
    print(f"{'impl':8} {'params':>10} {'batch':>5} {'tokens/s':>10} {'bound':>10} {'of bound':>8}")
    for r in results:
        print(
            f"{r.impl:8} {r.params:>10,} {r.batch:>5} {r.tokens_per_s:>10.1f} {r.bound_tokens_per_s:>10.1f}"
            f" {r.tokens_per_s / r.bound_tokens_per_s:>8.0%}"
        )
    return 0
