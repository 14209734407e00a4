"""`audiolm bench {codec,semantic,decode,fine,continue,prompts,compare,wavenet,train,gpu}`: speed (--json: one JSON object).

    audiolm bench codec [--codec DIR | --random] [--device cpu|cuda|all] [--threads N] [--json]
    audiolm bench continue [--pipeline P] [--json] [--device cpu|cuda] [--batches 1,8] [--seconds S]
                                                                     (audiolm/evaluation/bench_continue.py)
    audiolm bench prompts [--pipeline P] [--prompt-seconds 1,1.5,...] [--seconds S] [--repeats N]
                                                                     (audiolm/evaluation/bench_prompts.py)
    audiolm bench stream [--pipeline P] [--json] [--seconds 10] [--prompt-seconds 3]
                                                                     (audiolm/evaluation/bench_stream.py)
    audiolm bench serve [--pipeline P] [--concurrency 8] [--rounds 2] [--seconds 2] [--json]
                                                                     (audiolm/evaluation/bench_serve.py)
    audiolm bench compare --data CORPUS [--pipeline P] [--wavenet CKPT] [--vocoder CKPT] [--n N] [--json]
                                                                     (audiolm/evaluation/compare.py)
    audiolm bench train [--stage coarse] [--processes 1,2] [--json] (audiolm/evaluation/bench_train.py)
    audiolm bench gpu [--json]                                       (audiolm/evaluation/gpu_check.py)

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from audiolm.cli.args import (
    UsageError,
    add_codec_argument,
    add_pipeline_arguments,
    add_table_output_arguments,
    check_corpus_and_table_output,
    load_pipeline,
    parse_batches,
    print_json,
    write_report,
)
from audiolm.core.config import load_config_file


def _setup_codec(parser: argparse.ArgumentParser) -> None:
    add_codec_argument(parser)
    parser.add_argument(
        "--random",
        action="store_true",
        help="time a randomly initialised codec (default config, or --config) instead of a checkpoint",
    )
    parser.add_argument("--config", metavar="JSON", help="codec config for --random")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure, best kept (default 3)")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per call (default 1)")
    parser.add_argument("--device", default="all", help="cpu | cuda | all (default all: cpu, and cuda if present)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: torch's own choice); 1 = the one-thread figure",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _run_codec(args: argparse.Namespace) -> int:
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.evaluation.codec.bench import bench_codec, format_bench  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast

    if args.seconds <= 0 or args.repeats < 1 or args.batch_size < 1:
        raise UsageError("--seconds must be > 0, --repeats and --batch-size >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.random:
        if args.codec:
            raise UsageError("give --codec or --random, not both")
        from audiolm.models.codec.config import CodecConfig  # lazy: keeps `audiolm --help` fast
        from audiolm.models.codec.model import CodecModel  # lazy: keeps `audiolm --help` fast

        config = load_config_file(CodecConfig, args.config) if args.config else CodecConfig()
        torch.manual_seed(0)
        codec = Codec(CodecModel(config), source="random init")
    else:
        codec = Codec.from_pretrained(args.codec)
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    elif args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available")
    else:
        devices = [args.device]
    reports = []
    for device in devices:
        report = bench_codec(codec, args.seconds, args.repeats, device, args.batch_size)
        report["machine"] = describe_machine(device)
        reports.append(report)
    if args.json:
        print_json({"machine": reports[0]["machine"], "codec": codec.source, "runs": reports})
    else:
        print(f"codec: {codec.source}")
        for report in reports:
            print(format_bench(report) + "\n")
    return 0


def _setup_semantic(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tokenizer",
        help="tokenizer directory (default: the shipped one; an untrained default-size encoder if none is shipped)",
    )
    p.add_argument("--layer", type=int, default=4, help="layer of the untrained stand-in (default 4)")
    p.add_argument("--frame-rate", type=int, default=25, choices=(25, 50), help="frame rate of the stand-in")
    p.add_argument("--seconds", type=float, default=10.0, help="audio per call (default 10)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_semantic(args: argparse.Namespace) -> int:
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.core.timing import Timer  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.config import SSLConfig, TokenizerConfig  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.encoder import SSLEncoder  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.features import SSLFeatures  # lazy: keeps `audiolm --help` fast
    from audiolm.models.semantic.tokenizer import (  # lazy: keeps `audiolm --help` fast
        SemanticTokenizer,
        default_checkpoint_dir,
    )

    note = "trained"
    if args.tokenizer or (default_checkpoint_dir() / "config.json").is_file():
        tok = SemanticTokenizer.from_pretrained(args.tokenizer)
    else:  # same cost as a trained one: default size up to --layer, K=256
        torch.manual_seed(0)
        ssl = SSLConfig(num_layers=args.layer, frame_rate=args.frame_rate)
        cfg = TokenizerConfig(source="ssl", layer=args.layer, vocab_size=256, frame_rate=ssl.frame_rate, ssl=ssl)
        tok = SemanticTokenizer(
            cfg, SSLFeatures(SSLEncoder(ssl), args.layer), {"centroids": torch.randn(256, ssl.hidden_size)}
        )
        note = "untrained default-size encoder (no shipped tokenizer)"
    tok = tok.to(args.device)
    n = int(args.seconds * 24000)
    wav = torch.randn(args.batch_size, n, generator=torch.Generator().manual_seed(0)) * 0.1
    tok.encode(wav, 24000)  # warm-up
    times = []
    for _ in range(args.repeats):
        with Timer(args.device) as timer:
            tokens = tok.encode(wav, 24000)
        times.append(timer.seconds)
    best, median = min(times), sorted(times)[len(times) // 2]
    audio_seconds = args.seconds * args.batch_size
    result = {
        "benchmark": "semantic tokenize (24 kHz input, resampling included)",
        "tokenizer": note if note != "trained" else str(args.tokenizer or default_checkpoint_dir()),
        "layer": tok.layer,
        "vocab_size": tok.vocab_size,
        "frame_rate": tok.frame_rate,
        "audio_seconds_per_call": audio_seconds,
        "batch_size": args.batch_size,
        "median_seconds": median,
        "best_seconds": best,
        "realtime_factor": audio_seconds / median,
        "realtime_factor_best": audio_seconds / best,
        "tokens": list(tokens.shape),
        "threads": torch.get_num_threads(),
        "machine": describe_machine(args.device),
    }
    if args.json:
        print_json(result)
    else:
        print(
            f"semantic tokenizing: {result['realtime_factor']:.0f}x real time median, "
            f"{result['realtime_factor_best']:.0f}x best "
            f"({audio_seconds:g} s of audio in {median * 1000:.1f} ms median, layer {tok.layer}, "
            f"K={tok.vocab_size}, {tok.frame_rate} Hz) on {result['machine']}"
        )
    return 0


def _setup_wavenet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--batches", default="1,16", help="comma-separated batch sizes (default 1,16)")
    p.add_argument("--samples", type=int, default=2000, help="samples per fast run (default 2000)")
    p.add_argument("--naive-samples", type=int, default=10, help="samples per naive run (default 10)")
    p.add_argument("--naive-threads", type=int, help="CPU threads for the naive forward (default: torch's setting)")
    p.add_argument("--config", help="model config JSON (default: 20 layers x 64 residual channels)")


def _run_wavenet(args: argparse.Namespace) -> int:
    from audiolm.evaluation.wavenet.bench import bench_wavenet, format_table  # lazy: keeps `audiolm --help` fast
    from audiolm.models.wavenet.config import WaveNetConfig  # lazy: keeps `audiolm --help` fast

    try:
        batches = tuple(int(b) for b in args.batches.split(",") if b.strip())
    except ValueError:
        raise UsageError(f"--batches must be comma-separated integers, got {args.batches!r}") from None
    if not batches or min(batches) < 1 or args.samples < 1 or args.naive_samples < 1:
        raise UsageError("--batches, --samples and --naive-samples must be positive")
    config = load_config_file(WaveNetConfig, args.config) if args.config else None
    if args.naive_threads is not None and args.naive_threads < 1:
        raise UsageError("--naive-threads must be >= 1")
    report = bench_wavenet(
        args.device,
        batches,
        args.samples,
        args.naive_samples,
        config,
        progress=not args.json,
        naive_threads=args.naive_threads,
    )
    if args.json:
        print_json(report)
    else:
        print(format_table(report))
    return 0


def _setup_decode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default cpu)")
    parser.add_argument("--sizes", default="10M,50M", help="comma-separated model sizes: 10M, 50M (default both)")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per run (default 128 on CPU, 512 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case; the best counts (default 3)")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="weights and cache dtype, for both implementations (default float32)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face generate() peer")
    parser.add_argument(
        "--decode-weights",
        choices=["float32", "bfloat16"],
        default=None,
        help="our packed CPU decoding weights (default: the model's dtype; bfloat16 is lossy)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall clock, or process CPU time (CPU, --threads 1 only: fair on a shared machine)",
    )
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="CPU: time only our eager step, not also the compiled one (impl audiolm-compiled: the step "
        "`continue` uses, compiled once per machine into $AUDIOLM_CACHE or ~/.cache/audiolm, in the untimed "
        "warm-up; a later run loads it)",
    )
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)  # the default since issue #17


def _run_decode(args: argparse.Namespace) -> int:
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.evaluation.lm.bench import SIZES, bench_decode  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise UsageError(f"--sizes: unknown size(s) {', '.join(unknown) or '(none)'}; known: {', '.join(SIZES)}")
    batches = parse_batches(args.batches)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available")
    if args.repeats < 1 or (args.new_tokens is not None and args.new_tokens < 1):
        raise UsageError("--repeats and --new-tokens must be >= 1")
    _set_threads(args)
    if args.clock == "cpu" and args.device != "cpu":
        raise UsageError("--clock cpu needs --device cpu and --threads 1")
    compile_step = args.device == "cpu" and not args.no_compile
    if compile_step:
        from audiolm.inference.compiled_step import compile_unavailable  # lazy: keeps `audiolm --help` fast

        if compile_unavailable():
            if args.compile:
                raise UsageError(f"--compile: {compile_unavailable()}")
            warnings.warn(f"timing the eager step only: {compile_unavailable()}", stacklevel=1)
            compile_step = False
    elif args.compile:
        raise UsageError("--compile is for --device cpu (CUDA decoding uses a graph-captured step)")
    if args.device == "cpu" and "bfloat16" in (args.dtype, args.decode_weights):
        from audiolm.core.cpu_features import (  # lazy: keeps `audiolm --help` fast
            bf16_fallback_reason,
            cpu_bf16_kernels,
        )

        if not cpu_bf16_kernels():  # the run would time float32 packed weights under a bf16 label
            raise UsageError(f"bfloat16 decoding: {bf16_fallback_reason()}")
    device = torch.device(args.device)
    new_tokens = args.new_tokens or (512 if device.type == "cuda" else 128)
    bandwidth, results = bench_decode(
        sizes,
        batches,
        device,
        new_tokens=new_tokens,
        repeats=args.repeats,
        with_hf=not args.no_hf,
        dtype=getattr(torch, args.dtype),
        clock=args.clock,
        decode_weights=args.decode_weights,
        compile=compile_step,
    )
    machine = describe_machine(args.device) + ("; timed in process CPU time" if args.clock == "cpu" else "")
    if args.decode_weights:
        machine += f"; our decoding weights {args.decode_weights}"
    if args.json:
        print_json({"machine": machine, "bandwidth_GBps": bandwidth, "results": [r.to_json() for r in results]})
        return 0
    print(f"machine: {machine}; read bandwidth {bandwidth:.1f} GB/s; {new_tokens} new tokens per run; {args.dtype}")
    print(f"{'impl':16} {'params':>10} {'batch':>5} {'tokens/s':>10} {'bound':>10} {'of bound':>8}")
    for r in results:
        print(
            f"{r.impl:16} {r.params:>10,} {r.batch:>5} {r.tokens_per_s:>10.1f} {r.bound_tokens_per_s:>10.1f}"
            f" {r.tokens_per_s / r.bound_tokens_per_s:>8.0%}"
        )
    return 0


def _setup_fine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stages", nargs="+", metavar="STAGE", help="fine stage checkpoint or run directories")
    parser.add_argument("--tokens", required=True, metavar="DIR", help="token directory; its valid split is held out")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio whose fine levels are generated (default 4)")
    parser.add_argument("--prompt-seconds", type=float, default=3.0, help="known prompt before it (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts (default 3)")
    parser.add_argument("--max-windows", type=int, default=None, help="cap on held-out windows (default all)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall clock, or process CPU time (--threads 1 only: fair on a shared machine)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _run_fine(args: argparse.Namespace) -> int:
    from audiolm.evaluation.lm.bench_fine import bench_fine  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    if args.seconds <= 0 or args.prompt_seconds < 0:
        raise UsageError("--seconds must be > 0 and --prompt-seconds >= 0")
    if args.repeats < 1 or (args.max_windows is not None and args.max_windows < 1):
        raise UsageError("--repeats and --max-windows must be >= 1")
    _set_threads(args)
    results = bench_fine(
        args.stages,
        args.tokens,
        seconds=args.seconds,
        prompt_seconds=args.prompt_seconds,
        repeats=args.repeats,
        max_windows=args.max_windows,
        clock=args.clock,
    )
    machine = describe_machine("cpu") + ("; timed in process CPU time" if args.clock == "cpu" else "")
    if args.json:
        print_json({"machine": machine, "results": [r.to_json() for r in results]})
        return 0
    levels = list(results[0].ce_nats)
    print(f"machine: {machine}; {results[0].windows} held-out windows ({results[0].frames} frames per level)")
    print(
        f"{'style':6} {'params':>10} "
        + " ".join(f"{'CE L' + str(q):>8}" for q in levels)
        + f" {'mean':>8} {'gen s':>8}  stage"
    )
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


def _setup_continue(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to generate (default 4)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length (default 3)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per case after a warm-up; the fastest counts")
    add_pipeline_arguments(p)


def _run_continue(args: argparse.Namespace) -> int:
    batches = parse_batches(args.batches)
    if not (args.seconds > 0 and args.prompt_seconds > 0) or args.repeats < 1:
        raise UsageError("--seconds, --prompt-seconds and --repeats must be positive")
    from audiolm.evaluation.bench_continue import bench_continue, format_table  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    lm = load_pipeline(args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
        results = bench_continue(lm, batches, args.seconds, args.prompt_seconds, repeats=args.repeats)
    machine = describe_machine(args.device)
    if args.json:
        print_json({"machine": machine, "results": [r.to_json() for r in results]})
    else:
        print(format_table(machine, results))
    return 0


def _setup_prompts(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prompt-seconds",
        default="1,1.5,2,2.5,3,3.5",
        help="comma-separated prompt lengths, one prompt each (default 1,1.5,2,2.5,3,3.5)",
    )
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to generate per prompt (default 4)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per way after a warm-up; the fastest counts")
    add_pipeline_arguments(p)


def _run_prompts(args: argparse.Namespace) -> int:
    try:
        prompt_seconds = [float(s) for s in args.prompt_seconds.split(",")]
    except ValueError:
        raise UsageError(f"--prompt-seconds: expected comma-separated numbers, got '{args.prompt_seconds}'") from None
    if not all(s > 0 for s in prompt_seconds) or not args.seconds > 0 or args.repeats < 1:
        raise UsageError("--prompt-seconds, --seconds and --repeats must be positive")
    from audiolm.evaluation.bench_prompts import bench_prompts, format_result  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    lm = load_pipeline(args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
        result = bench_prompts(lm, prompt_seconds, args.seconds, repeats=args.repeats)
    machine = describe_machine(args.device)
    if args.json:
        print_json({"machine": machine, "result": result.to_json()})
    else:
        print(format_result(machine, result))
    return 0


def _setup_continue_memory(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lengths", default="10,30,60", help="comma-separated continuation seconds (default 10,30,60)")
    p.add_argument("--prompt", default=None, help="prompt audio (default: the shipped speech prompt)")
    p.add_argument("--pipeline", default=None, help="speech | music | default | a recipe file or directory")
    p.add_argument("--no-compile", action="store_true", help="run `continue --no-compile` (the eager step)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _run_continue_memory(args: argparse.Namespace) -> int:
    from audiolm.core.paths import shipped_checkpoint  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.bench_memory import bench_continue_memory, format_table  # lazy: as above
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    try:
        lengths = [float(x) for x in args.lengths.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--lengths: expected comma-separated seconds, got {args.lengths!r}") from None
    if not lengths or not all(0 < x <= 3600 for x in lengths):
        raise UsageError("--lengths: each length must be in (0, 3600] seconds")
    prompt = Path(args.prompt) if args.prompt else shipped_checkpoint("prompts") / "speech_prompt.wav"
    if not prompt.is_file():
        raise UsageError(f"{prompt}: no such prompt file")
    extra = (["--pipeline", args.pipeline] if args.pipeline else []) + (["--no-compile"] if args.no_compile else [])
    try:
        results = bench_continue_memory(prompt, lengths, extra)
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    machine = describe_machine("cpu")
    if args.json:
        print_json({"machine": machine, "prompt": str(prompt), "results": [r.to_json() for r in results]})
    else:
        print(format_table(machine, results))
    return 0


def _setup_stream(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0, help="seconds to stream (default 10)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length (default 3)")
    p.add_argument(
        "--chunk-seconds", type=float, default=0.2, help="smallest chunk where the stages allow (default 0.2)"
    )
    p.add_argument("--repeats", type=int, default=1, help="timed runs after a warm-up; the earliest first audio counts")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall clock, or process CPU time (--threads 1 only: what an idle core would take)",
    )
    p.add_argument(
        "--first-chunk-seconds",
        type=float,
        default=None,
        help="end the fine stage's first window this long after the prompt (AudioLM.stream); "
        "default: windows as continue_audio",
    )
    add_pipeline_arguments(p)


def _run_stream(args: argparse.Namespace) -> int:
    if not (args.seconds > 0 and args.prompt_seconds > 0) or args.repeats < 1 or args.chunk_seconds < 0:
        raise UsageError("--seconds, --prompt-seconds and --repeats must be positive, --chunk-seconds >= 0")
    if args.first_chunk_seconds is not None and not args.first_chunk_seconds > 0:
        raise UsageError("--first-chunk-seconds must be positive")
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.evaluation.bench_stream import bench_stream, format_stream  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    if args.threads is not None:
        if args.threads < 1:
            raise UsageError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (torch.get_num_threads() != 1 or args.device != "cpu"):
        raise UsageError("--clock cpu needs --threads 1 and --device cpu")
    lm = load_pipeline(args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
        result = bench_stream(
            lm,
            args.seconds,
            args.prompt_seconds,
            repeats=args.repeats,
            chunk_seconds=args.chunk_seconds,
            clock_kind=args.clock,
            first_chunk_seconds=args.first_chunk_seconds,
        )
    machine = describe_machine(args.device)
    write_report(None, args, format_stream(machine, result) + "\n", {"machine": machine, "result": result.to_json()})
    return 0


def _setup_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pipeline", default="default", help="pipeline the server offers and the requests use (default default)"
    )
    p.add_argument("--concurrency", type=int, default=8, help="simultaneous requests per round (default 8)")
    p.add_argument("--rounds", type=int, default=2, help="rounds (default 2; memory is read after each)")
    p.add_argument("--seconds", type=float, default=2.0, help="continuation per request (default 2)")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _run_serve(args: argparse.Namespace) -> int:
    if args.concurrency < 1 or args.rounds < 1 or not args.seconds > 0 or args.threads < 1:
        raise UsageError("--concurrency, --rounds, --threads and --seconds must be positive")
    from audiolm.evaluation.bench_serve import bench_serve, format_serve  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast

    result = bench_serve(args.pipeline, args.concurrency, args.rounds, args.seconds, threads=args.threads)
    machine = describe_machine("cpu")
    write_report(None, args, format_serve(machine, result) + "\n", {"machine": machine, "result": result.to_json()})
    return 0


def _setup_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder (audiolm corpus build)")
    p.add_argument("--split", default="valid", choices=["train", "valid"], help="split (default valid)")
    p.add_argument("--wavenet", help="WaveNet checkpoint or run folder for raw-sample continuation")
    p.add_argument(
        "--vocoder",
        help="WaveNet vocoder (codec-token conditioned) checkpoint or run folder "
        "(default: checkpoints/wavenet_vocoder when shipped; 'none' for no vocoder rows)",
    )
    p.add_argument("--n", type=int, default=4, help="clips per kind (default 4)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="prompt length (default 3)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds to continue / resynthesize (default 2)")
    p.add_argument("--seed", type=int, default=0, help="clip i uses seed + i (default 0)")
    p.add_argument("--embed", default="codec", choices=["codec", "semantic"], help="embedding for consistency")
    add_table_output_arguments(p)
    add_pipeline_arguments(p)


def _run_compare(args: argparse.Namespace) -> int:
    table_out = check_corpus_and_table_output(args)
    from audiolm.evaluation.compare import compare, format_table, resolve_vocoder  # lazy: keeps `audiolm --help` fast
    from audiolm.evaluation.machine import describe_machine  # lazy: keeps `audiolm --help` fast
    from audiolm.models.wavenet.model import WaveNet  # lazy: keeps `audiolm --help` fast

    lm = load_pipeline(args)
    args.vocoder = resolve_vocoder(args.vocoder)
    wavenet = WaveNet.from_pretrained(args.wavenet, device=args.device) if args.wavenet else None
    vocoder = WaveNet.from_pretrained(args.vocoder, device=args.device) if args.vocoder else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt is .* longer than the model context")
        report = compare(
            lm,
            args.data,
            wavenet=wavenet,
            vocoder=vocoder,
            split=args.split,
            n=args.n,
            prompt_seconds=args.prompt_seconds,
            seconds=args.seconds,
            seed=args.seed,
            embedding=args.embed,
        )
    machine = describe_machine(args.device)
    report.update(wavenet=args.wavenet, vocoder=args.vocoder)
    write_report(table_out, args, format_table(report, machine), {"machine": machine, **report})
    return 0


def _setup_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=["semantic", "coarse", "fine"], default="coarse")
    parser.add_argument("--tokens", metavar="DIR", help="token directory (default: random tokens, shipped sizes)")
    parser.add_argument("--config", help="stage config JSON (default: the stage's defaults)")
    parser.add_argument(
        "--processes", default="1,2", help="comma-separated process counts, first = baseline (default 1,2)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="items per process per step (default 8)")
    parser.add_argument("--steps", type=int, default=24, help="steps per run (default 24)")
    parser.add_argument("--threads", type=int, default=1, help="threads per process (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the cases, interleaved; the fastest counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _run_train(args: argparse.Namespace) -> int:
    from audiolm.evaluation.bench_train import bench_train, format_table  # lazy: keeps `audiolm --help` fast

    try:
        processes = tuple(int(p) for p in args.processes.split(","))
    except ValueError:
        raise UsageError(f"--processes: comma-separated integers, got {args.processes!r}") from None
    if not processes or min(processes) < 1 or min(args.batch_size, args.steps, args.threads, args.repeats) < 1:
        raise UsageError("--processes, --batch-size, --steps, --threads and --repeats must be >= 1")
    report = bench_train(
        args.stage, args.tokens, args.config, processes, args.batch_size, args.steps, args.threads, repeats=args.repeats
    )
    if args.json:
        print_json(report)
    else:
        print(format_table(report))
    return 0


def _setup_gpu(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 480)")


def _run_gpu(args: argparse.Namespace) -> int:
    from audiolm.evaluation.gpu_check import BUDGET_S, format_report, run_gpu_check  # lazy: keeps `audiolm --help` fast

    report = run_gpu_check(args.budget or BUDGET_S)
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0 if report["ok"] else 1


def register(cli) -> None:
    cli.add("bench semantic", "semantic tokenizing speed (x real time)", _setup_semantic, _run_semantic)
    cli.add(
        "bench wavenet",
        "WaveNet generation speed: fast (ring buffers) vs naive, batch 1 and 16",
        _setup_wavenet,
        _run_wavenet,
    )
    cli.add(
        "bench decode",
        "decoding speed (tokens/s) of the LM stages vs Hugging Face generate(), and the bandwidth bound",
        _setup_decode,
        _run_decode,
    )
    cli.add(
        "bench fine",
        "fine stages side by side: held-out cross entropy per fine level and generation time",
        _setup_fine,
        _run_fine,
    )
    cli.add(
        "bench continue", "real-time factor of a pipeline, per stage and end to end", _setup_continue, _run_continue
    )
    cli.add(
        "bench prompts",
        "several prompts of different lengths: one batch (continue_prompts) vs one by one, wall time",
        _setup_prompts,
        _run_prompts,
    )
    cli.add(
        "bench continue-memory",
        "peak RSS of `audiolm continue` at several lengths (10, 30, 60 s): flat in length",
        _setup_continue_memory,
        _run_continue_memory,
    )
    cli.add(
        "bench stream",
        "streamed continuation: time to first audio and whether it keeps ahead of playback",
        _setup_stream,
        _run_stream,
    )
    cli.add(
        "bench serve",
        "load test of `audiolm serve` on localhost: N concurrent requests, latency, memory",
        _setup_serve,
        _run_serve,
    )
    cli.add(
        "bench compare",
        "token pipeline vs WaveNet continuation and WaveNet vocoder vs codec decoder: speed and quality",
        _setup_compare,
        _run_compare,
    )
    cli.add(
        "bench codec",
        "codec encode / decode speed as multiples of real time (CPU, and GPU if present)",
        _setup_codec,
        _run_codec,
    )
    cli.add(
        "bench train",
        "LM-stage training samples/s on 1 process and on N DDP CPU processes, side by side",
        _setup_train,
        _run_train,
    )
    cli.add(
        "bench gpu",
        "every CUDA-only test and the GPU benches (decode, continue, wavenet) in one run, under 8 minutes",
        _setup_gpu,
        _run_gpu,
    )
