"""Experiment trackers beside the JSON-lines log: `--log-with tensorboard|wandb` goes through
accelerate's trackers; the packages are optional (`pip install 'audiolm[trackers]'`)."""

from __future__ import annotations

import importlib.util
from typing import Any

from audiolm.core.errors import AudiolmError

TRACKERS = ("none", "tensorboard", "wandb")
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def check_tracker_installed(name: str) -> None:
    """One-line error before training starts when the tracker's package is missing (accelerate
    would only log a warning and train without it)."""
    package = _PACKAGES.get(name)
    if package and importlib.util.find_spec(package) is None:
        raise AudiolmError(f"--log-with {name} needs the {package} package: pip install 'audiolm[trackers]'")


def scalars_for_trackers(record: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A flat {name: int | float | str | bool}: nested dicts become "outer/inner", sequences
    become strings (trackers accept scalars only)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            out.update({f"{key}/{k}": v for k, v in scalars_for_trackers(value).items()})
        elif isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif value is None:
            out[key] = "none"
        else:
            out[key] = str(value)
    return out
