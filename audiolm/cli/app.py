"""The `audiolm` command line.

One module per verb (continue_, codec, tokenize_, train, wavenet, corpus, eval, bench; listed in
`COMMAND_MODULES`) registers its subcommands; what they share lives in `args.py`. Those modules
import only cheap modules at top level and torch and friends inside their run functions, so
`audiolm --help` stays fast.

Conventions every command follows:
- user errors (`AudiolmError`, bad arguments, missing files) print one line on stderr and exit
  with code 2; `--verbose` shows the traceback instead;
- `audiolm bench ...` and `audiolm eval ...` accept `--json` and then print exactly one JSON
  object (all figures plus the machine) on stdout — see `print_json`.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from audiolm.cli.args import UsageError
from audiolm.core.errors import AudiolmError
from audiolm.core.outputs import OutputSet

# Modules that define `register(cli: CommandLine)`, one per verb.
COMMAND_MODULES: list[str] = [
    "audiolm.cli.corpus",
    "audiolm.cli.train",
    "audiolm.cli.eval",
    "audiolm.cli.bench",
    "audiolm.cli.wavenet",
    "audiolm.cli.tokenize_",
    "audiolm.cli.continue_",
    "audiolm.cli.codec",
    "audiolm.cli.serve",
]


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error convention: one line on stderr, exit code 2 (argparse's
    own prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"audiolm: error: {self.prog}: {' '.join(message.split())} (see `{self.prog} --help`)\n")


@dataclass
class _Command:
    run: Callable[[argparse.Namespace], int | None]


class CommandLine:
    """Builds the nested argparse tree: `cli.add("train codec", help, setup, run)`."""

    def __init__(self) -> None:
        self.parser = _Parser(
            prog="audiolm",
            description="Token-based audio language modelling: continue speech and music, "
            "train every stage on your own audio.",
        )
        self.parser.add_argument("--verbose", action="store_true", help="show tracebacks for errors")
        self._groups: dict[str, argparse._SubParsersAction] = {
            "": self.parser.add_subparsers(dest="command", metavar="COMMAND")
        }
        self._group_parsers: dict[str, argparse.ArgumentParser] = {"": self.parser}

    def group(self, path: str, help: str) -> None:
        """Declare a command group such as `train` (its subcommands are added with `add`)."""
        parent, _, name = path.rpartition(" ")
        sub = self._subparsers(parent)
        parser = sub.add_parser(name, help=help, description=help)
        self._group_parsers[path] = parser
        self._groups[path] = parser.add_subparsers(dest=f"{path.replace(' ', '_')}_command", metavar="COMMAND")

    def _subparsers(self, path: str) -> argparse._SubParsersAction:
        if path not in self._groups:
            raise KeyError(f"command group '{path}' is not declared")
        return self._groups[path]

    def add(
        self,
        path: str,
        help: str,
        setup: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], int | None],
    ) -> argparse.ArgumentParser:
        parent, _, name = path.rpartition(" ")
        if parent and parent not in self._groups:
            self.group(parent, f"{parent} commands")
        parser = self._subparsers(parent).add_parser(name, help=help, description=help)
        setup(parser)
        # --verbose after the subcommand too (SUPPRESS: absent here keeps the top-level value)
        parser.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
        )
        parser.set_defaults(_command=_Command(run))
        return parser


def build_cli() -> CommandLine:
    cli = CommandLine()
    # Groups are declared up front so their help text is stable whichever module adds to them.
    cli.group("train", "train a model: codec, ssl, kmeans, semantic, coarse, fine, wavenet")
    cli.group("eval", "evaluate a model and print a table (--json for one JSON object)")
    cli.group("bench", "measure speed (--json for one JSON object)")
    cli.group("corpus", "build the offline training corpus, or import your own audio")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(cli)
    return cli


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    cli = build_cli()
    try:
        args = cli.parser.parse_args(argv)  # bad arguments: one line (_Parser.error), code 2
    except SystemExit as e:  # --help (0) or a usage error (2): a code, as for every other outcome
        return e.code if isinstance(e.code, int) else 2
    command = getattr(args, "_command", None)
    if command is None:
        # a group without a subcommand: show that group's help
        path = " ".join(v for k, v in sorted(vars(args).items()) if k.endswith("command") and isinstance(v, str))
        cli._group_parsers.get(path, cli.parser).print_help(sys.stderr)
        return 2
    outputs = OutputSet()  # what the command claims with args.claim_output, released whatever happens
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (kill, a job scheduler) unwinds like Ctrl-C, so claims and temp files are removed
        signal.signal(signal.SIGTERM, _terminate)
    args.claim_output = lambda path, overwrite, flag="--out": outputs.claim(path, overwrite, flag)
    try:
        code = command.run(args)
    except (AudiolmError, UsageError) as e:
        if args.verbose:
            traceback.print_exc()
        print(f"audiolm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("audiolm: interrupted", file=sys.stderr)
        return 130
    finally:
        outputs.release()
    return int(code or 0)


if __name__ == "__main__":  # python -m audiolm.cli.app
    sys.exit(main())
