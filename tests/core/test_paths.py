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


def _link_checkpoints(into: Path) -> Path:
    """A folder laid out like checkpoints/, whose files are links to the shipped ones."""
    for src in paths.CHECKPOINTS_DIR.resolve().rglob("*"):
        if src.is_file():
            dst = into / src.relative_to(paths.CHECKPOINTS_DIR.resolve())
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
    return into


def test_resolve_checkpoint_reroots_only_the_shipped_folder(monkeypatch, tmp_path):
    shipped = paths.CHECKPOINTS_DIR / "stage_coarse"
    elsewhere = tmp_path / "mine" / "stage_coarse"
    monkeypatch.delenv(paths.CHECKPOINTS_ENV, raising=False)
    assert paths.resolve_checkpoint(shipped) == shipped.resolve()
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "override"))
    assert paths.resolve_checkpoint(shipped) == tmp_path / "override" / "stage_coarse"
    assert paths.resolve_checkpoint(paths.PIPELINES_DIR / "../checkpoints/codec") == tmp_path / "override" / "codec"
    assert paths.resolve_checkpoint(elsewhere) == elsewhere.resolve()


def test_from_pretrained_loads_the_default_pipeline_from_the_override(monkeypatch, tmp_path):
    from audiolm.inference.pipeline import AudioLM

    override = _link_checkpoints(tmp_path / "override")
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(override))
    lm = AudioLM.from_pretrained()
    assert lm.source == paths.PIPELINES_DIR / "default.json"
    assert lm.codec.source == str(override / "codec")
    for name, stage in lm.stages.items():
        assert stage.source is not None and Path(stage.source) == override / f"stage_{name}", name


def test_a_user_recipe_elsewhere_keeps_its_own_paths(monkeypatch, tmp_path):
    import json

    from audiolm.inference.pipeline import AudioLM

    mine = _link_checkpoints(tmp_path / "mine" / "checkpoints")
    recipe = json.loads((paths.PIPELINES_DIR / "default.json").read_text())  # "../checkpoints/..."
    (tmp_path / "mine" / "recipes").mkdir()
    (tmp_path / "mine" / "recipes" / "pipeline.json").write_text(json.dumps(recipe))
    monkeypatch.setenv(paths.CHECKPOINTS_ENV, str(tmp_path / "unused"))  # holds nothing
    lm = AudioLM.from_pretrained(tmp_path / "mine" / "recipes")
    assert lm.codec.source == str((mine / "codec").resolve())
    assert all(Path(s.source) == (mine / f"stage_{n}").resolve() for n, s in lm.stages.items())
