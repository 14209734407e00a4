"""CLI: `audiolm bench decode` and `audiolm bench fine` (torch imported lazily)."""

from __future__ import annotations

import argparse

from audiolm.cli.app import print_json, UsageError


def register(cli) -> None:
    cli.add(
        "bench decode",
        "decoding speed (tokens/s) of the LM stages vs Hugging Face generate(), and the bandwidth bound",
        _setup,
        _run,
    )
    cli.add(
        "bench fine",
        "fine stages side by side: held-out cross entropy per fine level and generation time",
        _fine_setup,
        _fine_run,
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
    parser.add_argument("--decode-weights", choices=["float32", "bfloat16"], default=None,
                        help="our packed CPU decoding weights (default: the model's dtype; bfloat16 is lossy)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall clock, or process CPU time (CPU, --threads 1 only: fair on a shared machine)")
    parser.add_argument("--compile", action="store_true",
                        help="also time our decoder with its torch.compile'd step (CPU; impl audiolm-compiled)")


def _run(args: argparse.Namespace) -> int:
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.lm.bench import SIZES, bench_decode  # lazy: keeps `audiolm --help` fast

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
    _set_threads(args)
    if args.clock == "cpu" and args.device != "cpu":
        raise UsageError("--clock cpu needs --device cpu and --threads 1")
    if args.compile:
        from audiolm.inference.compiled_step import compile_unavailable  # lazy: keeps `audiolm --help` fast

        if args.device != "cpu":
            raise UsageError("--compile is for --device cpu (CUDA decoding uses a graph-captured step)")
        if compile_unavailable():
            raise UsageError(f"--compile: {compile_unavailable()}")
    device = torch.device(args.device)
    new_tokens = args.new_tokens or (512 if device.type == "cuda" else 128)
    bandwidth, results = bench_decode(
        sizes, batches, device, new_tokens=new_tokens, repeats=args.repeats, with_hf=not args.no_hf,
        dtype=getattr(torch, args.dtype), clock=args.clock, decode_weights=args.decode_weights,
        compile=args.compile,
    )
    machine = describe_machine(args.device) + ("; timed in process CPU time" if args.clock == "cpu" else "")
    if args.decode_weights:
        machine += f"; our decoding weights {args.decode_weights}"
    if args.json:
        print_json(
            {"machine": machine, "bandwidth_GBps": bandwidth, "results": [r.to_json() for r in results]}
        )
        return 0
    print(f"machine: {machine}; read bandwidth {bandwidth:.1f} GB/s; {new_tokens} new tokens per run; {args.dtype}")
    print(f"{'impl':16} {'params':>10} {'batch':>5} {'tokens/s':>10} {'bound':>10} {'of bound':>8}")
    for r in results:
        print(
            f"{r.impl:16} {r.params:>10,} {r.batch:>5} {r.tokens_per_s:>10.1f} {r.bound_tokens_per_s:>10.1f}"
            f" {r.tokens_per_s / r.bound_tokens_per_s:>8.0%}"
        )
    return 0


def _fine_setup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stages", nargs="+", metavar="STAGE", help="fine stage checkpoint or run directories")
    parser.add_argument("--tokens", required=True, metavar="DIR", help="token directory; its valid split is held out")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio whose fine levels are generated (default 4)")
    parser.add_argument("--prompt-seconds", type=float, default=3.0, help="known prompt before it (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts (default 3)")
    parser.add_argument("--max-windows", type=int, default=None, help="cap on held-out windows (default all)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall clock, or process CPU time (--threads 1 only: fair on a shared machine)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _fine_run(args: argparse.Namespace) -> int:
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.lm.bench_fine import bench_fine  # lazy: keeps `audiolm --help` fast

    if args.seconds <= 0 or args.prompt_seconds < 0:
        raise UsageError("--seconds must be > 0 and --prompt-seconds >= 0")
    if args.repeats < 1 or (args.max_windows is not None and args.max_windows < 1):
        raise UsageError("--repeats and --max-windows must be >= 1")
    _set_threads(args)
    results = bench_fine(
        args.stages, args.tokens, seconds=args.seconds, prompt_seconds=args.prompt_seconds,
        repeats=args.repeats, max_windows=args.max_windows, clock=args.clock,
    )
    machine = describe_machine("cpu") + ("; timed in process CPU time" if args.clock == "cpu" else "")
    if args.json:
        print_json({"machine": machine, "results": [r.to_json() for r in results]})
        return 0
    levels = list(results[0].ce_nats)
    print(f"machine: {machine}; {results[0].windows} held-out windows ({results[0].frames} frames per level)")
    print(f"{'style':6} {'params':>10} " + " ".join(f"{'CE L' + str(q):>8}" for q in levels) + f" {'mean':>8} {'gen s':>8}  stage")
    for r in results:
        ce = " ".join(f"{r.ce_nats[q]:>8.3f}" for q in levels)
        print(f"{r.fine_style:6} {r.params:>10,} {ce} {r.ce_mean:>8.3f} {r.generate_s:>8.3f}  {r.stage}")
    return 0


def _set_threads(args: argparse.Namespace) -> None:
    """Apply --threads; --clock cpu (process CPU time) is only fair with one thread."""
    import torch  # lazy: keeps `audiolm --help` fast

    if args.threads is not None:
        if args.threads < 1:
            raise UsageError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and torch.get_num_threads() != 1:
        raise UsageError("--clock cpu needs --threads 1")
