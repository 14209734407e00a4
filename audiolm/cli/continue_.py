"""`audiolm continue PROMPT -o OUT`: continue a speech or music prompt with a pipeline and write
the audio. Sampling flags take one value for every stage or three (semantic,coarse,fine).

    audiolm continue PROMPT -o OUT.wav [--seconds S] [--pipeline NAME|DIR] [--seed N]
                     [--num-samples N] [--temperature T[,T,T]] [--top-k K[,K,K]] [--top-p P[,P,P]]
                     [--plot OUT.png] [--continuation-only] [--save-prompt P] [--prompt-tokens P]
                     [--overwrite] [--device cpu|cuda]
    audiolm continue PROMPT --stream -o OUT.wav|-    # audio written as it is made (- = stdout)
    audiolm continue P1 P2 ... | FOLDER -o DIR       # one output per prompt, all in one batch
                                                     # (prompts of other lengths padded and masked)

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from audiolm.cli.args import UsageError, check_finite, pick_device
from audiolm.models.lm.config import STAGES


def _per_stage(text: str | None, cast, flag: str):
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = [cast(p) for p in parts]
    except ValueError:
        raise UsageError(f"{flag}: expected a number or three comma-separated numbers, got '{text}'") from None
    if len(values) == 1:
        return values[0]
    if len(values) != 3:
        raise UsageError(f"{flag}: give one value or three (semantic,coarse,fine), got {len(values)}")
    return dict(zip(STAGES, values))


def output_paths(out: Path, num_samples: int) -> list[Path]:
    """OUT for one sample; OUT-1, OUT-2, ... (before the suffix) for several."""
    if num_samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(num_samples)]


PLOT_FORMATS = (".png", ".pdf", ".svg")


def plot_path(text: str) -> Path:
    """The file `--plot` really writes: matplotlib adds .png to a name without a suffix, so we
    do it first (and claim that name); other suffixes must be formats it writes."""
    path = Path(text)
    if not path.suffix:
        return path.with_name(path.name + ".png")
    if path.suffix.lower() not in PLOT_FORMATS:
        raise UsageError(f"--plot {text}: a plot is written as {', '.join(PLOT_FORMATS)}; got '{path.suffix}'")
    return path


def _setup_continue(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "prompt",
        nargs="*",
        help="prompt audio (wav, flac, ogg, mp3), several, or a folder of them (then -o is a folder); "
        "optional with --prompt-tokens",
    )
    p.add_argument(
        "-o",
        "--out",
        required=True,
        help="output .wav or .flac (OUT-1, OUT-2, ... with --num-samples); a folder for several prompts "
        "(one PROMPT_NAME.wav each); - (stdout) with --stream",
    )
    p.add_argument("--seconds", type=float, default=4.0, help="seconds to generate (default 4)")
    p.add_argument("--pipeline", default=None, help="speech | music | default | a recipe file or directory")
    p.add_argument("--seed", type=int, default=None, help="random seed (sample i uses seed + i)")
    p.add_argument("--num-samples", type=int, default=1, help="continuations to write (default 1)")
    p.add_argument("--temperature", help="sampling temperature: T or T_semantic,T_coarse,T_fine")
    p.add_argument("--top-k", help="top-k: K or three values (0 = off)")
    p.add_argument("--top-p", help="nucleus top-p: P or three values (1 = off)")
    p.add_argument("--plot", help="write a spectrogram of prompt + continuation (seam marked) to this PNG")
    p.add_argument("--continuation-only", action="store_true", help="write only the new audio")
    p.add_argument("--save-prompt", help="also save the encoded prompt here (safetensors) for reuse")
    p.add_argument("--prompt-tokens", help="use a prompt saved with --save-prompt instead of encoding audio")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="CPU: decode with the eager step instead of the compiled one (compiled once per machine and "
        "cached in $AUDIOLM_CACHE or ~/.cache/audiolm; the first run compiles for tens of seconds)",
    )
    p.add_argument(
        "--no-voice-anchor",
        action="store_true",
        help="decode the tokens as drawn, without matching the continuation's codec latents to the prompt's "
        "voice (the default and speech pipelines match them; a --stream frame by frame)",
    )
    p.add_argument(
        "--fine-draws",
        type=int,
        default=None,
        metavar="N",
        help="decode the fine levels as the mean latent of N fine-stage draws (1 = one draw as sampled; "
        "default: the pipeline's, 3 for default and speech; not with --stream, which decodes one draw)",
    )
    p.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GB",
        help="memory for one batch of samples, or of several prompts' samples (default: 2 GB or a quarter of "
        "the free memory)",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="write a 16-bit WAV as the audio is made: to stdout with -o - (for aplay / ffplay -), or to a "
        ".wav file that is complete after every chunk",
    )
    p.add_argument(
        "--first-chunk-seconds",
        type=float,
        default=None,
        help="end the fine stage's first window this long after the prompt so streamed audio starts sooner "
        "(the fine levels then differ from the default schedule's)",
    )
    p.add_argument(
        "--same-length",
        action="store_true",
        help="several prompts: keep the last N seconds of each, N = the shortest prompt, so all run as one batch",
    )


def _check_arguments(args: argparse.Namespace):
    """Everything about the arguments that needs no model: ranges, finiteness, output names."""
    from audiolm.inference.limits import (  # lazy: keeps `audiolm --help` fast
        RequestError,
        check_request,
        check_sampling,
    )

    if args.fine_draws is not None and not 1 <= args.fine_draws <= 16:
        raise UsageError(f"--fine-draws must be in [1, 16], got {args.fine_draws}")
    if not args.prompt and args.prompt_tokens is None:
        raise UsageError("give a PROMPT audio file or --prompt-tokens FILE")
    if args.prompt and args.prompt_tokens is not None:
        raise UsageError("give either a PROMPT audio file or --prompt-tokens FILE, not both")
    check_finite(args.seconds, "--seconds", positive=True)
    check_finite(args.first_chunk_seconds, "--first-chunk-seconds", positive=True)
    check_finite(args.max_memory, "--max-memory", positive=True)
    try:
        check_request(args.seconds, args.num_samples, args.seed)
    except RequestError as e:
        raise UsageError(
            str(e)
            .replace("num_samples", "--num-samples")
            .replace("seconds", "--seconds", 1)
            .replace("seed must", "--seed must")
        ) from None
    out = Path(args.out)
    if _many(args):
        for flag, value in (("--stream", args.stream), ("--plot", args.plot), ("--save-prompt", args.save_prompt)):
            if value:
                raise UsageError(f"{flag} takes one prompt, got several")
    elif args.same_length:
        raise UsageError("--same-length is for several prompts")
    elif args.stream:
        if args.out != "-" and out.suffix.lower() != ".wav":
            raise UsageError(f"{out}: --stream writes WAV: the output must end in .wav (or be - for stdout)")
        if args.out == "-" and args.num_samples != 1:
            raise UsageError("--stream -o -: stdout carries one sample; write files for --num-samples > 1")
    elif out.suffix.lower() not in (".wav", ".flac"):
        raise UsageError(f"{out}: output must end in .wav or .flac")
    sampling = {}
    for name, flag, cast in (
        ("temperature", "--temperature", float),
        ("top_k", "--top-k", _int),
        ("top_p", "--top-p", float),
    ):
        value = _per_stage(getattr(args, name), cast, flag)
        try:
            check_sampling(name, value, flag)
        except RequestError as e:
            raise UsageError(str(e)) from None
        sampling[name] = value
    return out, sampling


def _many(args: argparse.Namespace) -> bool:
    return len(args.prompt) > 1 or (len(args.prompt) == 1 and Path(args.prompt[0]).is_dir())


def _int(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)


def _run_continue(args: argparse.Namespace) -> int:
    out, sampling = _check_arguments(args)
    if _many(args):
        return _run_many(args, sampling)
    if args.stream:
        return _run_stream(args, sampling)
    outs = output_paths(out, args.num_samples)
    plots = output_paths(plot_path(args.plot), args.num_samples) if args.plot else []

    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.core.audio import audio_duration, check_not_truncated, save_audio  # lazy: keeps `audiolm --help` fast
    from audiolm.core.outputs import OutputSet  # lazy: keeps `audiolm --help` fast
    from audiolm.inference.limits import (  # lazy: keeps `audiolm --help` fast
        bytes_per_sample,
        plan_memory,
        stage_configs_for_recipe,
    )
    from audiolm.inference.pipeline import (  # lazy: keeps `audiolm --help` fast
        AudioLM,
        PromptTokens,
        find_recipe,
        load_recipe,
    )

    device = pick_device(args.device)
    # check the inputs before the model load (seconds on a CPU), so a bad one fails at once
    if args.prompt_tokens:
        given_prompt = PromptTokens.load(args.prompt_tokens)
        prompt_seconds = given_prompt.audio.shape[-1] / 24_000
    else:
        given_prompt = None
        check_not_truncated(Path(args.prompt[0]))
        prompt_seconds = min(audio_duration(args.prompt[0]), 60.0)
    # the memory plan from the stage configs alone (no weights read)
    recipe_path = find_recipe(args.pipeline)
    recipe = load_recipe(recipe_path)
    stage_dirs: dict[str, Path] = {s: (recipe_path.parent / getattr(recipe, f"{s}_stage")).resolve() for s in STAGES}
    per_sample = bytes_per_sample(stage_configs_for_recipe(stage_dirs), args.seconds, prompt_seconds)
    budget = int(args.max_memory * 1024**3) if args.max_memory else None
    plan = plan_memory(per_sample, args.num_samples, budget)
    seed = (
        args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little") % (2**32 - args.num_samples + 1)
    )

    with OutputSet() as outputs:
        audio_claims = [outputs.claim(p, args.overwrite, "-o") for p in outs]
        plot_claims = [outputs.claim(p, args.overwrite, "--plot") for p in plots]
        prompt_claim = outputs.claim(args.save_prompt, args.overwrite, "--save-prompt") if args.save_prompt else None
        if plots:
            from audiolm.evaluation.plot import plot_continuation  # lazy: keeps `audiolm --help` fast

        lm = _with_flags(
            AudioLM.from_pretrained(recipe_path, device=device, compile_step=False if args.no_compile else None), args
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if given_prompt is not None:
                prompt = given_prompt
            else:
                from audiolm.core.audio import load_audio  # lazy: keeps `audiolm --help` fast

                wav, sr = load_audio(args.prompt[0])
                prompt = lm.encode_prompt(wav, sr)
        for w in caught:
            print(f"audiolm: warning: {w.message}", file=sys.stderr)
        if prompt_claim is not None:
            prompt.save(prompt_claim.temp)

        # batches of plan.batch_size (the plan made before the load), each written out before the next
        progress, close_bars = _progress_bars()
        batches = lm.generate_batches(
            None,
            None,
            seconds=args.seconds,
            seed=seed,
            num_samples=args.num_samples,
            progress=progress,
            prompt=prompt,
            continuation_only=args.continuation_only,
            first_chunk_seconds=args.first_chunk_seconds,
            batch_size=plan.batch_size,
            **sampling,
        )
        for first, result in batches:
            count = result.audio.shape[0]
            if plan.batches > 1:
                print(
                    f"batch {first // plan.batch_size + 1}/{plan.batches}: samples {first + 1}-{first + count} "
                    f"of {args.num_samples} done",
                    file=sys.stderr,
                )
            for i in range(count):
                save_audio(audio_claims[first + i].temp, result.audio[i], result.sample_rate, atomic=False)
                if plots:
                    plot_continuation(
                        plot_claims[first + i].temp, result.audio[i, 0], result.sample_rate, result.prompt_samples
                    )
            del result
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        close_bars()
        outputs.publish()
    for path in outs + plots + ([Path(args.save_prompt)] if args.save_prompt else []):
        print(f"wrote {path}")
    return 0


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def prompt_files(given: list[str]) -> list[Path]:
    """PROMPT arguments -> audio files: files as given, a folder's audio files (sorted, not recursive)."""
    files: list[Path] = []
    for text in given:
        path = Path(text)
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise UsageError(f"{path}: folder holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
            files += found
        else:
            files.append(path)
    return files


def _load_pipeline(args: argparse.Namespace):
    from audiolm.inference.pipeline import AudioLM  # lazy: keeps `audiolm --help` fast

    compile_step = False if args.no_compile else None
    return _with_flags(
        AudioLM.from_pretrained(args.pipeline, device=pick_device(args.device), compile_step=compile_step), args
    )


def _with_flags(lm, args: argparse.Namespace):
    """The loaded pipeline with what the flags change on it: --no-voice-anchor, --fine-draws."""
    lm.voice_anchor = lm.voice_anchor and not args.no_voice_anchor
    if args.fine_draws is not None:
        lm.fine_draws = args.fine_draws
    return lm


def _encode(lm, files: list[Path]) -> list:
    """Load and encode prompt files; warnings become `audiolm: warning:` lines on stderr."""
    from audiolm.core.audio import load_audio  # lazy: keeps `audiolm --help` fast

    prompts = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in files:
            wav, sr = load_audio(path)
            prompts.append(lm.encode_prompt(wav, sr))
    for w in caught:
        print(f"audiolm: warning: {w.message}", file=sys.stderr)
    return prompts


def _progress_bars():
    """(progress callback drawing one tqdm bar per stage on stderr, close())."""
    from audiolm.inference.progress import progress_bars  # lazy: keeps `audiolm --help` fast

    return progress_bars()


def _run_stream(args: argparse.Namespace, sampling: dict) -> int:
    """--stream: one prompt, a 16-bit WAV written chunk by chunk (stdout with -o -). A file output
    is claimed like any other, but written in place (not via a temp file) so that it can be
    played while it grows: its header is rewritten after every chunk."""
    import torch  # lazy: keeps `audiolm --help` fast

    from audiolm.core.outputs import OutputSet  # lazy: keeps `audiolm --help` fast
    from audiolm.core.wav_stream import WavStreamWriter  # lazy: keeps `audiolm --help` fast
    from audiolm.inference.pipeline import PromptTokens  # lazy: keeps `audiolm --help` fast

    to_stdout = args.out == "-"
    outs = [] if to_stdout else output_paths(Path(args.out), args.num_samples)
    plots = output_paths(plot_path(args.plot), args.num_samples) if args.plot else []
    log = sys.stderr if to_stdout else sys.stdout
    with OutputSet() as outputs:
        audio_claims = [outputs.claim(p, args.overwrite, "-o") for p in outs]
        plot_claims = [outputs.claim(p, args.overwrite, "--plot") for p in plots]
        prompt_claim = outputs.claim(args.save_prompt, args.overwrite, "--save-prompt") if args.save_prompt else None
        if plots:
            from audiolm.evaluation.plot import plot_continuation  # lazy: keeps `audiolm --help` fast
        lm = _load_pipeline(args)
        prompt = PromptTokens.load(args.prompt_tokens) if args.prompt_tokens else _encode(lm, [Path(args.prompt[0])])[0]
        if prompt_claim is not None:
            prompt.save(prompt_claim.temp)
        files = [open(c.path, "wb") for c in audio_claims]  # noqa: SIM115 (closed below)
        for claim in audio_claims:
            claim.published = True  # written in place: nothing to move at publish
        kept = []
        try:
            sinks = [sys.stdout.buffer] if to_stdout else files
            writers = [WavStreamWriter(sink, lm.sample_rate) for sink in sinks]
            stream = lm.stream(
                None,
                None,
                seconds=args.seconds,
                seed=args.seed,
                num_samples=args.num_samples,
                prompt=prompt,
                continuation_only=args.continuation_only,
                first_chunk_seconds=args.first_chunk_seconds,
                **sampling,
            )
            for chunk in stream:  # [num_samples, 1, n]
                for i, writer in enumerate(writers):
                    writer.write(chunk[i])
                if plots:
                    kept.append(chunk)
        except BrokenPipeError:  # the player went away: stop quietly, as `head` would
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            return 0
        finally:
            for f in files:
                f.close()
        if plots:
            audio = torch.cat(kept, dim=-1)
            start = 0 if args.continuation_only else prompt.audio.shape[-1]
            for i, claim in enumerate(plot_claims):
                plot_continuation(claim.temp, audio[i, 0], lm.sample_rate, start)
        for claim in audio_claims:
            claim.temp.unlink(missing_ok=True)  # nothing to publish: the file was written in place
        outputs.publish()
    for path in outs + plots + ([Path(args.save_prompt)] if args.save_prompt else []):
        print(f"wrote {path}", file=log)
    return 0


def same_length(lm, prompts: list) -> list:
    """Encoded prompts cut to the shortest one's frames (their last frames), encoded again from
    that audio, so their token lengths agree and they batch together."""
    frames = min(p.codes.shape[-1] for p in prompts)
    samples = frames * lm.codec.hop_length
    return [
        p if p.codes.shape[-1] == frames else lm.encode_prompt(p.audio[:, -samples:], lm.sample_rate) for p in prompts
    ]


def prompt_batches(lm, prompts: list, seconds: float, num_samples: int, max_memory: float | None) -> list[list[int]]:
    """Prompt indices in batches whose rows (num_samples per prompt) fit the memory budget
    (`--max-memory`, as for one prompt's samples), shortest prompts first so that a batch pads
    little. A prompt's output does not depend on its batch (same seed, rows independent)."""
    from audiolm.inference.limits import bytes_per_sample, plan_memory  # lazy: keeps `audiolm --help` fast

    longest = max(p.audio.shape[-1] for p in prompts) / lm.sample_rate
    configs = {name: stage.config for name, stage in lm.stages.items()}
    budget = int(max_memory * 1024**3) if max_memory else None
    plan = plan_memory(bytes_per_sample(configs, seconds, longest), len(prompts) * num_samples, budget)
    per_batch = max(1, plan.batch_size // num_samples)  # a prompt's samples stay in one batch
    order = sorted(range(len(prompts)), key=lambda i: prompts[i].codes.shape[-1])
    return [order[i : i + per_batch] for i in range(0, len(order), per_batch)]


def _run_many(args: argparse.Namespace, sampling: dict) -> int:
    """Several prompts (or a folder): one output per prompt into the folder -o, all prompts in
    one batch through the stages (`AudioLM.continue_prompts`), whatever their lengths."""
    from audiolm.core.audio import save_audio  # lazy: keeps `audiolm --help` fast
    from audiolm.core.outputs import OutputSet  # lazy: keeps `audiolm --help` fast

    files = prompt_files(args.prompt)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: with several prompts, -o is a folder")
    if not out_dir.parent.is_dir():
        raise UsageError(f"{out_dir}: folder {out_dir.parent} does not exist")
    stems: dict[str, Path] = {}
    for f in files:
        if not f.is_file():
            raise UsageError(f"{f}: no such file")
        if f.stem in stems:
            raise UsageError(f"{f} and {stems[f.stem]}: two prompts named {f.stem}; outputs would collide")
        stems[f.stem] = f
    out_dir.mkdir(exist_ok=True)
    seed = (
        args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little") % (2**32 - args.num_samples + 1)
    )
    with OutputSet() as outputs:
        claims = {
            stem: [
                outputs.claim(p, args.overwrite, "-o") for p in output_paths(out_dir / f"{stem}.wav", args.num_samples)
            ]
            for stem in stems
        }
        lm = _load_pipeline(args)
        prompts = _encode(lm, files)
        if args.same_length:
            prompts = same_length(lm, prompts)
        batches = prompt_batches(lm, prompts, args.seconds, args.num_samples, args.max_memory)
        names = list(stems)
        for n, members in enumerate(batches):
            if len(batches) > 1:
                print(f"batch {n + 1}/{len(batches)}: {len(members)} of {len(prompts)} prompts", file=sys.stderr)
            progress, close = _progress_bars()
            results = lm.continue_prompts(
                [prompts[i] for i in members],
                seconds=args.seconds,
                seed=seed,
                num_samples=args.num_samples,
                progress=progress,
                continuation_only=args.continuation_only,
                **sampling,
            )
            close()
            for i, result in zip(members, results):
                for k, claim in enumerate(claims[names[i]]):
                    save_audio(claim.temp, result.audio[k], result.sample_rate, atomic=False)
            del results
        paths = [c.path for cs in claims.values() for c in cs]
        outputs.publish()
    for path in paths:
        print(f"wrote {path}")
    return 0


def register(cli) -> None:
    cli.add("continue", "continue a speech or music prompt", _setup_continue, _run_continue)
