"""Outputs claimed at the start and published without replacing anything (core/outputs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from audiolm.core.outputs import CLAIM_SUFFIX, OutputError, OutputSet


def test_claim_write_publish(tmp_path):
    target = tmp_path / "out.wav"
    with OutputSet() as outputs:
        out = outputs.claim(target)
        assert out.temp.parent == tmp_path and out.temp.name.startswith(".") and not target.exists()
        out.temp.write_bytes(b"result")
        outputs.publish()
    assert target.read_bytes() == b"result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temp, no claim left


def test_a_file_that_appears_meanwhile_is_never_replaced(tmp_path):
    target = tmp_path / "out.wav"
    with OutputSet() as outputs:
        out = outputs.claim(target)
        out.temp.write_bytes(b"ours")
        target.write_bytes(b"theirs")  # another program wrote it while we worked
        with pytest.raises(OutputError, match="appeared") as info:
            outputs.publish()
    assert target.read_bytes() == b"theirs"
    kept = tmp_path / f"out.audiolm-{os.getpid()}.wav"
    assert str(kept) in str(info.value) and kept.read_bytes() == b"ours"


def test_existing_target_needs_overwrite_and_is_then_replaced(tmp_path):
    target = tmp_path / "out.wav"
    target.write_bytes(b"old")
    with OutputSet() as outputs, pytest.raises(OutputError, match="--overwrite"):
        outputs.claim(target)
    with OutputSet() as outputs:
        outputs.claim(target, overwrite=True).temp.write_bytes(b"new")
        outputs.publish()
    assert target.read_bytes() == b"new"


def test_bad_targets_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    cases = {
        tmp_path / "dir": "is a directory",
        tmp_path / "missing" / "o.wav": "does not exist",
        tmp_path / "file" / "o.wav": "is not a folder",
    }
    if os.path.isdir("/proc/self"):
        cases[__import__("pathlib").Path("/proc/x.wav")] = "cannot"
    for path, message in cases.items():
        with OutputSet() as outputs, pytest.raises(OutputError, match=message) as info:
            outputs.claim(path, overwrite=True)
        assert "\n" not in str(info.value)
    with OutputSet() as outputs:
        outputs.claim(tmp_path / "a.wav", flag="-o")
        with pytest.raises(OutputError, match="given twice"):
            outputs.claim(tmp_path / "sub" / ".." / "a.wav", flag="--save-prompt")


def test_a_second_process_cannot_claim_a_held_output(tmp_path):
    target = tmp_path / "out.wav"
    with OutputSet() as outputs:
        outputs.claim(target)
        code = textwrap.dedent(f"""
            from audiolm.core.outputs import OutputSet, OutputError
            try:
                OutputSet().claim({str(target)!r})
            except OutputError as e:
                print(e)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
        assert f"another audiolm process (pid {os.getpid()})" in out


def test_a_killed_runs_claim_and_temp_are_cleaned_up(tmp_path):
    target = tmp_path / "out.wav"
    # what SIGKILL leaves: a claim file naming its temp file, the half-written temp, no lock
    stale_temp = tmp_path / ".out.wav.audiolm-99999.wav"
    stale_temp.write_bytes(b"half")
    (tmp_path / f".out.wav{CLAIM_SUFFIX}").write_text(json.dumps({"pid": 99999, "temp": stale_temp.name}))
    with OutputSet() as outputs:
        outputs.claim(target).temp.write_bytes(b"done")
        assert not stale_temp.exists()
        outputs.publish()
    assert target.read_bytes() == b"done" and sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_an_unpublished_output_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with OutputSet() as outputs:
            outputs.claim(tmp_path / "o.wav").temp.write_bytes(b"partial")
            raise RuntimeError("the command failed")
    assert list(tmp_path.iterdir()) == []


def test_a_run_lock_is_shared_within_a_process_and_held_until_the_last_release(tmp_path):
    from audiolm.core.outputs import RunLock

    def other_process_gets_it() -> bool:
        code = textwrap.dedent(f"""
            from audiolm.core.outputs import OutputError, RunLock
            try:
                RunLock({str(tmp_path / "run")!r}).acquire()
                print("acquired")
            except OutputError as e:
                print(e)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
        assert "acquired" in out or f"another audiolm process (pid {os.getpid()})" in out, out
        return "acquired" in out

    outer = RunLock(tmp_path / "run").acquire()  # `audiolm train` holds the run directory
    inner = RunLock(tmp_path / "run" / ".." / "run").acquire()  # the Trainer inside takes it too
    assert other_process_gets_it() is False
    inner.release()
    inner.release()  # a second release of the same holder changes nothing
    assert other_process_gets_it() is False
    outer.release()
    assert other_process_gets_it() is True
