import json

import numpy as np
import pytest
import torch

import audiolm.models.semantic.tokenizer as tokenizer_module
from audiolm.core.checkpoint import save_checkpoint
from audiolm.core.errors import CheckpointError, ConfigError
from audiolm.models.semantic.tokenizer import SemanticTokenizer
from audiolm.training.semantic.pretraining import KIND, W2vBertModel


@pytest.fixture
def ssl_model_dir(tmp_path, make_config):
    torch.manual_seed(0)
    cfg = make_config()
    model = W2vBertModel(cfg)
    return save_checkpoint(tmp_path / "ssl", KIND, cfg, model.state_dict())


def _wav(seconds=1.0, sr=16000, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sr)) / sr
    tone = torch.sin(2 * torch.pi * 220 * t) * torch.linspace(0, 1, len(t))
    return (0.3 * tone + 0.05 * torch.randn(batch, len(t), generator=g)).float()


@pytest.fixture
def tokenizer(ssl_model_dir):
    tok = SemanticTokenizer.from_ssl(ssl_model_dir, layer=2)
    feats = tok.source(_wav(2.0, batch=2))  # [2, 100, 32]
    return tok.fit_kmeans_on(feats.reshape(-1, feats.shape[-1]), k=8, steps=20, progress=False)


def test_encode_shape_and_determinism(tokenizer):
    wav = _wav(1.0, batch=2)
    a = tokenizer.encode(wav, 16000)
    b = tokenizer.encode(wav.clone(), 16000)
    assert a.shape == (2, 50) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert 0 <= int(a.min()) and int(a.max()) < tokenizer.vocab_size == 8
    assert tokenizer.frame_rate == 50 and tokenizer.sample_rate == 16000
    assert torch.equal(tokenizer.encode(wav[0], 16000), a[:1])  # [N] input
    assert torch.equal(tokenizer.encode(wav[:, None].repeat(1, 2, 1), 16000), a)  # [B, C, N]


def test_other_sample_rates_are_resampled(tokenizer):
    from audiolm.core.audio import resample

    wav24 = _wav(1.0, sr=24000)
    tokens = tokenizer.encode(wav24, 24000)
    assert tokens.shape == (1, 50)
    assert torch.equal(tokens, tokenizer.encode(resample(wav24, 24000, 16000), 16000))
    assert tokenizer.encode(_wav(1.0, sr=8000), 8000).shape == (1, 50)
    assert tokenizer.encode(_wav(1.0, sr=44100).numpy(), 44100).shape == (1, 50)


def test_deduplicate():
    tokens = torch.tensor([[1, 1, 2, 2, 2, 3, 1], [4, 4, 4, 4, 4, 4, 4]])
    out = SemanticTokenizer.deduplicate(tokens)
    assert out.tolist() == [[1, 2, 3, 1], [4, -1, -1, -1]]


def test_save_and_from_pretrained_round_trip(tokenizer, tmp_path):
    wav = _wav(1.5)
    out = tokenizer.save(tmp_path / "tok")
    loaded = SemanticTokenizer.from_pretrained(out)
    assert loaded.vocab_size == 8 and loaded.layer == 2 and loaded.frame_rate == 50
    assert torch.equal(loaded.encode(wav, 16000), tokenizer.encode(wav, 16000))
    meta = json.loads((out / "config.json").read_text())
    assert meta["kind"] == "semantic_tokenizer" and meta["config"]["layer"] == 2


def test_truncated_layers_match_full_encoder(ssl_model_dir, tokenizer):
    full = SemanticTokenizer.from_ssl(ssl_model_dir, layer=2)
    assert len(full.source.encoder.layers) == 2
    one = SemanticTokenizer.from_ssl(ssl_model_dir, layer=1)
    assert len(one.source.encoder.layers) == 1
    wav = _wav(1.0)
    deep = full.source.encoder(wav).hidden_states[1]
    assert torch.allclose(one.source(wav), deep, atol=1e-5)


def test_errors(tmp_path, ssl_model_dir, monkeypatch):
    monkeypatch.setattr(tokenizer_module, "default_checkpoint_dir", lambda: tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no shipped semantic tokenizer"):
        SemanticTokenizer.from_pretrained()
    with pytest.raises(CheckpointError):
        SemanticTokenizer.from_pretrained(tmp_path / "missing")
    tok = SemanticTokenizer.from_ssl(ssl_model_dir, layer=1)
    with pytest.raises(ConfigError, match="k-means"):
        tok.encode(_wav(), 16000)
    with pytest.raises(CheckpointError, match="shape"):
        SemanticTokenizer.from_ssl(ssl_model_dir, layer=1, kmeans=torch.randn(4, 7))
    with pytest.raises(ConfigError):
        SemanticTokenizer.from_ssl(ssl_model_dir, layer=5)


def test_kmeans_from_saved_files(ssl_model_dir, tmp_path):
    from safetensors.torch import save_file

    centroids = torch.randn(5, 32)
    save_file({"centroids": centroids}, str(tmp_path / "c.safetensors"))
    np.save(tmp_path / "c.npy", centroids.numpy())
    a = SemanticTokenizer.from_ssl(ssl_model_dir, 1, kmeans=tmp_path / "c.safetensors")
    b = SemanticTokenizer.from_ssl(ssl_model_dir, 1, kmeans=str(tmp_path / "c.npy"))
    wav = _wav()
    assert a.vocab_size == 5 and torch.equal(a.encode(wav, 16000), b.encode(wav, 16000))


def test_mfcc_tokenizer(tiny_corpus, tmp_path):
    tok = SemanticTokenizer.mfcc(25).fit_kmeans(tiny_corpus, k=6, steps=10, progress=False)
    assert tok.encode(_wav(2.0), 16000).shape == (1, 50)
    loaded = SemanticTokenizer.from_pretrained(tok.save(tmp_path / "mfcc"))
    assert torch.equal(loaded.encode(_wav(2.0), 16000), tok.encode(_wav(2.0), 16000))


def test_cli_train_kmeans(tiny_corpus, tmp_path, make_config):
    from audiolm.cli.app import main

    torch.manual_seed(0)
    cfg = make_config()
    run_model = save_checkpoint(
        tmp_path / "run" / "model",
        KIND,
        cfg,
        W2vBertModel(cfg).state_dict(),
        extra_json={"ssl_data.json": {"data": str(tiny_corpus)}},
    )
    out = tmp_path / "tok"
    # --data defaults to the corpus the SSL run recorded
    assert (
        main(
            [
                "train",
                "kmeans",
                "--ssl",
                str(run_model.parent),
                "--layer",
                "1",
                "--k",
                "6",
                "--out",
                str(out),
                "--steps",
                "10",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    tok = SemanticTokenizer.from_pretrained(out)
    assert tok.vocab_size == 6 and tok.layer == 1
    assert main(["train", "kmeans", "--ssl", str(run_model), "--layer", "1", "--k", "6", "--out", str(out)]) == 2


@pytest.mark.skipif(
    not (tokenizer_module.default_checkpoint_dir() / "config.json").exists(), reason="no shipped tokenizer"
)
def test_shipped_tokenizer_is_our_encoder_and_deterministic():
    """checkpoints/semantic: our SSL encoder's layer 3 + k-means (K=256, 25 Hz), the tokens the
    shipped stages were trained on; the same audio gives the same tokens, at any input rate."""
    import soundfile as sf

    tok = SemanticTokenizer.from_pretrained()
    assert (tok.config.source, tok.config.layer, tok.vocab_size, tok.frame_rate) == ("ssl", 3, 256, 25)
    prompt = tokenizer_module.default_checkpoint_dir().parent / "prompts" / "speech_prompt.wav"
    data, sr = sf.read(prompt, dtype="float32")
    wav = torch.from_numpy(data).reshape(1, -1)
    a, b = tok.encode(wav, sr), tok.encode(wav, sr)
    assert torch.equal(a, b) and a.dtype == torch.long
    assert abs(a.shape[1] - wav.shape[1] / sr * 25) <= 2 and 0 <= int(a.min()) and int(a.max()) < 256
    assert len(torch.unique(a)) > 10  # speech, not one cluster
