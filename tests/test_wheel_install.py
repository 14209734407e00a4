"""`pip install .` (not editable) delivers the embedded default: a wheel built from this tree,
installed into a fresh venv, continues a bundled prompt from an empty working directory.

The venv sees the system site-packages (torch and the other dependencies are not installed
again), and its own audiolm shadows any editable one there; PYTHONPATH is cleared so nothing
of this checkout is imported. ~20-40 s on 2 cores: the wheel build, the install and one
1-second continuation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list, cwd: Path, env: dict) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_continues_a_bundled_prompt_from_any_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AUDIOLM_CHECKPOINTS")}
    env["OMP_NUM_THREADS"] = "1"
    wheels, venv, work = tmp_path / "wheels", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    # setuptools' build/ and egg-info go to tmp_path, not into the checkout (no stale files)
    extra = tmp_path / "build.cfg"
    extra.write_text(f"[build]\nbuild_base = {tmp_path / 'build'}\n[egg_info]\negg_base = {tmp_path}\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build_env = {**env, "DIST_EXTRA_CONFIG": str(extra)}
    _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, REPO], work, build_env)
    (wheel,) = wheels.glob("audiolm-*.whl")
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], work, env)
    python = venv / "bin" / "python"
    _run([*pip, "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], work, env)

    # the venv's own copy is the one imported, and it finds its shipped data from here
    where = _run(
        [python, "-c", "import audiolm.core.paths as p; print(p.__file__); print(p.shipped_checkpoint('prompts'))"],
        work,
        env,
    )
    module, prompts = (Path(line) for line in where.splitlines())
    assert module.is_relative_to(venv), module
    assert prompts.is_relative_to(venv) and (prompts / "speech_prompt.wav").is_file(), prompts

    prompt = prompts / "speech_prompt.wav"
    _run([venv / "bin" / "audiolm", "continue", prompt, "-o", "out.wav", "--seconds", "1", "--seed", "0"], work, env)
    assert sorted(p.name for p in work.iterdir()) == ["out.wav"]
    audio, rate = sf.read(work / "out.wav")
    prompt_audio, prompt_rate = sf.read(prompt)
    assert rate == 24000
    # the prompt (resampled to the codec's rate) followed by one second of continuation
    expected = len(prompt_audio) * rate / prompt_rate + rate
    assert abs(len(audio) - expected) < 0.05 * rate, (len(audio), expected)
    continuation = audio[-rate // 2 :]
    assert (abs(continuation) <= 1).all() and continuation.std() > 1e-3
