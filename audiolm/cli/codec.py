"""`audiolm codec IN OUT`: encode and decode an audio file through the codec (a round trip).

    audiolm codec IN OUT [--kbps K] [--codec DIR] [--save-codes FILE] [--overwrite]

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiolm.cli.args import add_codec_argument, check_output, pick_device, UsageError


def _setup_codec(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="audio file (any rate; channels are mixed to mono)")
    parser.add_argument("output", metavar="OUT", help="output .wav or .flac (mono, at the input's sample rate)")
    parser.add_argument("--kbps", type=float, default=6.0, help="bit rate: 1.5, 3, 6 or 12 (default 6)")
    add_codec_argument(parser)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--save-codes", metavar="FILE",
                        help='also save the codes (safetensors, "codes" [1, Q, T]), e.g. for a WaveNet vocoder')


def _run_codec(args: argparse.Namespace) -> int:
    out = Path(args.output)
    check_output(out, args.overwrite)
    if out.suffix.lower() not in (".wav", ".flac"):
        raise UsageError(f"{out}: output must be a .wav or .flac file")
    check_output(args.save_codes, args.overwrite)
    from audiolm.core.audio import load_audio, resample, save_audio  # lazy: keeps `audiolm --help` fast
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast

    codec = Codec.from_pretrained(args.codec, device=pick_device(args.device))
    wav, rate = load_audio(args.input)  # [C, N]
    codes = codec.encode(wav, rate, kbps=args.kbps)  # [1, Q, T]
    audio = codec.decode(codes)[0].cpu()  # [1, T * hop] at the codec rate
    audio = resample(audio, codec.sample_rate, rate)[:, : wav.shape[-1]]
    save_audio(out, audio, rate)
    if args.save_codes:
        from audiolm.core.checkpoint import save_tensors  # lazy: keeps `audiolm --help` fast

        save_tensors(args.save_codes, {"codes": codes.cpu().contiguous()})
    print(f"{args.input} -> {out}: {codes.shape[1]} levels x {codes.shape[2]} frames "
          f"({args.kbps:g} kbps) at {codec.frame_rate} Hz", file=sys.stderr)
    return 0


def register(cli) -> None:
    cli.add("codec", "encode and decode an audio file through the codec (a round trip at one bit rate)",
            _setup_codec, _run_codec)
