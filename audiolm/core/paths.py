"""Where the shipped data is: the embedded default's checkpoints and the pipeline recipes.

Both live at the repository's top level (checkpoints/, pipelines/) and reach the package as
audiolm/shipped/checkpoints and audiolm/shipped/pipelines: in a checkout (or an editable
install) these are links to the top-level folders; a wheel (`pip install .`) holds copies
(package data, see pyproject.toml). So the same paths work from any install and any working
directory, and nothing walks up from the package to find a repository root.

`AUDIOLM_CHECKPOINTS=DIR` replaces the shipped checkpoints folder for everything that asks for
a shipped checkpoint by name (`shipped_checkpoint`: the default codec, semantic tokenizer,
WaveNets, the bundled prompts). DIR is laid out like checkpoints/ (codec/, semantic/, ...).
Pipeline recipes name their checkpoints by paths relative to the recipe file; a path that lands
in the shipped checkpoints folder (as the shipped recipes' "../checkpoints/NAME" do) is re-rooted
at DIR by `resolve_checkpoint`, so `AudioLM.from_pretrained()` follows the override too. A path
anywhere else (a user recipe's own checkpoints) is left as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # audiolm/
SHIPPED_DIR = PACKAGE_DIR / "shipped"
PIPELINES_DIR = SHIPPED_DIR / "pipelines"
# the shipped checkpoints folder itself; `checkpoints_dir()` / `shipped_checkpoint()` honour the
# AUDIOLM_CHECKPOINTS override, this constant does not
CHECKPOINTS_DIR = SHIPPED_DIR / "checkpoints"
CHECKPOINTS_ENV = "AUDIOLM_CHECKPOINTS"


def checkpoints_dir() -> Path:
    """The shipped checkpoints folder, or `$AUDIOLM_CHECKPOINTS` when set (read on every call)."""
    override = os.environ.get(CHECKPOINTS_ENV)
    return Path(override) if override else CHECKPOINTS_DIR


def shipped_checkpoint(name: str) -> Path:
    """A shipped checkpoint directory, e.g. `shipped_checkpoint("codec")` -> .../checkpoints/codec."""
    return checkpoints_dir() / name


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """`path` resolved; one inside the shipped checkpoints folder is re-rooted at `checkpoints_dir()`.

    E.g. with AUDIOLM_CHECKPOINTS=/data/ckpt, .../shipped/checkpoints/stage_coarse ->
    /data/ckpt/stage_coarse; a path outside the shipped folder comes back resolved, unchanged.
    """
    resolved = Path(path).resolve()
    if not os.environ.get(CHECKPOINTS_ENV):
        return resolved
    try:
        inside = resolved.relative_to(CHECKPOINTS_DIR.resolve())
    except ValueError:
        return resolved
    return checkpoints_dir() / inside
