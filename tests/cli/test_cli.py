import subprocess
import sys

from audiolm.cli.app import main


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "audiolm", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ("train", "eval", "bench", "corpus"):
        assert name in out.stdout


def test_unknown_command_exits_2_with_one_line(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("audiolm: error: ") and "invalid choice" in err[0]


def test_argument_errors_are_one_line_and_verbose_goes_anywhere(capsys):
    for argv in (["continue", "p.wav"], ["codec", "a.wav", "b.wav", "--kbps", "x"], ["train", "coarse", "--bogus"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith("audiolm: error: audiolm "), err
    # --verbose after the subcommand is accepted (it shows a traceback for a user error)
    assert main(["codec", "missing.wav", "out.wav", "--verbose"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_group_without_subcommand_exits_2(capsys):
    assert main(["train"]) == 2
