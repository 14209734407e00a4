import subprocess
import sys

from audiolm.cli.app import main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "audiolm", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("train", "eval", "bench", "corpus"):
        assert name in out.stdout


def test_unknown_command_exits_2_with_one_line(capsys):
    try:
        main(["no-such-command"])
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "invalid choice" in err[-1]


def test_group_without_subcommand_exits_2(capsys):
    assert main(["train"]) == 2
