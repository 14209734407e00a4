import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from audiolm.core.checkpoint import (
    flatten_state,
    load_checkpoint,
    load_state_dict_checked,
    previous_copy,
    remove_stale_temps,
    resolve_checkpoint_dir,
    save_checkpoint,
    unflatten_state,
)
from audiolm.core.errors import CheckpointError


@dataclass
class NetConfig:
    dim: int = 4


def _net(dim=4):
    return nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))


def test_round_trip_is_bit_exact(tmp_path):
    net = _net()
    save_checkpoint(tmp_path / "c", "net", NetConfig(), net.state_dict(), extra_json={"x.json": {"a": 1}})
    ckpt = load_checkpoint(tmp_path / "c", "net", NetConfig)
    assert ckpt.config == NetConfig()
    for k, v in net.state_dict().items():
        assert torch.equal(v, ckpt.state_dict[k])
    assert json.loads((tmp_path / "c" / "x.json").read_text()) == {"a": 1}
    header = json.loads((tmp_path / "c" / "config.json").read_text())
    assert header["kind"] == "net" and header["format_version"] == 1


def test_wrong_kind_and_version_are_named(tmp_path):
    save_checkpoint(tmp_path / "c", "net", NetConfig(), _net().state_dict())
    with pytest.raises(CheckpointError, match="kind is 'net', expected 'codec'"):
        load_checkpoint(tmp_path / "c", "codec")
    header = json.loads((tmp_path / "c" / "config.json").read_text())
    header["format_version"] = 99
    (tmp_path / "c" / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="format_version is 99"):
        load_checkpoint(tmp_path / "c", "net")


def test_missing_directory_file_and_corrupt_weights(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing", "net")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CheckpointError, match="found a file"):
        load_checkpoint(tmp_path / "afile", "net")
    save_checkpoint(tmp_path / "c", "net", NetConfig(), _net().state_dict())
    (tmp_path / "c" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(tmp_path / "c", "net")


def test_shape_mismatch_names_the_tensor(tmp_path):
    save_checkpoint(tmp_path / "c", "net", NetConfig(8), _net(8).state_dict())
    ckpt = load_checkpoint(tmp_path / "c", "net", NetConfig)
    with pytest.raises(CheckpointError, match=r"0\.weight \(8, 8\) vs model \(4, 4\)"):
        load_state_dict_checked(_net(4), ckpt.state_dict, "c")
    with pytest.raises(CheckpointError, match="missing"):
        load_state_dict_checked(nn.Sequential(_net(8), nn.Linear(8, 1)), ckpt.state_dict, "c")


def test_overwrite_replaces_whole_directory(tmp_path):
    save_checkpoint(tmp_path / "c", "net", NetConfig(), _net().state_dict(), extra_json={"old.json": {}})
    save_checkpoint(tmp_path / "c", "net", NetConfig(), _net().state_dict())
    assert not (tmp_path / "c" / "old.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_nested_state_round_trip_without_pickle():
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    skeleton, tensors = flatten_state(opt.state_dict())
    json.dumps(skeleton)  # the non-tensor part is plain JSON
    restored = unflatten_state(json.loads(json.dumps(skeleton)), tensors)
    opt2 = torch.optim.AdamW(model.parameters())
    opt2.load_state_dict(restored)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9)
    assert torch.equal(opt2.state[model.weight]["exp_avg"], opt.state[model.weight]["exp_avg"])


def test_resolve_run_directory(tmp_path):
    save_checkpoint(tmp_path / "run" / "model", "net", NetConfig(), _net().state_dict())
    assert resolve_checkpoint_dir(tmp_path / "run") == tmp_path / "run" / "model"
    with pytest.raises(CheckpointError):
        resolve_checkpoint_dir(tmp_path / "missing")


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
@pytest.mark.parametrize("delay", [0.0, 0.003, 0.011, 0.029, 0.07])
def test_kill_during_write_leaves_old_checkpoint_intact(tmp_path, delay, exchange):
    """SIGKILL a process that rewrites a checkpoint in a loop: what is on disk always loads,
    holds one complete write, and is a write of the child's (it signals after its first save,
    so the kill cannot come before any write, as a fixed sleep did on a slow machine). Both
    ways of replacing the directory: the atomic exchange, and the two renames where there is
    none (a kill between them leaves the previous copy, which loads and is put back)."""
    target = tmp_path / "c"
    save_checkpoint(target, "net", NetConfig(), {"w": torch.zeros(256, 1024)})
    code = (
        "import sys, torch; import audiolm.core.checkpoint as c; from audiolm.core.checkpoint import save_checkpoint\n"
        + ("" if exchange else "c._exchange_paths = lambda a, b: False\n")
        + "from dataclasses import dataclass\n"
        "@dataclass\nclass C:\n    dim: int = 4\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        f"    save_checkpoint({str(target)!r}, 'net', C(), {{'w': torch.full((256, 1024), float(i))}})\n"
        "    if i == 1:\n"
        "        print('saved', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saved"  # blocks until the first save is complete
        time.sleep(delay)  # then kill somewhere in a later save
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    for _ in range(2):  # as the kill left it, then after a locked run's clean-up
        ckpt = load_checkpoint(target, "net", NetConfig)
        w = ckpt.state_dict["w"]
        assert torch.all(w == w.flatten()[0])  # one consistent write, never a mix
        assert float(w.flatten()[0]) >= 1  # the child's write, not the initial checkpoint
        remove_stale_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["c"]


def test_a_save_killed_between_its_two_renames_loses_nothing(tmp_path):
    """Without an atomic exchange the old checkpoint is renamed aside before the new one comes
    in: if that is all a kill leaves, loading finds it and the run's clean-up puts it back."""
    target = tmp_path / "c"
    save_checkpoint(target, "net", NetConfig(), {"w": torch.ones(3)})
    os.replace(target, previous_copy(target))  # the state between the two renames
    assert torch.equal(load_checkpoint(target, "net", NetConfig).state_dict["w"], torch.ones(3))
    assert remove_stale_temps(tmp_path) == [] and (target / "config.json").is_file()
    assert not previous_copy(target).exists()
    # beside an intact checkpoint, an old copy is only debris
    save_checkpoint(previous_copy(target), "net", NetConfig(), {"w": torch.zeros(3)})
    assert remove_stale_temps(tmp_path) == [previous_copy(target)]
    assert torch.equal(load_checkpoint(target, "net", NetConfig).state_dict["w"], torch.ones(3))


def test_replacing_a_checkpoint_leaves_no_debris(tmp_path):
    target = tmp_path / "c"
    for value in (1.0, 2.0):
        save_checkpoint(target, "net", NetConfig(), {"w": torch.full((3,), value)})
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    assert torch.equal(load_checkpoint(target, "net", NetConfig).state_dict["w"], torch.full((3,), 2.0))


def test_atomic_writes_get_normal_permissions(tmp_path):
    from audiolm.core.checkpoint import atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        save_checkpoint(tmp_path / "c", "net", NetConfig(), _net().state_dict())
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o755


def test_copy_checkpoint_to_half_precision_drops_training_state(tmp_path):
    from audiolm.core.checkpoint import copy_checkpoint

    net = _net()
    save_checkpoint(
        tmp_path / "run" / "checkpoints" / "step-1",
        "net",
        NetConfig(),
        net.state_dict(),
        extra_tensors={"optimizer-model.safetensors": {"x": torch.ones(2)}, "kmeans.safetensors": {"c": torch.ones(3)}},
        extra_json={"trainer_state.json": {"step": 1}},
    )
    (tmp_path / "run" / "checkpoints" / "LATEST").write_text("step-1\n")
    out = copy_checkpoint(tmp_path / "run", tmp_path / "ship", dtype=torch.float16)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "kmeans.safetensors", "model.safetensors"]
    ckpt = load_checkpoint(out, "net", NetConfig)
    assert all(v.dtype == torch.float16 for v in ckpt.state_dict.values())
    fresh = _net()
    load_state_dict_checked(fresh, ckpt.state_dict, "ship")  # loads into fp32 parameters
    assert fresh[0].weight.dtype == torch.float32
    assert torch.allclose(fresh[0].weight, net[0].weight, atol=1e-3)


def test_format_version_message_shows_the_value_as_written(tmp_path):
    save_checkpoint(tmp_path / "c", "net", NetConfig(), _net().state_dict())
    header = json.loads((tmp_path / "c" / "config.json").read_text())
    header["format_version"] = "1"
    (tmp_path / "c" / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match='format_version is "1"; this audiolm reads the integer 1'):
        load_checkpoint(tmp_path / "c", "net")


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path):
    from audiolm.core.checkpoint import newest_intact_checkpoint

    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        save_checkpoint(
            root / f"step-{step:08d}",
            "net",
            NetConfig(),
            _net().state_dict(),
            extra_json={"trainer_state.json": {"step": step}},
        )
    (root / "LATEST").write_text("step-00000003\n")
    assert newest_intact_checkpoint(root, "net") == root / "step-00000003"
    # a torn trainer state in the newest, truncated weights in the next: the oldest is used
    (root / "step-00000003" / "trainer_state.json").write_text('{"step": 3, "optim')
    model = root / "step-00000002" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-7])
    skipped = []
    assert newest_intact_checkpoint(root, "net", warn=skipped.append) == root / "step-00000001"
    assert (
        len(skipped) == 2
        and "step-00000003" in skipped[0]
        and "model.safetensors" not in skipped[0]
        and "step-00000002" in skipped[1]
    )
    # LATEST missing (killed while writing it): the newest intact directory still counts
    (root / "LATEST").unlink()
    assert newest_intact_checkpoint(root, "net") == root / "step-00000001"
    assert newest_intact_checkpoint(tmp_path / "none", "net") is None


def test_stale_temps_of_killed_writers_are_removed(tmp_path):
    from audiolm.core.checkpoint import remove_stale_temps

    (tmp_path / ".model.abc.tmp").mkdir()
    (tmp_path / ".LATEST.x1.tmp").write_text("step")
    (tmp_path / ".step-00000002.old").mkdir()
    (tmp_path / "step-00000001").mkdir()
    (tmp_path / "run.json").write_text("{}")
    removed = remove_stale_temps(tmp_path)
    assert len(removed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "step-00000001"]
