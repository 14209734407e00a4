import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from toy_training import ToyConfig, ToyTask  # tests/training/ is on sys.path (pytest, rootdir import mode)

from audiolm.core.checkpoint import load_checkpoint
from audiolm.core.errors import AudiolmError
from audiolm.training.trainer import TrainConfig, Trainer, cosine_with_warmup, item_keys_for_batch

SCRIPT = Path(__file__).parent / "toy_training.py"


def _config(**kw):
    base = dict(
        steps=20, batch_size=8, lr=1e-2, warmup_steps=2, save_every=5, valid_every=10, log_every=5, device="cpu"
    )
    return TrainConfig(**(base | kw))


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "model", "toy").state_dict


def test_loss_falls_and_exports_model(tmp_path):
    torch.manual_seed(0)
    out = Trainer(ToyTask(ToyConfig()), _config(steps=30, lr=3e-2, log_every=1), tmp_path / "run", progress=False).fit()
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss/model"] for r in log if "loss/model" in r]
    assert sum(losses[-5:]) < 0.3 * sum(losses[:5])
    assert any("valid" in r for r in log)
    # keep_last prunes old step checkpoints
    steps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*"))
    assert steps == ["step-00000020", "step-00000025", "step-00000030"]


def test_refuses_to_overwrite_a_run_without_resume(tmp_path):
    Trainer(ToyTask(ToyConfig()), _config(steps=5), tmp_path / "run", progress=False).fit()
    with pytest.raises(AudiolmError, match="--resume"):
        Trainer(ToyTask(ToyConfig()), _config(steps=5), tmp_path / "run", progress=False)


def test_resume_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(AudiolmError, match="no training run"):
        Trainer(ToyTask(ToyConfig()), _config(), tmp_path / "nothing", resume=True, progress=False)


def test_in_process_resume_matches_uninterrupted(tmp_path):
    torch.manual_seed(0)
    Trainer(ToyTask(ToyConfig(), with_critic=True), _config(steps=20), tmp_path / "full", progress=False).fit()
    torch.manual_seed(0)
    Trainer(ToyTask(ToyConfig(), with_critic=True), _config(steps=20), tmp_path / "part", progress=False).fit(
        stop_after=10
    )
    torch.manual_seed(99)  # a different init: resume must overwrite it from the checkpoint
    Trainer(
        ToyTask(ToyConfig(), with_critic=True), _config(steps=20), tmp_path / "part", resume=True, progress=False
    ).fit()
    full, resumed = _final_weights(tmp_path / "full"), _final_weights(tmp_path / "part")
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


def test_a_finished_run_resumed_with_more_steps_trains_on_and_keeps_them(tmp_path):
    """--resume --steps N extends a finished schedule (a warm restart of the cosine); run.json
    records the new steps, so a later plain --resume neither stops early nor starts over."""
    run = tmp_path / "run"
    Trainer(ToyTask(ToyConfig()), _config(steps=10), run, progress=False).fit()
    Trainer(ToyTask(ToyConfig()), _config(steps=20), run, resume=True, progress=False).fit(stop_after=15)
    saved = json.loads((run / "run.json").read_text())["train_config"]
    assert saved["steps"] == 20
    trainer = Trainer(ToyTask(ToyConfig()), TrainConfig(**saved), run, resume=True, progress=False)
    assert trainer.step == 15
    trainer.fit()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in log if "step" in r) == 20
    lrs = {r["step"]: r["lr"] for r in log if "lr" in r}
    assert lrs[15] > lrs[10]  # the schedule stretched over 20 steps: higher again after step 10


def test_resume_through_the_api_removes_what_a_killed_run_left(tmp_path, capsys):
    """The Trainer itself (no CLI) removes stale temps under the run's lock before resuming,
    and resumes to the same weights; a run directory another process holds is left alone."""
    torch.manual_seed(0)
    Trainer(ToyTask(ToyConfig()), _config(steps=10), tmp_path / "full", progress=False).fit()
    run = tmp_path / "part"
    torch.manual_seed(0)
    Trainer(ToyTask(ToyConfig()), _config(steps=10), run, progress=False).fit(stop_after=5)
    stale = [run / "checkpoints" / ".step-00000010.tmp", run / ".model.1234.tmp"]
    for folder in stale:
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"torn")
    stale += [run / "checkpoints" / ".LATEST.1234.tmp", run / ".run.json.99.tmp"]
    for path in stale[2:]:
        path.write_text("step-00000010")
    keep = [run / "checkpoints" / "LATEST", run / "checkpoints" / "step-00000005", run / ".audiolm.lock"]

    holder = subprocess.Popen(  # another process holds the run directory: nothing is touched
        [
            sys.executable,
            "-c",
            "import sys, time; from audiolm.core.outputs import RunLock; "
            "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(AudiolmError, match="another audiolm process"):
            Trainer(ToyTask(ToyConfig()), _config(steps=10), run, resume=True, progress=False)
        assert all(p.exists() for p in stale)
    finally:
        holder.kill()
        holder.wait()

    capsys.readouterr()
    trainer = Trainer(ToyTask(ToyConfig()), _config(steps=10), run, resume=True, progress=False)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    err = capsys.readouterr().err
    assert all(f"removed {p} (left by a killed run)" in err for p in stale)
    assert trainer.step == 5
    trainer.fit()
    full, resumed = _final_weights(tmp_path / "full"), _final_weights(run)
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_data_order_is_a_function_of_position():
    a = item_keys_for_batch(10, 4, seed=1, global_batch_index=3)
    b = item_keys_for_batch(10, 4, seed=1, global_batch_index=3)
    assert a == b
    # one epoch visits every item exactly once
    epoch = [k.index for b in range(5) for k in item_keys_for_batch(10, 2, 1, b)]
    assert sorted(epoch) == list(range(10))
    # two processes draw disjoint items for the same batch index
    r0 = {k.index for k in item_keys_for_batch(100, 4, 1, 0, world_size=2, rank=0)}
    r1 = {k.index for k in item_keys_for_batch(100, 4, 1, 0, world_size=2, rank=1)}
    assert not r0 & r1


def test_schedule_warms_up_then_decays():
    lrs = [cosine_with_warmup(s, 100, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3) and all(x >= y for x, y in zip(lrs[10:], lrs[11:]))


def test_kill_and_resume_a_real_training_process(tmp_path):
    """SIGKILL a training process mid-run, resume it, and get the uninterrupted result."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "full"), "--steps", "30"], env=env, check=True)

    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run), "--steps", "30", "--sleep", "0.05"], env=env)
    latest = run / "checkpoints" / "LATEST"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= "step-00000010"):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest.is_file(), "the training process wrote no checkpoint before the deadline"
    killed_at = latest.read_text().strip()
    assert killed_at < "step-00000030" and not (run / "model").exists(), "killed too late to test resume"

    subprocess.run([sys.executable, str(SCRIPT), str(run), "--steps", "30", "--resume"], env=env, check=True)
    full, resumed = _final_weights(tmp_path / "full"), _final_weights(run)
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
    # the log continues rather than restarting
    steps = [json.loads(l)["step"] for l in (run / "log.jsonl").read_text().splitlines()]
    assert max(steps) == 30


def test_a_step_with_a_non_finite_loss_is_skipped(tmp_path):
    """The step's backward runs (under DDP every process must join the all-reduce) but no
    optimizer step is taken; training goes on."""

    class NaNAtStep2(ToyTask):
        def training_step(self, parts, batch, step):
            out = super().training_step(parts, batch, step)
            if step == 2:
                out.losses["model"] = out.losses["model"] * float("nan")
            return out

    torch.manual_seed(0)
    trainer = Trainer(
        NaNAtStep2(ToyConfig(dropout=0.0)), _config(steps=4, log_every=1), tmp_path / "run", progress=False
    )
    weights = []
    real_step = trainer._train_step

    def recorded(batches):
        result = real_step(batches)
        weights.append({k: v.clone() for k, v in trainer._unwrapped("model").state_dict().items()})
        return result

    trainer._train_step = recorded
    trainer.fit()
    assert all(torch.equal(weights[1][k], weights[2][k]) for k in weights[1])  # step 2 skipped
    assert not all(torch.equal(weights[2][k], weights[3][k]) for k in weights[2])  # step 3 trains
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [math.isnan(r["loss/model"]) for r in log if "loss/model" in r] == [False, False, True, False]


def test_kill_at_random_moments_including_mid_save_then_resume(tmp_path):
    """Checkpoints every step, so a kill at a random moment often lands inside a save (torn
    files, a half-written step directory, LATEST mid-rename). Each kill is resumed: the run
    must end where the uninterrupted run ends, weight for weight."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    common = ["--steps", "24", "--save-every", "1"]
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "full"), *common], env=env, check=True)
    run = tmp_path / "killed"
    rng = np.random.default_rng(16)
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(run), *common, "--sleep", "0.01"] + (["--resume"] if round_ else []),
            env=env,
        )
        latest = run / "checkpoints" / "LATEST"
        start = latest.read_text() if latest.is_file() else ""
        deadline = time.time() + 120
        while time.time() < deadline and (not latest.is_file() or latest.read_text() == start):
            time.sleep(0.005)  # a new checkpoint exists: the process is in its save loop
        time.sleep(float(rng.uniform(0.0, 0.1)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    subprocess.run([sys.executable, str(SCRIPT), str(run), *common, "--resume"], env=env, check=True)
    full, resumed = _final_weights(tmp_path / "full"), _final_weights(run)
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
