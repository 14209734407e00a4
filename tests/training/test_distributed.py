"""DDP for real: two CPU processes (gloo) started by torchrun, as `torchrun --nproc_per_node 2
-m audiolm train ...` or `accelerate launch --multi_gpu --num_processes 2 ... --device cpu` start
them. Each launch costs ~5-10 s of start-up, so the tests share runs where they can."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolm.cli.app import main
from audiolm.core.checkpoint import load_checkpoint
from audiolm.core.errors import AudiolmError
from audiolm.evaluation.bench_train import GLOO_START_ABORT
from audiolm.training.trainer import refuse_single_process_cpu_launch

ROOT = Path(__file__).parents[2]
SCRIPT = Path(__file__).parent / "toy_training.py"
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")

# Two processes average two half-batch gradients where one process takes one mean: the same
# sums in another order. Measured: 3e-8 max abs weight difference after 10 toy steps (2 processes
# x 2 micro-batches of 2 vs 1 process x 8; 2 x 4 vs 1 x 8 likewise).
TOLERANCE = 1e-5


# gloo's start-up abort (`bench_train.GLOO_START_ABORT`): such a launch never reached training,
# so it is run again once; any other failure fails the test.


def launch(command: list[str], fresh: Path | None = None) -> subprocess.CompletedProcess:
    """Run a multi-process launch; on the gloo start-up abort, empty `fresh` (the run it was
    starting, if new) and run it once more. Fails with the launch's stderr tail."""
    for attempt in range(2):
        done = subprocess.run(command, env=ENV, capture_output=True, text=True)
        if done.returncode == 0 or attempt == 1 or GLOO_START_ABORT not in done.stderr:
            break
        print(f"gloo start-up abort, launching again: {done.stderr[-500:]}", file=sys.stderr)
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def torchrun(*args: str, processes: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]


def weights(run: Path, kind: str = "toy") -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "model", kind).state_dict


def assert_close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert float((a[k] - b[k]).abs().max()) <= atol, k


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    """Two processes x 2 micro-batches of 2 (gradient accumulation under DDP: no all-reduce on
    the first micro-batch) and one process x batch 8, no dropout, 10 steps (80 items: 1.25
    epochs of the 64-item set); item indices and file writes recorded per process."""
    root = tmp_path_factory.mktemp("ddp")
    common = ["--steps", "10", "--dropout", "0", "--record-keys", "--audit-writes", str(root)]
    launch(torchrun(str(SCRIPT), str(root / "two"), "--batch-size", "2", "--grad-accum", "2", *common), root / "two")
    subprocess.run(
        [sys.executable, str(SCRIPT), str(root / "one"), "--batch-size", "8", *common[:-2]], env=ENV, check=True
    )
    return root


def test_two_processes_reach_the_weights_of_one_process_with_the_same_global_batch(toy_runs):
    assert_close(weights(toy_runs / "two"), weights(toy_runs / "one"), TOLERANCE)


def test_each_process_sees_a_disjoint_shard_of_every_epoch(toy_runs):
    rank0 = json.loads((toy_runs / "two" / "keys-rank0.json").read_text())
    rank1 = json.loads((toy_runs / "two" / "keys-rank1.json").read_text())
    one = json.loads((toy_runs / "one" / "keys-rank0.json").read_text())
    assert len(rank0) == len(rank1) == 40 and len(one) == 80
    # epoch 0 = the first 64 items in global order: 32 per process, disjoint, all 64 items
    assert not set(rank0[:32]) & set(rank1[:32])
    assert sorted(rank0[:32] + rank1[:32]) == list(range(64))
    # each global batch of 8 is the one-process batch: micro-batch m of process r holds its
    # items 4m + 2r .. 4m + 2r + 1
    for step in range(10):
        batch, mine0, mine1 = (
            one[8 * step : 8 * step + 8],
            rank0[4 * step : 4 * step + 4],
            rank1[4 * step : 4 * step + 4],
        )
        assert mine0 == batch[0:2] + batch[4:6] and mine1 == batch[2:4] + batch[6:8]


def test_only_process_zero_writes_checkpoints_and_logs(toy_runs):
    run = toy_runs / "two"
    rank0 = json.loads((toy_runs / "writes-rank0.json").read_text())
    rank1 = json.loads((toy_runs / "writes-rank1.json").read_text())
    assert rank1 == []  # not one file opened for writing, renamed or created in the run directory
    assert any("step-00000010" in p for p in rank0) and any(p.endswith("log.jsonl") for p in rank0)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in log if "valid" not in r]
    assert train_steps == [5, 10]  # one line per logged step, not one per process
    assert [r["step"] for r in log if "valid" in r] == [10]


def _kill_with_workers(launcher: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGKILL torchrun and its workers, and wait until all are gone. torchrun starts each
    worker in a session of its own, so killing torchrun's process group leaves the workers
    running (rank 0 then still holds the run lock when the resume starts)."""
    workers = [int(pid) for pid in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()]
    for pid in [launcher.pid, *workers]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    launcher.wait()
    deadline = time.time() + timeout
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in workers):
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """False for a process that has ended (a zombie waiting for init counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def test_kill_a_ddp_run_and_resume_it_to_the_uninterrupted_result(tmp_path):
    """With dropout: each process's own RNG stream must come back too."""
    args = ["--steps", "12", "--batch-size", "4"]
    launch(torchrun(str(SCRIPT), str(tmp_path / "full"), *args), tmp_path / "full")
    run = tmp_path / "killed"
    proc = subprocess.Popen(torchrun(str(SCRIPT), str(run), *args, "--sleep", "0.2"), env=ENV, start_new_session=True)
    latest = run / "checkpoints" / "LATEST"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= "step-00000005"):
        time.sleep(0.02)
    _kill_with_workers(proc)  # torchrun and both workers
    assert latest.is_file(), "the DDP run wrote no checkpoint before the deadline"
    killed_at = latest.read_text().strip()
    assert killed_at < "step-00000012" and not (run / "model").exists(), "killed too late to test resume"
    launch(torchrun(str(SCRIPT), str(run), *args, "--resume"))
    full, resumed = weights(tmp_path / "full"), weights(run)
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_audiolm_train_under_accelerate_launch_matches_one_process(tmp_path):
    """The README's CPU line, `accelerate launch --multi_gpu --num_processes 2 -m audiolm train
    wavenet ... --device cpu`, on per-process batch 2 == one process on batch 4."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        sf.write(data / f"{i}.wav", 0.4 * np.sin(np.arange(2000) / (3.0 + i)), 8000)
    config = tmp_path / "wavenet.json"
    config.write_text(
        json.dumps(
            {
                "sample_rate": 8000,
                "layers": 4,
                "stacks": 1,
                "residual_channels": 8,
                "dilation_channels": 8,
                "skip_channels": 8,
                "crop_samples": 64,
            }
        )
    )
    common = [
        "train",
        "wavenet",
        "--data",
        str(data),
        "--config",
        str(config),
        "--steps",
        "4",
        "--device",
        "cpu",
        "--valid-every",
        "100",
    ]
    accelerate = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "audiolm",
    ]
    done = launch(accelerate + common + ["--out", str(tmp_path / "two"), "--batch-size", "2"], tmp_path / "two")
    assert done.stdout.count("model written to") == 1  # process 0 only
    assert main(common + ["--out", str(tmp_path / "one"), "--batch-size", "4"]) == 0
    assert_close(weights(tmp_path / "two", "wavenet"), weights(tmp_path / "one", "wavenet"), TOLERANCE)


def test_accelerate_launch_cpu_that_starts_one_process_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """`accelerate launch --cpu --num_processes 2` runs the command once (its simple launcher)
    with MASTER_ADDR set: training would silently use one process."""
    launched = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    with pytest.raises(AudiolmError, match="torchrun --nproc_per_node N"):
        refuse_single_process_cpu_launch(launched)
    refuse_single_process_cpu_launch({**launched, "WORLD_SIZE": "2"})  # really two processes
    refuse_single_process_cpu_launch({"ACCELERATE_USE_CPU": "True"})  # --num_processes 1
    for k, v in launched.items():
        monkeypatch.setenv(k, v)
    assert main(["train", "wavenet", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "starts one process" in err[0]


def test_launch_runs_again_once_after_the_gloo_start_up_abort_only(tmp_path):
    """The retry in `launch` is for gloo's start-up abort alone: any other failure, or the abort
    twice, still fails."""
    marker, run = tmp_path / "marker", tmp_path / "run"
    first_aborts = (
        "import pathlib, sys\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "if m.exists(): sys.exit(0)\n"
        f"m.touch(); pathlib.Path({str(run)!r}).mkdir(); sys.stderr.write({GLOO_START_ABORT!r}); sys.exit(1)\n"
    )
    assert launch([sys.executable, "-c", first_aborts], run).returncode == 0
    assert marker.exists() and not run.exists()  # the half-started run was emptied
    always = f"import sys; sys.stderr.write({GLOO_START_ABORT!r}); sys.exit(1)"
    with pytest.raises(AssertionError, match="terminate called"):
        launch([sys.executable, "-c", always])
    with pytest.raises(AssertionError, match="boom"):
        launch([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(1)"])
