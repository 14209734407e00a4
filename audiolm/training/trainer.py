"""The one Trainer every model uses: codec, SSL encoder, LM stages, WaveNet.

A `Task` (task.py) supplies data, the trainable parts and batch -> loss; this file owns the
rest, on accelerate: mixed precision (precision.py: bf16 autocast, fp16 with one GradScaler
step per optimizer), gradient accumulation, DDP/FSDP and multi-node through `accelerate launch`
or `torchrun`, AdamW with warmup + cosine decay per part, gradient clipping, validation every N
steps, checkpoints every N steps (keep the last K), a progress bar, a JSON-lines log (plus
TensorBoard / W&B through accelerate's trackers) — and resume after a kill with the same
weights, optimizer state, RNG and data order, so a resumed run ends bit-identical to an
uninterrupted one.

Under DDP every process draws its own disjoint share of each global batch (`item_keys_for_batch`),
gradients are averaged across processes, and only process 0 validates and writes (checkpoints,
logs, the exported model). Each process keeps its own RNG stream (dropout), all saved by process 0.

Run directory:

    RUN/run.json                       kind, model config, train config (read back by --resume)
    RUN/log.jsonl                      one JSON object per logged step / validation
    RUN/checkpoints/step-00000200/     a checkpoint dir + optimizer / scheduler / RNG state
    RUN/checkpoints/LATEST             name of the newest complete step checkpoint
    RUN/model/                         the exported model (config.json + model.safetensors)
    RUN/trackers/KIND/                 TensorBoard event files (--log-with tensorboard)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from audiolm.core.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    flatten_state,
    load_checkpoint,
    load_state_dict_checked,
    load_tensors,
    newest_intact_checkpoint,
    remove_stale_temps,
    save_checkpoint,
    unflatten_state,
)
from audiolm.core.config import config_from_dict, config_to_dict, load_config_file
from audiolm.core.errors import AudiolmError, ConfigError
from audiolm.core.outputs import RunLock
from audiolm.training.precision import resolve_precision
from audiolm.training.task import ItemKey, Task
from audiolm.training.trackers import TRACKERS, check_tracker_installed, scalars_for_trackers


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0  # 0 disables clipping
    grad_accum: int = 1
    mixed_precision: str = "auto"  # "auto" = bf16 on a GPU that has it, else fp32 (precision.py)
    valid_every: int = 200
    valid_batches: int = 10
    save_every: int = 200
    keep_last: int = 3
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    log_with: str = "none"  # a tracker beside log.jsonl: "none" | "tensorboard" | "wandb"

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay", "warmup_steps", "min_lr_ratio", "grad_clip", "valid_batches", "num_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        for name in ("steps", "batch_size", "grad_accum", "valid_every", "save_every", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be auto, no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.log_with not in TRACKERS:
            raise ValueError(f"log_with must be one of {', '.join(TRACKERS)}, got {self.log_with!r}")


# ---------------------------------------------------------------------------------------------
# deterministic data order


def item_keys_for_batch(
    num_items: int, batch_size: int, seed: int, global_batch_index: int, world_size: int = 1, rank: int = 0
) -> list[ItemKey]:
    """The item keys of one micro-batch on one process, a pure function of its position.

    Sample position p runs over an endless sequence of epochs; epoch e is a permutation of the
    dataset seeded by (seed, e). Because keys depend only on positions, a resumed run draws
    exactly the batches the uninterrupted run would have drawn.
    """
    keys = []
    first = (global_batch_index * world_size + rank) * batch_size
    cached_epoch, perm = -1, torch.empty(0, dtype=torch.long)
    for p in range(first, first + batch_size):
        epoch, offset = divmod(p, num_items)
        if epoch != cached_epoch:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm = torch.randperm(num_items, generator=g)
            cached_epoch = epoch
        keys.append(ItemKey(int(perm[offset]), (seed * 2_654_435_761 + p) % (2**63)))
    return keys


class _KeyBatchSampler:
    """Endless batch sampler from `start_batch` on (see item_keys_for_batch)."""

    def __init__(self, num_items: int, batch_size: int, seed: int, start_batch: int, world_size: int, rank: int):
        self.args = (num_items, batch_size, seed)
        self.start_batch, self.world_size, self.rank = start_batch, world_size, rank

    def __iter__(self) -> Iterator[list[ItemKey]]:
        b = self.start_batch
        while True:
            yield item_keys_for_batch(*self.args, b, self.world_size, self.rank)
            b += 1


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(_to_device(v, device) for v in batch)
    if hasattr(batch, "_fields"):  # NamedTuple
        return type(batch)(*(_to_device(v, device) for v in batch))
    return batch


def cosine_with_warmup(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine down to `min_ratio` at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    def __init__(
        self,
        task: Task,
        config: TrainConfig,
        out_dir: str | Path,
        *,
        resume: bool = False,
        progress: bool = True,
    ) -> None:
        from accelerate import Accelerator  # lazy: accelerate takes seconds to import
        from accelerate.state import AcceleratorState  # lazy: accelerate takes seconds to import
        from accelerate.utils import ProjectConfiguration  # lazy: accelerate takes seconds to import

        refuse_single_process_cpu_launch()
        self.task, self.config, self.out_dir = task, config, Path(out_dir)
        self.progress = progress
        use_cpu = config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available())
        if config.device == "cuda" and not torch.cuda.is_available():
            raise AudiolmError("--device cuda was asked for, but no CUDA GPU is available")
        # every process checks --out before the Accelerator's rendezvous: no process can write
        # into it before all have joined, so a slow rank never sees the files of a fast one
        self._check_out_dir(resume)
        self.precision = resolve_precision(config.mixed_precision, "cpu" if use_cpu else "cuda")
        check_tracker_installed(config.log_with)
        # accelerate keeps its settings in process-wide singletons; one process may build
        # several Trainers (tests, notebooks) on other devices. The process group stays.
        AcceleratorState._reset_state(reset_partial_state=not torch.distributed.is_initialized())
        self.accelerator = Accelerator(
            cpu=use_cpu,
            mixed_precision="no",  # autocast and loss scaling are ours (precision.py)
            log_with=None if config.log_with == "none" else [config.log_with],
            project_config=ProjectConfiguration(
                project_dir=str(self.out_dir), logging_dir=str(self.out_dir / "trackers")
            ),
        )
        self.scaler = self.precision.scaler()
        self._lock: RunLock | None = None
        if self.accelerator.is_main_process:
            # process 0 holds the run directory until fit() ends (`audiolm train` holds it
            # already: shared), so what a killed run left there can go before anything loads
            self._lock = RunLock(self.out_dir).acquire()
            self._remove_stale_temps()
        self.accelerator.wait_for_everyone()
        if self.precision.note and self.accelerator.is_main_process:
            print(self.precision.note, file=sys.stderr)

        self.part_names = list(task.parts().keys())
        if "model" not in self.part_names:
            raise ValueError(f"{type(task).__name__}.parts() must contain a 'model' part")
        raw_parts = task.parts()
        self.optimizers, self.schedulers = {}, {}
        for name, module in raw_parts.items():
            self.optimizers[name] = self._make_optimizer(name, module)
        prepared = self.accelerator.prepare(*raw_parts.values(), *self.optimizers.values())
        n = len(raw_parts)
        self.parts: dict[str, nn.Module] = dict(zip(self.part_names, prepared[:n]))
        self.optimizers = dict(zip(self.part_names, prepared[n:]))
        for name, opt in self.optimizers.items():
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
                opt,
                lambda s: cosine_with_warmup(s, config.steps, config.warmup_steps, config.min_lr_ratio),
            )
        self.params = {name: [p for p in m.parameters() if p.requires_grad] for name, m in self.parts.items()}
        acc = self.accelerator
        if acc.num_processes > 1 and acc.process_index > 0:
            # DDP has copied process 0's initial weights everywhere; from here on each process
            # draws its own random numbers (dropout masks), process 0 the single-process stream
            torch.manual_seed(config.seed * 1_000_003 + acc.process_index)
        self.step = 0
        if resume:
            self._load_latest()
            if acc.is_main_process:
                self._keep_train_config(config)
        elif acc.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(
                self.out_dir / "run.json",
                {
                    "kind": task.kind,
                    "model_config": config_to_dict(task.model_config()),
                    "train_config": config_to_dict(config),
                }
                | task.run_info(),
            )
        acc.wait_for_everyone()
        if config.log_with != "none":
            acc.init_trackers(task.kind, config=scalars_for_trackers(config_to_dict(config)))

    # -- set-up -------------------------------------------------------------------------------

    def _keep_train_config(self, config: TrainConfig) -> None:
        """On --resume, flags given again (`--steps 4800` to extend a finished schedule) are
        written into run.json, so a later plain --resume keeps them."""
        run_file = self.out_dir / "run.json"
        run = json.loads(run_file.read_text())
        if run.get("train_config") != config_to_dict(config):
            run["train_config"] = config_to_dict(config)
            atomic_write_json(run_file, run)

    def _check_out_dir(self, resume: bool) -> None:
        run_file = self.out_dir / "run.json"
        if resume:
            if not run_file.is_file():
                raise AudiolmError(f"{self.out_dir}: no training run to resume (no run.json)")
            saved_kind = json.loads(run_file.read_text()).get("kind")
            if saved_kind != self.task.kind:
                raise AudiolmError(f"{self.out_dir}: holds a '{saved_kind}' run, not '{self.task.kind}'")
        elif self.out_dir.exists() and any(not p.name.startswith(".") for p in self.out_dir.iterdir()):
            raise AudiolmError(
                f"{self.out_dir}: already holds files; pass --resume to continue that run or choose another --out"
            )

    def _remove_stale_temps(self) -> None:
        """Remove the hidden temp files and folders a killed run left in RUN and RUN/checkpoints
        (`.step-*.tmp`, `.LATEST*.tmp`, `.model.*.tmp`, `.NAME.old`): saves are atomic, so
        they are never part of a checkpoint. Only under the run directory's lock."""
        for folder in (self.out_dir, self.out_dir / "checkpoints"):
            for path in remove_stale_temps(folder):
                print(f"audiolm: removed {path} (left by a killed run)", file=sys.stderr)

    def close(self) -> None:
        """Release the run directory (fit() does at its end; a later fit() takes it again)."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit the lock module may be gone: the process end frees it
            pass

    def _make_optimizer(self, name: str, module: nn.Module) -> torch.optim.Optimizer:
        settings = {
            "lr": self.config.lr,
            "betas": tuple(self.config.betas),
            "weight_decay": self.config.weight_decay,
        }
        settings.update(self.task.optimizer_settings(name))
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for p in module.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": settings.pop("weight_decay")},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, **settings)  # type: ignore[arg-type]  # settings: AdamW keywords

    def _loader(self, dataset, start_batch: int) -> Iterator[Any]:
        sampler = _KeyBatchSampler(
            len(dataset),
            self.config.batch_size,
            self.config.seed,
            start_batch,
            self.accelerator.num_processes,
            self.accelerator.process_index,
        )
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.task.collate,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
            # its own generator: creating the iterator must not consume the global RNG, or a
            # resumed run's dropout masks would drift from the uninterrupted run's
            generator=torch.Generator().manual_seed(self.config.seed + start_batch),
        )
        return iter(loader)

    # -- the loop -----------------------------------------------------------------------------

    def fit(self, stop_after: int | None = None) -> Path:
        """Train to `config.steps` (or stop early after step `stop_after`, checkpointing
        there) and export the model."""
        if self._lock is not None:
            self._lock.acquire()  # again, after an earlier fit()
        try:
            return self._fit(stop_after)
        finally:
            self.close()

    def _fit(self, stop_after: int | None) -> Path:
        cfg, acc = self.config, self.accelerator
        train_set: Any = self.task.train_dataset()  # map-style: __len__ and __getitem__(ItemKey)
        if len(train_set) == 0:
            raise AudiolmError("the training set is empty")
        batches = self._loader(train_set, start_batch=self.step * cfg.grad_accum)
        log_path = self.out_dir / "log.jsonl"
        bar = None
        if self.progress and acc.is_local_main_process:
            bar = tqdm(
                total=cfg.steps, initial=self.step, desc=f"train {self.task.kind}", unit="step", dynamic_ncols=True
            )
        for module in self.parts.values():
            module.train()
        last_time, last_step, bad_steps = time.perf_counter(), self.step, 0
        while self.step < cfg.steps:
            losses, metrics = self._train_step(batches)
            finite = all(math.isfinite(v) for v in losses.values())
            bad_steps = 0 if finite else bad_steps + 1
            if bad_steps >= 20:
                raise AudiolmError(
                    f"loss was not finite for {bad_steps} steps in a row at step {self.step}; "
                    "lower --lr or check the data"
                )
            self.step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(losses.items())[:3]})
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                now = time.perf_counter()
                items = (self.step - last_step) * cfg.batch_size * cfg.grad_accum * acc.num_processes
                record = {
                    "step": self.step,
                    "lr": self.schedulers["model"].get_last_lr()[0],
                    **{f"loss/{k}": v for k, v in losses.items()},
                    **metrics,
                    "items_per_s": items / max(now - last_time, 1e-9),
                    "time": time.time(),
                }
                last_time, last_step = now, self.step
                self._log(log_path, record)
            if self.step % cfg.valid_every == 0 or self.step == cfg.steps:
                valid = self.validate()
                if valid:
                    self._log(log_path, {"step": self.step, "valid": valid, "time": time.time()})
                    if bar is not None:
                        bar.write(f"step {self.step}: " + ", ".join(f"valid {k} {v:.4g}" for k, v in valid.items()))
            if self.step % cfg.save_every == 0 or self.step == cfg.steps or self.step == stop_after:
                self.save()
            if self.step == stop_after:
                break
        if bar is not None:
            bar.close()
        for tracker in acc.trackers:  # not acc.end_training(): that also ends the process group
            tracker.finish()
        return self.export()

    def _train_step(self, batches: Iterator[Any]) -> tuple[dict[str, float], dict[str, float]]:
        cfg, acc = self.config, self.accelerator
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        local_losses: dict[str, float] = {}  # this process's, averaged over micro-batches
        metric_sums: dict[str, float] = {}  # this process's
        stepped = set()
        for micro in range(cfg.grad_accum):
            batch = _to_device(next(batches), acc.device)
            last = micro == cfg.grad_accum - 1
            with _no_sync(acc, self.parts.values(), enabled=not last), self.precision.autocast():
                out = self.task.training_step(self.parts, batch, self.step)
            names = [n for n in self.part_names if n in out.losses]
            for i, name in enumerate(names):
                loss = out.losses[name]
                local_losses[name] = local_losses.get(name, 0.0) + float(loss.detach()) / cfg.grad_accum
                if not loss.requires_grad:
                    continue
                # each loss only feeds its own part's gradients (a generator loss computed
                # through the discriminator leaves the discriminator's gradients alone)
                loss = loss / cfg.grad_accum
                if self.scaler is not None:
                    loss = self.scaler.scale(loss)
                loss.backward(inputs=self.params[name], retain_graph=i < len(names) - 1)
                stepped.add(name)
            for k, v in out.metrics.items():
                metric_sums[k] = metric_sums.get(k, 0.0) + float(v) / cfg.grad_accum
        # One all-reduce per step, right after the gradients' (the processes are in step there):
        # every process then takes the same decision to step a part or to skip a non-finite loss.
        loss_sums = self._mean_over_processes(local_losses)
        scaled_steps = 0
        for name in self.part_names:
            if name in stepped and math.isfinite(loss_sums.get(name, float("nan"))):
                opt = self.optimizers[name]
                if self.scaler is not None:
                    self.scaler.unscale_(opt)  # exactly once per optimizer and step
                if cfg.grad_clip > 0:
                    metric_sums[f"grad_norm/{name}"] = float(self._clip_gradients(name))
                if self.scaler is not None:
                    self.scaler.step(opt)  # skipped when this part's gradients hold inf/nan
                    scaled_steps += 1
                else:
                    opt.step()
            # A part's schedule starts with its first step (a discriminator switched on later
            # warms up then); after that it advances every step, skipped or not.
            if name in stepped or self.schedulers[name].last_epoch > 0:
                self.schedulers[name].step()
        if scaled_steps:
            assert self.scaler is not None
            metric_sums["loss_scale"] = float(self.scaler.get_scale())
            self.scaler.update()  # once per step, after every optimizer has stepped
        return loss_sums, metric_sums

    def _mean_over_processes(self, values: dict[str, float]) -> dict[str, float]:
        if self.accelerator.num_processes == 1 or not values:
            return values
        mean = self.accelerator.reduce(torch.tensor(list(values.values()), device=self.accelerator.device), "mean")
        return dict(zip(values, mean.tolist()))

    def _clip_gradients(self, name: str) -> torch.Tensor:
        module: Any = self.parts[name]  # DDP/FSDP-wrapped
        if hasattr(module, "clip_grad_norm_"):  # FSDP shards gradients: it computes the global norm
            return module.clip_grad_norm_(self.config.grad_clip)
        # DDP has averaged the gradients already: every process computes the same norm
        return torch.nn.utils.clip_grad_norm_(self.params[name], self.config.grad_clip)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Process 0 only, on the unwrapped parts (a DDP forward would wait for the others)."""
        if not self.accelerator.is_main_process:
            return {}
        dataset: Any = self.task.valid_dataset()  # map-style, or None
        if dataset is None or len(dataset) == 0:
            return {}
        parts = {name: self._unwrapped(name) for name in self.part_names}
        for module in parts.values():
            module.eval()
        sums: dict[str, float] = {}
        count = 0
        bs = self.config.batch_size
        n_batches = min(self.config.valid_batches, math.ceil(len(dataset) / bs))
        # fixed items and seeds: validation figures are comparable across steps and runs
        for b in range(n_batches):
            indices = range(b * bs, min((b + 1) * bs, len(dataset)))
            items = [dataset[ItemKey(i, i)] for i in indices]
            batch = _to_device(self.task.collate(items), self.accelerator.device)
            with self.precision.autocast():
                metrics = self.task.validation_step(parts, batch)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
        for module in self.parts.values():
            module.train()
        return {k: v / count for k, v in sums.items()}

    def _log(self, path: Path, record: dict[str, Any]) -> None:
        if self.accelerator.is_main_process:
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if self.config.log_with != "none":
                self.accelerator.log(scalars_for_trackers(record, skip=("step", "time")), step=record["step"])

    # -- checkpoints --------------------------------------------------------------------------

    def _unwrapped(self, name: str) -> nn.Module:
        return self.accelerator.unwrap_model(self.parts[name])

    def save(self) -> Path | None:
        """Write RUN/checkpoints/step-N (atomically), point LATEST at it, prune old ones."""
        acc = self.accelerator
        acc.wait_for_everyone()
        rng = self._rng_states()  # every process's, gathered on all
        if not acc.is_main_process:
            return None
        ckpt_root = self.out_dir / "checkpoints"
        name = f"step-{self.step:08d}"
        extra_tensors, extra_json = self.task.export_extras()
        extra_tensors, extra_json = dict(extra_tensors), dict(extra_json)
        state: dict[str, Any] = {"step": self.step, "optimizers": {}, "schedulers": {}}
        for part in self.part_names:
            if part != "model":
                extra_tensors[f"part-{part}.safetensors"] = self._unwrapped(part).state_dict()
            skeleton, tensors = flatten_state(self.optimizers[part].state_dict(), prefix=part)
            state["optimizers"][part] = skeleton
            extra_tensors[f"optimizer-{part}.safetensors"] = tensors
            state["schedulers"][part] = self.schedulers[part].state_dict()
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        extra_tensors["rng.safetensors"] = rng
        extra_json["trainer_state.json"] = state
        save_checkpoint(
            ckpt_root / name,
            self.task.kind,
            self.task.model_config(),
            self._unwrapped("model").state_dict(),
            extra_tensors=extra_tensors,
            extra_json=extra_json,
            meta={"step": self.step},
        )
        atomic_write_text(ckpt_root / "LATEST", name + "\n")
        steps = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())
        for old in steps[: -self.config.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return ckpt_root / name

    def _load_latest(self) -> None:
        ckpt_root = self.out_dir / "checkpoints"
        # LATEST's checkpoint, or the newest intact one if that one is torn (core/checkpoint.py)
        path = newest_intact_checkpoint(ckpt_root, self.task.kind, warn=_warn)
        if path is None:
            if any(ckpt_root.glob("step-*")):
                raise AudiolmError(f"{ckpt_root}: no intact checkpoint to resume from")
            return  # killed before the first checkpoint: start from step 0
        ckpt = load_checkpoint(path, self.task.kind)
        model_config = self.task.model_config()
        # through the dataclass: a field added since the run started (at its default) is no difference
        saved_config = config_to_dict(config_from_dict(type(model_config), ckpt.config, where=str(path)))
        if saved_config != config_to_dict(model_config):
            raise AudiolmError(f"{path}: model config differs from this run's; resume with the run's own config")
        load_state_dict_checked(self._unwrapped("model"), ckpt.state_dict, str(path))
        state = json.loads((path / "trainer_state.json").read_text())
        for part in self.part_names:
            if part != "model":
                load_state_dict_checked(
                    self._unwrapped(part), load_tensors(path / f"part-{part}.safetensors"), str(path)
                )
            tensors = load_tensors(path / f"optimizer-{part}.safetensors")
            self.optimizers[part].load_state_dict(unflatten_state(state["optimizers"][part], tensors))
            self.schedulers[part].load_state_dict(state["schedulers"][part])
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
        self._set_rng_states(load_tensors(path / "rng.safetensors"))
        self.step = int(state["step"])

    def _rng_states(self) -> dict[str, torch.Tensor]:
        """{"cpu": [processes, S], "cuda": [processes, S'] on a GPU}: row r is process r's."""
        acc = self.accelerator
        states = {"cpu": torch.get_rng_state()}
        if acc.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(acc.device)
        if acc.num_processes == 1:
            return {k: v[None] for k, v in states.items()}
        return {k: acc.gather(v.to(acc.device)[None]).cpu() for k, v in states.items()}

    def _set_rng_states(self, rng: dict[str, torch.Tensor]) -> None:
        acc = self.accelerator
        if rng["cpu"].dim() == 1:  # a checkpoint from before per-process states
            torch.set_rng_state(rng["cpu"])
            return
        # a run resumed on another number of processes keeps going, with other random draws
        row = acc.process_index % rng["cpu"].shape[0]
        # copies: set_rng_state misreads a row view of the loaded tensor
        torch.set_rng_state(rng["cpu"][row].clone())
        if "cuda" in rng and acc.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"][row].clone(), acc.device)

    def export(self) -> Path:
        """Write RUN/model: the model alone, loadable with `load_checkpoint(RUN/model, kind)`."""
        acc = self.accelerator
        acc.wait_for_everyone()
        target = self.out_dir / "model"
        if acc.is_main_process:
            extra_tensors, extra_json = self.task.export_extras()
            save_checkpoint(
                target,
                self.task.kind,
                self.task.model_config(),
                self._unwrapped("model").state_dict(),
                extra_tensors=extra_tensors,
                extra_json=extra_json,
                meta={"step": self.step},
            )
        return target


def _warn(message: str) -> None:
    print(f"audiolm: warning: {message}", file=sys.stderr)


class _no_sync:
    """Skip DDP gradient all-reduce on non-final accumulation micro-batches."""

    def __init__(self, accelerator, modules, enabled: bool):
        self.contexts = [accelerator.no_sync(m) for m in modules] if enabled else []

    def __enter__(self):
        for c in self.contexts:
            c.__enter__()

    def __exit__(self, *exc):
        for c in reversed(self.contexts):
            c.__exit__(*exc)
        return False


# ---------------------------------------------------------------------------------------------
# command-line glue shared by every `audiolm train ...`


_FLAGS = {
    # flag: (TrainConfig field, type, help)
    "--steps": ("steps", int, "optimizer steps in total"),
    "--batch-size": ("batch_size", int, "items per micro-batch per process"),
    "--lr": ("lr", float, "peak learning rate"),
    "--warmup-steps": ("warmup_steps", int, "linear warm-up steps"),
    "--grad-accum": ("grad_accum", int, "micro-batches per optimizer step"),
    "--valid-every": ("valid_every", int, "validate every N steps"),
    "--save-every": ("save_every", int, "checkpoint every N steps"),
    "--keep-last": ("keep_last", int, "step checkpoints to keep"),
    "--mixed-precision": ("mixed_precision", str, "auto | no | bf16 | fp16"),
    "--seed": ("seed", int, "seed for initialisation and data order"),
    "--num-workers": ("num_workers", int, "data-loading worker processes"),
    "--device": ("device", str, "auto | cpu | cuda"),
    "--log-with": ("log_with", str, "a tracker beside log.jsonl: none | tensorboard | wandb"),
}


def add_training_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """--out/--resume/--config/--train-config plus one flag per common TrainConfig field."""
    parser.add_argument("--out", required=True, help="run directory (checkpoints, log, exported model)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--config", help="model config JSON (fields of the model's config dataclass)")
    parser.add_argument("--train-config", help="training config JSON (any TrainConfig field)")
    for flag, (field, typ, help_text) in _FLAGS.items():
        parser.add_argument(flag, type=typ, default=None, help=f"{help_text} (default {getattr(defaults, field)})")


def read_run_file(out: Path) -> dict[str, Any]:
    run_file = out / "run.json"
    if not run_file.is_file():
        raise AudiolmError(f"{out}: no training run to resume (no run.json)")
    return json.loads(run_file.read_text())


def resolve_model_config(args: argparse.Namespace, config_cls: type, default: Any) -> Any:
    """The model config: the run's own on --resume, else --config, else `default`."""
    if getattr(args, "resume", False):
        saved: Any = config_from_dict(config_cls, read_run_file(Path(args.out))["model_config"], where="run.json")
        if args.config:
            given: Any = load_config_file(config_cls, args.config)
            if given != saved:
                raise ConfigError(f"{args.config}: differs from the model config of the run in {args.out}")
        return saved
    if args.config:
        return load_config_file(config_cls, args.config)
    return default


def train_config_from_args(args: argparse.Namespace, defaults: TrainConfig) -> TrainConfig:
    """TrainConfig from (saved run on --resume | --train-config | defaults) + explicit flags."""
    base = defaults
    if getattr(args, "resume", False):
        base = config_from_dict(TrainConfig, read_run_file(Path(args.out))["train_config"], where="run.json")
    elif getattr(args, "train_config", None):
        base = load_config_file(TrainConfig, args.train_config)
    overrides = {
        field: getattr(args, flag[2:].replace("-", "_"))
        for flag, (field, _, _) in _FLAGS.items()
        if getattr(args, flag[2:].replace("-", "_"), None) is not None
    }
    merged = config_to_dict(base) | overrides
    return config_from_dict(TrainConfig, merged, where="training config")


def train_from_args(task: Task | Callable[[], Task], args: argparse.Namespace, defaults: TrainConfig) -> Path:
    """Build the TrainConfig from the flags, seed, build the task if given a factory, train.

    Pass a factory: `--seed` (the run's own on --resume, also left in `args.seed` for the
    factory to read) must be set before the task builds its model. Prints the exported model
    directory (process 0); returns it.
    """
    from accelerate.utils import set_seed  # lazy: accelerate takes seconds to import

    refuse_single_process_cpu_launch()  # before the task loads its data
    config = train_config_from_args(args, defaults)
    args.seed = config.seed
    set_seed(config.seed)  # python, numpy and torch (CPU and CUDA): the initial weights
    if not isinstance(task, Task):
        task = task()
    trainer = Trainer(task, config, args.out, resume=args.resume)
    out = trainer.fit()
    if trainer.accelerator.is_main_process:
        print(f"model written to {out}")
    end_process_group()
    return out


def end_process_group() -> None:
    """Leave the process group together at the end of a launched run (a process exiting while
    another still holds gloo connections to it can abort)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


_ONE_PROCESS_LAUNCH = (
    "`accelerate launch --cpu` starts one process whatever --num_processes says (more CPU processes need "
    "mpirun); for N processes run `accelerate launch --multi_gpu --num_processes N -m audiolm train ... "
    "--device cpu` or `torchrun --nproc_per_node N -m audiolm train ...`"
)


def refuse_single_process_cpu_launch(environ: dict[str, str] | None = None) -> None:
    """`accelerate launch --cpu --num_processes 2` sets MASTER_ADDR but runs a single process
    (accelerate's simple launcher): training would silently run on one process. Refuse."""
    env = os.environ if environ is None else environ
    asked_cpu = env.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    launched_alone = not any(
        k in env for k in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
    )
    if asked_cpu and "MASTER_ADDR" in env and launched_alone:
        raise AudiolmError(_ONE_PROCESS_LAUNCH)


__all__ = [
    "TrainConfig",
    "Trainer",
    "add_training_arguments",
    "resolve_model_config",
    "train_config_from_args",
    "train_from_args",
    "item_keys_for_batch",
    "cosine_with_warmup",
]
