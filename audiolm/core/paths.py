"""Where the shipped data folders are: checkpoints/ and pipelines/ at the repository root, next
to the audiolm/ package (an editable install or a checkout on sys.path)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # audiolm/
REPO_ROOT = PACKAGE_DIR.parent
CHECKPOINTS_DIR = REPO_ROOT / "checkpoints"
PIPELINES_DIR = REPO_ROOT / "pipelines"


def shipped_checkpoint(name: str) -> Path:
    """A shipped checkpoint directory, e.g. `shipped_checkpoint("codec")` -> <repo>/checkpoints/codec."""
    return CHECKPOINTS_DIR / name
