"""`audiolm codec IN OUT`: encode and decode an audio file through the codec (a round trip).

    audiolm codec IN OUT [--kbps K] [--codec DIR] [--save-codes FILE] [--overwrite]

Only cheap modules are imported at module level; torch and the models load inside the run
functions (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiolm.cli.args import UsageError, add_codec_argument, check_finite, pick_device


def _setup_codec(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="audio file (any rate; channels are mixed to mono)")
    parser.add_argument("output", metavar="OUT", help="output .wav or .flac (mono, at the input's sample rate)")
    parser.add_argument("--kbps", type=float, default=6.0, help="bit rate: 1.5, 3, 6 or 12 (default 6)")
    add_codec_argument(parser)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument(
        "--save-codes",
        metavar="FILE",
        help='also save the codes (safetensors, "codes" [1, Q, T]), e.g. for a WaveNet vocoder',
    )


def _run_codec(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix.lower() not in (".wav", ".flac"):
        raise UsageError(f"{out}: output must be a .wav or .flac file")
    check_finite(args.kbps, "--kbps", positive=True)
    rate = _input_rate(args.input)  # the input is checked before the codec loads
    from audiolm.core.audio import AudioWriter  # lazy: keeps `audiolm --help` fast
    from audiolm.core.checkpoint import tensors_to_bytes  # lazy: keeps `audiolm --help` fast
    from audiolm.core.outputs import OutputSet  # lazy: keeps `audiolm --help` fast
    from audiolm.inference.codec_chunks import round_trip_file  # lazy: keeps `audiolm --help` fast
    from audiolm.models.codec.codec import Codec  # lazy: keeps `audiolm --help` fast

    with OutputSet() as outputs:
        audio_out = outputs.claim(out, args.overwrite, "OUT")
        codes_out = outputs.claim(args.save_codes, args.overwrite, "--save-codes") if args.save_codes else None
        codec = Codec.from_pretrained(args.codec, device=pick_device(args.device))
        codec.levels_for_kbps(args.kbps)  # an unknown bit rate fails before the file is read
        # encode + decode chunk by chunk: memory stays bounded however long the file is
        with AudioWriter(audio_out.temp, rate, atomic=False) as writer:
            result = round_trip_file(codec, args.input, writer.write, kbps=args.kbps)
            writer.commit()
        if codes_out is not None:
            codes_out.temp.write_bytes(tensors_to_bytes({"codes": result.codes.contiguous()}))
        outputs.publish()
    codes = result.codes
    print(
        f"{args.input} -> {out}: {codes.shape[1]} levels x {codes.shape[2]} frames "
        f"({args.kbps:g} kbps) at {codec.frame_rate} Hz",
        file=sys.stderr,
    )
    return 0


def _input_rate(path: str) -> int:
    from audiolm.core.audio import audio_sample_rate  # lazy: keeps `audiolm --help` fast

    return audio_sample_rate(path)


def register(cli) -> None:
    cli.add(
        "codec",
        "encode and decode an audio file through the codec (a round trip at one bit rate)",
        _setup_codec,
        _run_codec,
    )
