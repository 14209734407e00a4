"""Shared by the generate tests: run one `audiolm bench ...` command of this package in process."""

from audiolm.cli.app import CommandLine
from audiolm.cli import bench as commands


def run_cli(argv):
    """Parse `argv` with only the generate commands registered and run it: returns the exit code;
    a UsageError / AudiolmError propagates (so tests can match its message)."""
    cli = CommandLine()
    cli.group("bench", "bench")
    commands.register(cli)
    args = cli.parser.parse_args(argv)
    return args._command.run(args)
