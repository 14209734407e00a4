"""`audiolm serve [--host 127.0.0.1] [--port N]`: the local web demo and HTTP API
(audiolm/cli/web.py; needs the `serve` extra: starlette + uvicorn).

Only cheap modules are imported at module level; the web app and the models load inside the run
function (start-up time: `audiolm --help` imports every command module).
"""

from __future__ import annotations

import argparse
import sys

from audiolm.cli.args import UsageError


def _setup_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--pipeline",
        action="append",
        default=None,
        help="a pipeline to offer: a name (pipelines/NAME.json) or a recipe file or directory; repeat for "
        "several (default: every shipped pipeline)",
    )
    p.add_argument(
        "--max-seconds", type=float, default=30.0, help="longest continuation a request may ask for (default 30)"
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest prompt upload in MB (default 10)")
    p.add_argument(
        "--max-waiting", type=int, default=8, help="generations that may wait behind the running one (default 8)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def _run_serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be in 1..65535, got {args.port}")
    if not args.max_seconds > 0 or not args.max_upload_mb > 0 or args.max_waiting < 0:
        raise UsageError("--max-seconds and --max-upload-mb must be positive, --max-waiting >= 0")
    try:
        import uvicorn  # optional dependency (the serve extra)

        from audiolm.cli.web import Limits, create_app  # optional dependency (starlette, the serve extra)
    except ImportError as e:
        raise UsageError(
            f"audiolm serve needs the serve extra ({e.name} is missing): pip install 'audiolm[serve]'"
        ) from None
    from pathlib import Path  # start-up time: only serve needs it here

    from audiolm.inference.pipeline import available_pipelines, find_recipe  # start-up time: loads torch

    names = args.pipeline or available_pipelines()
    pipelines = {}
    for name in names:
        recipe = find_recipe(name)  # fails now, in one line, for an unknown name
        label = Path(name).stem if Path(name).is_file() else Path(name).name
        pipelines[label] = recipe
    limits = Limits(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_seconds=args.max_seconds,
        max_waiting=args.max_waiting,
    )
    app = create_app(pipelines, limits, device=args.device)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"audiolm: warning: listening on {args.host}: other machines can reach this server", file=sys.stderr)
    print(f"audiolm serve: http://{args.host}:{args.port}/ (pipelines: {', '.join(pipelines)})", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def register(cli) -> None:
    cli.add(
        "serve",
        "a local web demo and HTTP API: upload or record a prompt, hear the continuation as it streams",
        _setup_serve,
        _run_serve,
    )
