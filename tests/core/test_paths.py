"""Shipped data is found through the package (audiolm/shipped/), from any working directory;
AUDIOLM_CHECKPOINTS replaces the checkpoints folder. (The installed-wheel case:
tests/test_wheel_install.py.)"""

from pathlib import Path

from audiolm.core import paths
from audiolm.models.codec.codec import default_codec_dir
from audiolm.models.semantic.tokenizer import default_checkpoint_dir
from audiolm.models.wavenet.model import shipped_dir

REPO = Path(__file__).resolve().parents[2]


def test_shipped_folders_are_the_top_level_ones_in_a_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.CHECKPOINTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.checkpoints_dir().resolve() == (REPO / "checkpoints").resolve()
    assert paths.checkpoints_dir() == paths.CHECKPOINTS_DIR
    assert paths.PIPELINES_DIR.resolve() == (REPO / "pipelines").resolve()
    assert (default_codec_dir() / "config.json").is_file()
    assert (paths.PIPELINES_DIR / "default.json").is_file()


def test_audiolm_checkpoints_overrides_every_shipped_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path))
    assert paths.shipped_checkpoint("prompts") == tmp_path / "prompts"
    assert default_codec_dir() == tmp_path / "codec"
    assert default_checkpoint_dir() == tmp_path / "semantic"
    assert shipped_dir("wavenet_gc") == tmp_path / "wavenet_gc"
    assert paths.CHECKPOINTS_DIR != tmp_path  # the shipped folder itself
