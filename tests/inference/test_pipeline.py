"""The continuation pipeline end to end on tiny random components (`tests/helpers.py`):
shapes and durations, seeds, batched samples, prompt-token reuse, load-time mismatch errors,
bad prompts, and the `audiolm continue` command."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from audiolm.core.audio import load_audio, save_audio
from audiolm.inference.pipeline import PIPELINES_DIR, AudioLM, PipelineError, PromptTokens, find_recipe, load_recipe
from tests.helpers import N_Q, run_cli, save_stage, save_tokenizer, stage_config, tokens_info, tone, write_recipe

HOP = 320
SR = 24000


@pytest.fixture(scope="module")
def lm(tiny_pipeline) -> AudioLM:
    return AudioLM.from_pretrained(tiny_pipeline)


@pytest.fixture(scope="module")
def prompt_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompt") / "prompt.wav"
    save_audio(path, tone(0.5), SR)
    return path


def frames(seconds: float) -> int:
    return round(seconds * 75)


# -- library --------------------------------------------------------------------------------


def test_shapes_and_duration(lm):
    wav = tone(0.5)  # 12000 samples = 37.5 frames -> 37 whole frames kept
    result = lm.generate_continuation(wav, SR, seconds=0.4, seed=0)
    total = 37 + frames(0.4)
    assert result.audio.shape == (1, 1, total * HOP)
    assert result.sample_rate == SR and result.prompt_samples == 37 * HOP
    assert result.codes.shape == (1, N_Q, total)
    assert result.semantic.shape == (1, -(-total * 50 // 75))
    assert torch.allclose(result.audio[0, :, : 37 * HOP], wav[:, : 37 * HOP])  # the prompt comes first
    assert torch.isfinite(result.audio).all()
    # any channel count and sample rate: a 16 kHz stereo prompt of the same length
    stereo = torch.cat([tone(0.5, 16000), tone(0.5, 16000, freq=330)])
    audio = lm.continue_audio(stereo, 16000, seconds=0.2, seed=0)
    assert audio.shape == (1, 1, (37 + frames(0.2)) * HOP)


def test_long_and_tiny_continuations(lm):
    """Past the semantic stage's context (64 tokens = 1.28 s) the decoder slides its window; the
    coarse and fine stages walk in windows; one frame is the shortest continuation."""
    result = lm.generate_continuation(tone(1.0), SR, seconds=1.5, seed=0)
    total = 75 + frames(1.5)
    assert result.codes.shape == (1, N_Q, total) and result.semantic.shape == (1, -(-total * 50 // 75))
    assert set(result.timings) == {"encode", "semantic", "coarse", "fine", "codec"}
    one = lm.continue_audio(tone(0.5), SR, seconds=0.001, seed=0, continuation_only=True)
    assert one.shape == (1, 1, HOP)


def test_continuation_only(lm):
    full = lm.continue_audio(tone(0.5), SR, seconds=0.3, seed=3)
    new = lm.continue_audio(tone(0.5), SR, seconds=0.3, seed=3, continuation_only=True)
    assert new.shape == (1, 1, frames(0.3) * HOP)
    assert torch.equal(new, full[..., 37 * HOP :])


def test_seed_determinism(lm):
    a = lm.generate_continuation(tone(0.5), SR, seconds=0.3, seed=7)
    b = lm.generate_continuation(tone(0.5), SR, seconds=0.3, seed=7)
    c = lm.generate_continuation(tone(0.5), SR, seconds=0.3, seed=8)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.audio, b.audio)
    assert not torch.equal(a.codes, c.codes)


def test_num_samples_match_single_runs(lm):
    batch = lm.generate_continuation(tone(0.5), SR, seconds=0.3, seed=11, num_samples=3)
    assert batch.audio.shape[0] == 3
    for i in range(3):
        single = lm.generate_continuation(tone(0.5), SR, seconds=0.3, seed=11 + i)
        assert torch.equal(batch.semantic[i], single.semantic[0])
        assert torch.equal(batch.codes[i], single.codes[0])
        assert torch.allclose(batch.audio[i], single.audio[0], atol=1e-5)
    assert not torch.equal(batch.codes[0], batch.codes[1])


def test_prompt_tokens_roundtrip(lm, tmp_path):
    prompt = lm.encode_prompt(tone(0.5), SR)
    prompt.save(tmp_path / "p.safetensors")
    loaded = PromptTokens.load(tmp_path / "p.safetensors")
    assert torch.equal(loaded.codes, prompt.codes) and torch.equal(loaded.semantic, prompt.semantic)
    from_audio = lm.continue_audio(tone(0.5), SR, seconds=0.3, seed=2)
    from_tokens = lm.continue_audio(None, None, seconds=0.3, seed=2, prompt=loaded)
    assert torch.equal(from_audio, from_tokens)


def test_prompt_tokens_bad_files(lm, tmp_path):
    with pytest.raises(PipelineError, match="file not found"):
        PromptTokens.load(tmp_path / "missing.safetensors")
    from audiolm.core.checkpoint import save_tensors

    save_tensors(tmp_path / "other.safetensors", {"x": torch.zeros(2)})
    with pytest.raises(PipelineError, match="not a saved prompt"):
        PromptTokens.load(tmp_path / "other.safetensors")
    prompt = lm.encode_prompt(tone(0.5), SR)
    fewer = PromptTokens(prompt.audio, prompt.semantic, prompt.codes[:, :2])
    with pytest.raises(PipelineError, match="holds 2 codec levels, this pipeline needs 4"):
        lm.continue_audio(None, None, seconds=0.2, prompt=fewer)
    foreign = PromptTokens(prompt.audio, prompt.semantic + 100, prompt.codes)
    with pytest.raises(PipelineError, match="semantic tokens do not fit"):
        lm.continue_audio(None, None, seconds=0.2, prompt=foreign)


def test_bad_prompts(lm):
    with pytest.raises(PipelineError, match=r"prompt is 8\.3 ms long, shorter than"):
        lm.encode_prompt(tone(0.5)[:, :200], SR)
    # longer than a codec frame but shorter than two semantic frames
    with pytest.raises(PipelineError, match="shorter than the 40.0 ms"):
        lm.encode_prompt(tone(0.5)[:, :700], SR)
    lm.encode_prompt(tone(0.5)[:, : lm.min_prompt_samples], SR)  # the shortest prompt works
    with pytest.raises(PipelineError, match="silent"):
        lm.encode_prompt(torch.zeros(1, SR), SR)
    nan = tone(0.5)
    nan[0, 100] = float("nan")
    with pytest.raises(PipelineError, match="NaN"):
        lm.encode_prompt(nan, SR)
    with pytest.raises(PipelineError, match="seconds must be a positive"):
        lm.continue_audio(tone(0.5), SR, seconds=0)
    with pytest.raises(PipelineError, match="num_samples"):
        lm.continue_audio(tone(0.5), SR, seconds=0.2, num_samples=0)


def test_long_prompt_is_trimmed_with_a_warning(lm):
    assert lm.context_seconds == pytest.approx(63 / 50)
    with pytest.warns(UserWarning, match="longer than the model context"):
        prompt = lm.encode_prompt(tone(2.0), SR)
    kept = int(lm.context_seconds * SR) // HOP
    assert prompt.codes.shape[-1] == kept and prompt.audio.shape[-1] == kept * HOP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio = lm.continue_audio(tone(2.0), SR, seconds=0.2, seed=0)
    assert audio.shape[-1] == (kept + frames(0.2)) * HOP


def test_unknown_pipeline_name():
    with pytest.raises(PipelineError, match="unknown pipeline 'nosuchpipeline'; available"):
        AudioLM.from_pretrained("nosuchpipeline")
    with pytest.raises(PipelineError, match="pipeline recipe not found"):
        AudioLM.from_pretrained("no/such/recipe.json")


# -- mismatched components fail at load ------------------------------------------------------


@pytest.fixture(scope="module")
def parts(tiny_pipeline, tmp_path_factory) -> Path:
    """The tiny pipeline's folder plus mismatching components beside it."""
    root = tmp_path_factory.mktemp("mismatch")
    for name in ("codec", "semantic", "semantic_stage", "coarse_stage", "fine_stage"):
        (root / name).symlink_to(tiny_pipeline.parent / name)
    save_tokenizer(root / "semantic_k8", vocab=8)
    save_tokenizer(root / "semantic_25hz", frame_rate=25)
    save_stage(root / "fine_c512", stage_config("fine", tokens_info(codebook_size=512)))
    save_stage(root / "fine_q32", stage_config("fine", tokens_info(n_q=32), max_seq_len=256))
    save_stage(root / "fine_q3", stage_config("fine", tokens_info(n_q=3)))
    save_stage(root / "coarse_50hz", stage_config("coarse", tokens_info(acoustic_rate=50.0)))
    return root


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"semantic_tokenizer": "semantic_k8"}, "semantic stage expects 16 semantic tokens, the tokenizer has 8"),
        ({"semantic_tokenizer": "semantic_25hz"}, "expects semantic tokens at 50 Hz, the tokenizer gives 25 Hz"),
        ({"fine_stage": "fine_c512"}, "fine stage expects codebooks of 512, the codec has 1024"),
        ({"fine_stage": "fine_q32"}, "fine stage predicts 32 levels, the codec has only 16"),
        ({"fine_stage": "fine_q3"}, "fine stage predicts 3 levels, the codec decodes 2, 4, 8, 16 levels"),
        ({"coarse_stage": "coarse_50hz"}, "coarse stage expects 50 Hz acoustic frames, the codec gives 75 Hz"),
        (
            {"coarse_stage": "fine_stage"},
            "checkpoint kind is 'lm_fine', expected 'lm_coarse'",
        ),  # a fine checkpoint where a coarse one belongs
    ],
)
def test_mismatch_errors_at_load(parts, overrides, message):
    from audiolm.core.errors import AudiolmError

    recipe = write_recipe(parts, name="bad", **overrides)
    with pytest.raises(AudiolmError, match=message) as info:
        AudioLM.from_pretrained(recipe)
    assert "\n" not in str(info.value)


def test_recipe_errors(tmp_path):
    from audiolm.core.errors import ConfigError

    bad = tmp_path / "r.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_recipe(bad)
    bad.write_text(
        json.dumps(
            {
                "name": "x",
                "codec": "c",
                "semantic_tokenizer": "s",
                "semantic_stage": "a",
                "coarse_stage": "b",
                "fine_stage": "f",
                "sampling": {"medium": {}},
            }
        )
    )
    with pytest.raises((ConfigError, ValueError), match="unknown stage"):
        load_recipe(bad)
    with pytest.raises(PipelineError, match="no pipeline.json"):
        find_recipe(tmp_path)


def test_missing_component_is_named(parts):
    from audiolm.core.errors import AudiolmError

    with pytest.raises(AudiolmError, match="no_such_codec"):
        AudioLM.from_pretrained(write_recipe(parts, name="missing", codec="no_such_codec"))


# -- the command line -------------------------------------------------------------------------


def test_cli_continue_writes_audio(tiny_pipeline, prompt_wav, tmp_path, capsys, lm):
    out = tmp_path / "out.wav"
    code, stdout, err = run_cli(
        capsys, "continue", prompt_wav, "-o", out, "--pipeline", tiny_pipeline, "--seconds", 0.3, "--seed", 4
    )
    assert code == 0, err
    wav, sr = load_audio(out)
    assert sr == SR and wav.shape == (1, (37 + frames(0.3)) * HOP)
    expected = lm.continue_audio(load_audio(prompt_wav)[0], SR, seconds=0.3, seed=4)
    assert torch.allclose(wav, expected[0], atol=2 / 32768)  # 16-bit PCM
    assert f"wrote {out}" in stdout
    # an existing output is never replaced without --overwrite
    before = out.read_bytes()
    code, _, err = run_cli(
        capsys, "continue", prompt_wav, "-o", out, "--pipeline", tiny_pipeline, "--seconds", 0.3, "--seed", 5
    )
    assert code == 2 and "already exists; pass --overwrite" in err and err.count("\n") == 1
    assert out.read_bytes() == before
    code, _, err = run_cli(
        capsys,
        "continue",
        prompt_wav,
        "-o",
        out,
        "--pipeline",
        tiny_pipeline,
        "--seconds",
        0.3,
        "--seed",
        5,
        "--overwrite",
    )
    assert code == 0, err
    assert out.read_bytes() != before


def test_cli_num_samples_plot_and_continuation_only(tiny_pipeline, prompt_wav, tmp_path, capsys):
    out = tmp_path / "many.wav"
    code, _, err = run_cli(
        capsys,
        "continue",
        prompt_wav,
        "-o",
        out,
        "--pipeline",
        tiny_pipeline,
        "--seconds",
        0.2,
        "--seed",
        1,
        "--num-samples",
        2,
        "--plot",
        tmp_path / "spec.png",
        "--continuation-only",
    )
    assert code == 0, err
    assert not out.exists()
    files = [tmp_path / "many-1.wav", tmp_path / "many-2.wav"]
    wavs = [load_audio(f)[0] for f in files]
    assert all(w.shape == (1, frames(0.2) * HOP) for w in wavs)
    assert not torch.equal(wavs[0], wavs[1])
    for png in (tmp_path / "spec-1.png", tmp_path / "spec-2.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # sample 2 of seed 1 is the single sample of seed 2
    code, _, err = run_cli(
        capsys,
        "continue",
        prompt_wav,
        "-o",
        tmp_path / "one.wav",
        "--pipeline",
        tiny_pipeline,
        "--seconds",
        0.2,
        "--seed",
        2,
        "--continuation-only",
    )
    assert code == 0, err
    assert torch.allclose(load_audio(tmp_path / "one.wav")[0], wavs[1], atol=2 / 32768)


def test_cli_prompt_tokens_reuse(tiny_pipeline, prompt_wav, tmp_path, capsys):
    saved = tmp_path / "prompt.safetensors"
    args = ["--pipeline", tiny_pipeline, "--seconds", 0.2, "--seed", 9]
    code, _, err = run_cli(capsys, "continue", prompt_wav, "-o", tmp_path / "a.wav", "--save-prompt", saved, *args)
    assert code == 0, err
    assert saved.is_file()
    code, _, err = run_cli(capsys, "continue", "-o", tmp_path / "b.wav", "--prompt-tokens", saved, *args)
    assert code == 0, err
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    code, _, err = run_cli(capsys, "continue", prompt_wav, "-o", tmp_path / "c.wav", "--prompt-tokens", saved, *args)
    assert code == 2 and "not both" in err


def test_cli_long_prompt_warns(tiny_pipeline, tmp_path, capsys):
    long = tmp_path / "long.wav"
    save_audio(long, tone(2.0), SR)
    code, _, err = run_cli(
        capsys, "continue", long, "-o", tmp_path / "o.wav", "--pipeline", tiny_pipeline, "--seconds", 0.1
    )
    assert code == 0, err
    assert "audiolm: warning: prompt is 2.0 s, longer than the model context (1.3 s)" in err


@pytest.mark.parametrize(
    "case, message",
    [
        ("short", "shorter than the"),
        ("silent", "prompt is silent"),
        ("missing", "no such file"),
        ("pipeline", "unknown pipeline 'nosuch'"),
        ("no-folder", "does not exist"),
        ("file-as-folder", "is not a folder"),
        ("bad-suffix", "output must end in .wav or .flac"),
        ("seconds", "--seconds: must be positive"),
        ("num-samples", "--num-samples must be an integer in [1, 100000], got 0"),
        ("temperature", "--temperature: give one value or three"),
        ("no-prompt", "give a PROMPT audio file or --prompt-tokens"),
    ],
)
def test_cli_errors_are_one_line(case, message, tiny_pipeline, tmp_path, capsys):
    prompt = tmp_path / "p.wav"
    save_audio(prompt, torch.zeros(1, SR) if case == "silent" else tone(0.01 if case == "short" else 0.3), SR)
    (tmp_path / "a_file").write_text("x")
    out = {
        "no-folder": tmp_path / "no" / "such" / "o.wav",
        "file-as-folder": tmp_path / "a_file" / "o.wav",
        "bad-suffix": tmp_path / "o.mp3",
    }.get(case, tmp_path / "o.wav")
    args = [prompt if case != "missing" else tmp_path / "missing.wav", "-o", out]
    args += ["--pipeline", "nosuch" if case == "pipeline" else tiny_pipeline]
    args += {
        "seconds": ["--seconds", 0],
        "num-samples": ["--num-samples", 0],
        "temperature": ["--temperature", "1,2"],
    }.get(case, [])
    if case == "no-prompt":
        args = args[1:]
    code, stdout, err = run_cli(capsys, "continue", *args)
    assert code == 2
    assert err.startswith("audiolm: error: ") and message in err and err.count("\n") == 1, err
    assert stdout == "" and not out.exists()


# -- the shipped default ----------------------------------------------------------------------


def _default_ready() -> bool:
    path = PIPELINES_DIR / "default.json"
    if not path.is_file():
        return False
    try:
        recipe = load_recipe(path)
    except Exception:
        return False
    parts = (recipe.codec, recipe.semantic_tokenizer, recipe.semantic_stage, recipe.coarse_stage, recipe.fine_stage)
    return all((path.parent / p).exists() for p in parts)


@pytest.mark.skipif(not _default_ready(), reason="pipelines/default.json or its checkpoints are not there yet")
def test_shipped_default_continues_one_second():
    lm = AudioLM.from_pretrained()
    hop = lm.codec.hop_length
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a context shorter than 1 s trims the prompt
        prompt = lm.encode_prompt(tone(1.0), SR)
    audio = lm.continue_audio(None, None, seconds=1.0, seed=0, prompt=prompt)
    prompt_frames = prompt.codes.shape[-1]
    assert audio.shape == (1, 1, (prompt_frames + round(lm.codec.frame_rate)) * hop)
    continuation = audio[..., prompt_frames * hop :]
    assert torch.isfinite(audio).all() and float(continuation.abs().max()) > 0


def test_copy_of_a_pipeline_folder_loads(tiny_pipeline, tmp_path):
    """Recipe paths are relative to the recipe: a copied folder is a working pipeline."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_pipeline.parent, copy)
    lm = AudioLM.from_pretrained(copy)  # a directory holding pipeline.json
    assert lm.source == copy / "pipeline.json" and lm.n_q == N_Q


def test_one_object_per_stage_and_public_names(lm):
    """Each loaded stage is one `Stage` (model + config + layout); the decoding names are public."""
    import audiolm
    from audiolm.inference.decode import generate
    from audiolm.inference.pipeline import Continuation
    from audiolm.inference.sampling import SamplingConfig
    from audiolm.models.lm.layouts import CoarseLayout, FineLayout, SemanticLayout
    from audiolm.models.lm.stage import Stage

    expected = {"semantic": SemanticLayout, "coarse": CoarseLayout, "fine": FineLayout}
    for name, stage in lm.stages.items():
        assert isinstance(stage, Stage) and stage.name == name
        assert isinstance(stage.layout, expected[name]) and stage.layout.config is stage.config
        assert stage.device == lm.device and not stage.model.training
    assert audiolm.generate is generate and audiolm.SamplingConfig is SamplingConfig
    assert audiolm.PromptTokens is PromptTokens and audiolm.Continuation is Continuation
    assert isinstance(lm.continue_audio(tone(0.5), SR, seconds=0.1, seed=0), torch.Tensor)
    assert isinstance(lm.generate_continuation(tone(0.5), SR, seconds=0.1, seed=0), Continuation)
