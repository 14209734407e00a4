"""Fuzzing the command line (issue #16): hypothesis builds argument vectors for `continue`,
`codec`, `wavenet generate`, `tokenize`, `corpus build` and `train` over a world of good and
bad inputs (audio headers, dtypes, lengths, NaN; checkpoint configs; prompt-token files;
output paths that exist, are folders, sit in a file or in /proc), runs the CLI's `main`
in-process, and asserts for every vector:

- the exit code is 0 or 2, never an exception (a traceback);
- exit 2 prints exactly one `audiolm: error:` line;
- no file that existed before changed (unless it is an output named with --overwrite);
- nothing is left behind: no claim files, no temp files.

Fast by default (FUZZ_EXAMPLES per test, a few hundred cases in all); thousands with
`pytest tests/cli/test_fuzz_cli.py --hypothesis-profile=slow` (or AUDIOLM_FUZZ_EXAMPLES=N).
Every invocation is counted in `FUZZ_LOG` when AUDIOLM_FUZZ_LOG names a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiolm.cli.app import main
from audiolm.core.audio import save_audio
from audiolm.core.checkpoint import save_tensors
from tests.helpers import build_tiny_pipeline, random_wavenet, save_tiny_codec, tiny_wavenet_config, tone

_loaded = settings.default.max_examples  # the active hypothesis profile's
FUZZ_EXAMPLES = int(os.environ.get("AUDIOLM_FUZZ_EXAMPLES", "0")) or (_loaded if _loaded > 100 else 35)
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("AUDIOLM_FUZZ_RANDOM") is None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the world: inputs good and bad, built once ------------------------------------------------


def _wav_header(rate: int, n_bytes: int) -> bytes:
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
    fmt += (rate * 2).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + (16).to_bytes(4, "little") + fmt + b"data" + n_bytes.to_bytes(4, "little")
    return b"RIFF" + (len(body) + n_bytes).to_bytes(4, "little") + body


def _mutated(src: Path, dst: Path, config_path: str, change) -> str:
    shutil.copytree(src, dst)
    path = dst / config_path
    header = json.loads(path.read_text())
    change(header)
    path.write_text(json.dumps(header))
    return str(dst)


def _drop(keys):
    def change(header):
        node = header
        *parents, last = keys.split(".")
        for key in parents:
            node = node[key]
        node.pop(last, None)

    return change


def _set(keys, value):
    def change(header):
        node = header
        *parents, last = keys.split(".")
        for key in parents:
            node = node[key]
        node[last] = value

    return change


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_world")
    recipe = build_tiny_pipeline(root / "pipe")
    pipe = recipe.parent
    audio = root / "audio"
    audio.mkdir()
    save_audio(audio / "good.wav", tone(0.4), 24000)
    save_audio(audio / "stereo16k.wav", torch.cat([tone(0.5, 16000), tone(0.5, 16000, 330.0)]), 16000)
    sf.write(audio / "int16.wav", (tone(0.4)[0].numpy() * 20000).astype(np.int16), 24000, subtype="PCM_16")
    nan = tone(0.4)[0].numpy().copy()
    nan[100] = np.nan
    sf.write(audio / "nan.wav", nan, 24000, subtype="FLOAT")
    sf.write(audio / "loud.wav", tone(0.4)[0].numpy() * 50, 24000, subtype="FLOAT")
    save_audio(audio / "silent.wav", torch.zeros(1, 9600), 24000)
    save_audio(audio / "tiny.wav", tone(0.004), 24000)
    (audio / "header_only.wav").write_bytes(_wav_header(24000, 1_000_000))
    whole = (audio / "good.wav").read_bytes()
    (audio / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    (audio / "three.mp3").write_bytes(b"ID3")
    (audio / "empty.wav").write_bytes(b"")
    (audio / "junk.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    (audio / "folder.wav").mkdir()
    os.symlink("/dev/zero", audio / "zero.wav")
    os.symlink(audio / "nowhere.wav", audio / "dangling.wav")

    tokens = root / "tokens"
    tokens.mkdir()
    rng = torch.Generator().manual_seed(0)
    good = {
        "audio": tone(0.4),
        "semantic": torch.randint(0, 16, (1, 20), generator=rng),
        "codes": torch.randint(0, 1024, (1, 16, 30), generator=rng),
    }
    save_tensors(tokens / "good.st", good)
    save_tensors(tokens / "negative.st", good | {"semantic": -good["semantic"] - 1})
    save_tensors(tokens / "batch2.st", good | {"codes": good["codes"].expand(2, -1, -1).contiguous()})
    save_tensors(tokens / "float.st", good | {"codes": good["codes"].float() + 0.5})
    save_tensors(tokens / "big_ids.st", good | {"codes": good["codes"] + 5000})
    save_tensors(tokens / "nan_audio.st", good | {"audio": torch.full((1, 100), float("nan"))})
    save_tensors(tokens / "missing.st", {"codes": good["codes"]})
    save_tensors(tokens / "codes_q8.st", {"codes": good["codes"][:, :8].contiguous()})
    (tokens / "garbage.st").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")

    codecs = root / "codecs"
    codecs.mkdir()
    tiny_codec = str(save_tiny_codec(codecs / "tiny"))
    bad_codecs = [
        _mutated(Path(tiny_codec), codecs / "rate0", "config.json", _set("config.sample_rate", 0)),
        _mutated(Path(tiny_codec), codecs / "padbogus", "config.json", _set("config.pad_mode", "bogus")),
        _mutated(Path(tiny_codec), codecs / "huge", "config.json", _set("config.hidden_size", 1e9)),
        _mutated(Path(tiny_codec), codecs / "nokey", "config.json", _drop("config.num_lstm_layers")),
        _mutated(Path(tiny_codec), codecs / "version", "config.json", _set("format_version", "1")),
    ]
    pipes = root / "pipes"
    pipes.mkdir()
    bad_pipes = [
        _mutated(pipe, pipes / "nocausal", "fine_stage/config.json", _drop("config.model.causal")),
        _mutated(pipe, pipes / "nostyle", "fine_stage/config.json", _drop("config.fine_style")),
        _mutated(pipe, pipes / "nowindow", "coarse_stage/config.json", _drop("config.window_frames")),
        _mutated(pipe, pipes / "nq", "fine_stage/config.json", _set("config.n_q", 16)),
        _mutated(pipe, pipes / "topp", "pipeline.json", _set("sampling.coarse", {"top_p": 2})),
        _mutated(pipe, pipes / "rate0", "codec/config.json", _set("config.sample_rate", 0)),
    ]
    wavenets = root / "wavenets"
    wavenet = str(random_wavenet(tiny_wavenet_config()).save_pretrained(wavenets / "tiny"))
    (root / "a_file").write_text("not a folder")
    return dict(
        root=root,
        recipe=str(recipe),
        audio=audio,
        tokens=tokens,
        codec=tiny_codec,
        bad_codecs=bad_codecs,
        bad_pipes=bad_pipes,
        wavenet=wavenet,
    )


# -- strategies ----------------------------------------------------------------------------------

NUMBERS = ["0", "1", "-1", "0.5", "nan", "inf", "-inf", "1e9", "1e300", "abc", "", "4294967296", "1.5"]


def _files(kind: str):
    names = {
        "audio": [
            "good.wav",
            "stereo16k.wav",
            "int16.wav",
            "nan.wav",
            "loud.wav",
            "silent.wav",
            "tiny.wav",
            "header_only.wav",
            "truncated.wav",
            "three.mp3",
            "empty.wav",
            "junk.wav",
            "folder.wav",
            "zero.wav",
            "dangling.wav",
            "missing.wav",
        ],
        "tokens": [
            "good.st",
            "negative.st",
            "batch2.st",
            "float.st",
            "big_ids.st",
            "nan_audio.st",
            "missing.st",
            "garbage.st",
            "absent.st",
        ],
    }[kind]
    return st.sampled_from(names)


OUTPUTS = st.sampled_from(
    ["new.wav"] * 8
    + ["new.flac", "victim.wav", "victim", "sub/x.wav", "afile/x.wav", "x.mp3", "/proc/x.wav", ".", "folder.wav"]
)


def _out(name: str, outdir: Path) -> str:
    return name if name.startswith("/") else str(outdir / name)


def _flag(flag: str, values, good=None):
    """Mostly absent, often a good value (`good`), sometimes any of `values`."""
    options = [st.just([])] * 4 + [st.builds(lambda v: [flag, v], values)]
    if good is not None:
        options += [st.builds(lambda v: [flag, v], good)] * 3
    return st.one_of(*options)


@st.composite
def continue_argv(draw, world, outdir):
    argv = ["continue"]
    if draw(st.integers(0, 4)) == 0:
        argv += ["--prompt-tokens", str(world["tokens"] / draw(_files("tokens")))]
    else:
        argv.append(str(world["audio"] / draw(st.sampled_from(["good.wav"] * 6 + [draw(_files("audio"))]))))
    argv += ["-o", _out(draw(OUTPUTS), outdir)]
    pipeline = draw(
        st.sampled_from([world["recipe"]] * 14 + world["bad_pipes"] + ["nosuch", str(world["root"] / "a_file")])
    )
    argv += ["--pipeline", pipeline]
    argv += ["--seconds", draw(st.sampled_from(["0.1", "0.2"] * 6 + NUMBERS))]
    argv += draw(
        _flag(
            "--seed",
            st.sampled_from(["-1", "4294967296", "18446744073709551616", "x"]),
            st.sampled_from(["0", "7", "4294967294"]),
        )
    )
    argv += draw(_flag("--num-samples", st.sampled_from(["0", "-3", "100001", "1000"]), st.sampled_from(["1", "2"])))
    argv += draw(
        _flag(
            "--temperature", st.sampled_from(["1,2", "nan", "-1", "inf", "x"]), st.sampled_from(["0", "0.7", "1,1,1"])
        )
    )
    argv += draw(_flag("--top-k", st.sampled_from(["-5", "1.5", "1e30"]), st.sampled_from(["0", "5", "5,5,5"])))
    argv += draw(_flag("--top-p", st.sampled_from(["0", "2", "nan"]), st.sampled_from(["1", "0.9"])))
    argv += draw(
        _flag(
            "--plot",
            st.sampled_from(["plot", "plot.png", "victim", "x.wav", "victim.png", "afile/p.png"]).map(
                lambda name: _out(name, outdir)
            ),
        )
    )
    argv += draw(
        _flag(
            "--save-prompt",
            st.sampled_from(["p.st", "new.wav", "/proc/p.st", "victim.wav"]).map(lambda name: _out(name, outdir)),
        )
    )
    argv += draw(_flag("--device", st.sampled_from(["tpu", "cuda:7"]), st.sampled_from(["cpu", "auto"])))
    argv += draw(_flag("--max-memory", st.sampled_from(["nan", "0", "1e-9"]), st.just("1")))
    for flag in ("--overwrite", "--continuation-only"):
        if draw(st.integers(0, 3)) == 0:
            argv.append(flag)
    return argv


@st.composite
def codec_argv(draw, world, outdir):
    argv = [
        "codec",
        str(world["audio"] / draw(st.sampled_from(["good.wav"] * 4 + [draw(_files("audio"))]))),
        _out(draw(OUTPUTS), outdir),
    ]
    argv += ["--codec", draw(st.sampled_from([world["codec"]] * 12 + world["bad_codecs"] + ["nosuch"]))]
    argv += draw(
        _flag("--kbps", st.sampled_from(["5", "nan", "-1", "0", "1e300"]), st.sampled_from(["1.5", "3", "12"]))
    )
    argv += draw(
        _flag(
            "--save-codes",
            st.sampled_from(["c.st", "new.wav", "/proc/c.st", "victim.wav", "afile/c.st"]).map(
                lambda name: _out(name, outdir)
            ),
        )
    )
    argv += draw(_flag("--device", st.just("tpu"), st.just("cpu")))
    if draw(st.integers(0, 3)) == 0:
        argv.append("--overwrite")
    return argv


@st.composite
def wavenet_argv(draw, world, outdir):
    argv = [
        "wavenet",
        "generate",
        draw(st.sampled_from([world["wavenet"]] * 8 + ["nosuch", world["codec"]])),
        "-o",
        _out(draw(OUTPUTS), outdir),
    ]
    argv += ["--samples", draw(st.sampled_from(["10", "50"] * 4 + ["0", "-1", "1e11", "100000000000", "abc"]))]
    argv += draw(_flag("--seed", st.sampled_from(["-1", "4294967296"]), st.just("3")))
    argv += draw(_flag("--temperature", st.sampled_from(["nan", "-1", "inf"]), st.sampled_from(["0", "1"])))
    argv += draw(_flag("--save-every", st.just("-1"), st.just("5")))
    argv += draw(
        _flag(
            "--prompt",
            _files("audio").map(lambda n: str(world["audio"] / n)),
            st.just(str(world["audio"] / "good.wav")),
        )
    )
    argv += draw(_flag("--gc-id", st.sampled_from(["0", "99", "x"])))
    argv += draw(_flag("--codes", _files("tokens").map(lambda n: str(world["tokens"] / n))))
    if draw(st.integers(0, 3)) == 0:
        argv.append("--overwrite")
    return argv


@st.composite
def misc_argv(draw, world, outdir):
    """Commands whose valid runs are long (training, corpus building, tokenizing): fuzzed over
    bad arguments, which must be refused before any work."""
    kind = draw(st.sampled_from(["train", "corpus", "tokenize"]))
    if kind == "train":
        argv = ["train", draw(st.sampled_from(["coarse", "codec", "wavenet", "ssl"]))]
        argv += [
            "--out",
            _out(draw(st.sampled_from(["afile", "victim.wav", "/proc/run"])), outdir)
            if draw(st.booleans())
            else str(world["root"] / "a_file"),
        ]
        argv += ["--data", str(world["root"] / "nocorpus")] if argv[1] != "coarse" else ["--tokens", str(outdir)]
        argv += draw(_flag("--lr", st.sampled_from(["nan", "-1", "0", "inf"])))
        argv += draw(_flag("--steps", st.sampled_from(["0", "-5", "abc"])))
        argv += draw(_flag("--seed", st.sampled_from(["-1", "4294967296"])))
        if draw(st.booleans()):
            argv.append("--resume")
    elif kind == "corpus":
        argv = ["corpus", "build", _out(draw(st.sampled_from(["victim.wav", "afile/c", "/proc/c"])), outdir)]
        argv += draw(_flag("--speech-minutes", st.sampled_from(["nan", "-1", "inf", "1e300"])))
        argv += ["--music-minutes", draw(st.sampled_from(["nan", "-1", "inf", "1e300", "0"]))]
    else:
        argv = ["tokenize", str(world["root"] / "nocorpus"), _out(draw(st.sampled_from(["victim.wav", "t"])), outdir)]
        argv += draw(_flag("--kbps", st.sampled_from(["nan", "-1", "0"])))
        argv += draw(_flag("--shard-size", st.sampled_from(["0", "-1"])))
    return argv


# -- the property ----------------------------------------------------------------------------------


def _snapshot(*folders: Path) -> dict[str, str]:
    files = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _fresh_outdir() -> Path:
    outdir = Path(tempfile.mkdtemp(prefix="fuzz_out_"))
    save_audio(outdir / "victim.wav", tone(0.1, seed=1), 24000)
    (outdir / "victim.png").write_bytes(b"\x89PNG precious")
    (outdir / "afile").write_text("a file, not a folder")
    (outdir / "folder.wav").mkdir()
    return outdir


def check_invocation(argv: list[str], world: dict, outdir: Path, capsys) -> int:
    before = _snapshot(outdir, world["root"])
    capsys.readouterr()
    code = main(argv)  # any exception fails the test with its traceback
    out, err = capsys.readouterr()
    if os.environ.get("AUDIOLM_FUZZ_LOG"):
        with open(os.environ["AUDIOLM_FUZZ_LOG"], "a") as log:
            log.write(json.dumps({"argv": argv, "code": code}) + "\n")
    assert code in (0, 2), (argv, code, err[-2000:])
    assert "Traceback" not in err, (argv, err[-2000:])
    if code == 2:
        assert err.count("audiolm: error:") == 1, (argv, err[-2000:])
    after = _snapshot(outdir, world["root"])
    # with --overwrite an output may change: a named path, or what it really writes (OUT-1.wav
    # for --num-samples, NAME.png for a --plot without a suffix)
    stems = [str(Path(a).with_suffix("")) for a in argv if "/" in a] if "--overwrite" in argv else []
    changed = [
        p
        for p, digest in before.items()
        if after.get(p) != digest and not any(str(Path(p).with_suffix("")).startswith(stem) for stem in stems)
    ]
    assert not changed, (argv, code, changed, err[-1000:])
    leftovers = [p.name for p in outdir.rglob(".*")]
    assert not leftovers, (argv, code, leftovers)
    return code


@FUZZ
@given(data=st.data())
def test_fuzz_continue(world, capsys, data):
    outdir = _fresh_outdir()
    try:
        check_invocation(data.draw(continue_argv(world, outdir)), world, outdir, capsys)
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


@FUZZ
@given(data=st.data())
def test_fuzz_codec(world, capsys, data):
    outdir = _fresh_outdir()
    try:
        check_invocation(data.draw(codec_argv(world, outdir)), world, outdir, capsys)
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


@FUZZ
@given(data=st.data())
def test_fuzz_wavenet_generate(world, capsys, data):
    outdir = _fresh_outdir()
    try:
        check_invocation(data.draw(wavenet_argv(world, outdir)), world, outdir, capsys)
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


@FUZZ
@given(data=st.data())
def test_fuzz_long_commands_refuse_bad_arguments(world, capsys, data):
    outdir = _fresh_outdir()
    try:
        assert check_invocation(data.draw(misc_argv(world, outdir)), world, outdir, capsys) == 2
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


def test_the_world_reaches_both_outcomes(world, capsys):
    """A valid vector of each command really runs (exit 0) and writes its outputs."""
    outdir = _fresh_outdir()
    try:
        assert (
            check_invocation(
                [
                    "continue",
                    str(world["audio"] / "good.wav"),
                    "-o",
                    str(outdir / "o.wav"),
                    "--pipeline",
                    world["recipe"],
                    "--seconds",
                    "0.1",
                    "--num-samples",
                    "2",
                    "--plot",
                    str(outdir / "p"),
                    "--save-prompt",
                    str(outdir / "p.st"),
                ],
                world,
                outdir,
                capsys,
            )
            == 0
        )
        assert {"o-1.wav", "o-2.wav", "p-1.png", "p-2.png", "p.st"} <= {p.name for p in outdir.iterdir()}
        assert (
            check_invocation(
                [
                    "codec",
                    str(world["audio"] / "stereo16k.wav"),
                    str(outdir / "c.wav"),
                    "--codec",
                    world["codec"],
                    "--save-codes",
                    str(outdir / "c.st"),
                ],
                world,
                outdir,
                capsys,
            )
            == 0
        )
        assert (
            check_invocation(
                ["wavenet", "generate", world["wavenet"], "--samples", "20", "-o", str(outdir / "w.wav")],
                world,
                outdir,
                capsys,
            )
            == 0
        )
        assert {"c.wav", "c.st", "w.wav"} <= {p.name for p in outdir.iterdir()}
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
