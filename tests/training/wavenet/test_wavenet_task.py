"""Training data, config settlement against the data, and training through the shared Trainer."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolm.core.errors import ConfigError
from audiolm.models.wavenet.model import WaveNet
from audiolm.training.task import ItemKey
from audiolm.training.wavenet.task import WaveNetTask
from tests.helpers import FakeCodec, tiny_wavenet_config


def _codec() -> FakeCodec:
    """8 kHz, hop 80 (100 Hz), 3 levels of 32."""
    return FakeCodec(sample_rate=8000, hop=80, codebook_size=32, n_q=3)


def _folder(tmp_path, speakers=("alice", "bob"), seconds=0.5, rate=8000):
    root = tmp_path / "audio"
    for i, spk in enumerate(speakers):
        (root / spk / "nested").mkdir(parents=True)
        t = np.arange(int(seconds * rate)) / rate
        sf.write(root / spk / f"{spk}.wav", 0.5 * np.sin(2 * np.pi * (200 + 100 * i) * t), rate)
        sf.write(root / spk / "nested" / f"{spk}2.flac", 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t), rate)
    return root


def test_folder_crops_labels_and_determinism(tmp_path):
    root = _folder(tmp_path)
    task = WaveNetTask(tiny_wavenet_config(), root, gc=True, progress=False)
    cfg = task.model_config()
    assert cfg.gc_cardinality == 2 and cfg.gc_labels == ["alice", "bob"]
    data = task.train_dataset()
    assert len(data.clips) == 4 and len(data) == 4 * 4000 // 64
    a, b = data[ItemKey(0, 123)], data[ItemKey(5, 123)]
    assert torch.equal(a["x"], b["x"]) and a["x"].shape == (64,) and a["x"].dtype == torch.long
    assert int(a["gc"]) in (0, 1)
    assert not torch.equal(a["x"], data[ItemKey(0, 124)]["x"])
    assert task.valid_dataset() is None  # a plain folder has no valid split
    batch = task.collate([data[ItemKey(i, i)] for i in range(3)])
    out = task.training_step(task.parts(), batch, 0)
    assert out.losses["model"].requires_grad and 0 <= out.metrics["accuracy"] <= 1


def test_corpus_gc_labels_come_from_the_train_split(tiny_corpus):
    task = WaveNetTask(tiny_wavenet_config(sample_rate=8000, crop_samples=256), tiny_corpus, gc=True, progress=False)
    from audiolm.core.corpus import read_manifest

    train_labels = sorted({i.speaker for i in read_manifest(tiny_corpus, split="train")})
    assert task.model_config().gc_labels == train_labels
    valid = task.valid_dataset()  # only valid items whose voice / instrument the model knows
    assert valid is not None and all(c.label in train_labels for c in valid.clips)


def test_mismatched_gc_cardinality_is_a_clear_error(tmp_path):
    root = _folder(tmp_path, speakers=("a", "b", "c"))
    with pytest.raises(ConfigError, match="gc_cardinality=2 but .* holds 3 labels"):
        WaveNetTask(tiny_wavenet_config(gc_cardinality=2), root, gc=True, progress=False)
    with pytest.raises(ConfigError, match="--gc"):
        WaveNetTask(tiny_wavenet_config(gc_cardinality=3), root, gc=False, progress=False)
    flat = tmp_path / "flat"
    flat.mkdir()
    sf.write(flat / "x.wav", np.zeros(4000), 8000)
    with pytest.raises(ConfigError, match="label per file"):
        WaveNetTask(tiny_wavenet_config(), flat, gc=True, progress=False)
    with pytest.raises(ConfigError, match="at least crop_samples"):
        WaveNetTask(tiny_wavenet_config(crop_samples=8000), flat, progress=False)


def test_local_conditioning_codes_are_encoded_once_per_file(tmp_path):
    root = _folder(tmp_path)
    codec = _codec()
    task = WaveNetTask(tiny_wavenet_config(), root, codec=codec, progress=False)
    cfg = task.model_config()
    assert (cfg.lc_n_q, cfg.lc_codebook_size, cfg.lc_hop) == (3, 32, 80)
    assert cfg.crop_samples == 80  # 64 rounded up to whole codec frames
    assert codec.calls == 4
    data = task.train_dataset()
    for i in range(20):
        item = data[ItemKey(i, i)]
        assert item["codes"].shape == (3, 1)
    assert codec.calls == 4  # crops reuse the cached codes
    batch = task.collate([data[ItemKey(i, i)] for i in range(2)])
    assert torch.isfinite(task.training_step(task.parts(), batch, 0).losses["model"])


def test_codes_from_a_different_codec_are_a_clear_error(tmp_path):
    root = _folder(tmp_path)
    other = _codec()
    other.codebook_size = 1024
    with pytest.raises(ConfigError, match="different codec"):
        WaveNetTask(
            tiny_wavenet_config(lc_n_q=3, lc_codebook_size=32, lc_hop=80, crop_samples=80),
            root,
            codec=other,
            progress=False,
        )
    with pytest.raises(ConfigError, match="--lc-codec"):
        WaveNetTask(
            tiny_wavenet_config(lc_n_q=3, lc_codebook_size=32, lc_hop=80, crop_samples=80), root, progress=False
        )
    wrong_rate = _codec()
    wrong_rate.sample_rate = 24000
    with pytest.raises(ConfigError, match="24000 Hz"):
        WaveNetTask(tiny_wavenet_config(), root, codec=wrong_rate, progress=False)


def test_training_through_the_trainer_lowers_the_loss(tmp_path):
    from audiolm.training.trainer import TrainConfig, Trainer

    root = _folder(tmp_path)
    torch.manual_seed(0)
    task = WaveNetTask(tiny_wavenet_config(crop_samples=128), root, gc=True, progress=False)
    config = TrainConfig(
        steps=30, batch_size=4, lr=1e-2, warmup_steps=2, valid_every=100, save_every=15, log_every=1, device="cpu"
    )
    exported = Trainer(task, config, tmp_path / "run", progress=False).fit()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss/model"] for r in log if "loss/model" in r]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5]), losses
    model = WaveNet.from_pretrained(tmp_path / "run")  # the run directory resolves to RUN/model
    assert model.config.gc_labels == ["alice", "bob"] and exported.name == "model"
    assert model.generate(20, gc=1).shape == (1, 20)


def test_vocoder_code_embeddings_start_from_the_codec_codebooks(tmp_path):
    root = _folder(tmp_path)
    codec = _codec()  # with RVQ codebooks [32, 8] per level, as Codec.codebooks gives
    task = WaveNetTask(tiny_wavenet_config(), root, codec=codec, progress=False)
    cond = task.model.conditioning
    cfg = task.model_config()
    rows = cond.lc_embedding.weight.detach().view(cfg.lc_n_q, cfg.lc_codebook_size, cfg.lc_channels)
    books = torch.stack(codec.codebooks(cfg.lc_n_q))  # [Q, K, D]
    # every level's rows are its codebook through one shared linear map: solve it from level 0
    # and it must reproduce the other levels (a random init would not)
    solution = torch.linalg.lstsq(books.reshape(-1, 8), rows.reshape(-1, cfg.lc_channels)).solution
    assert torch.allclose(books @ solution, rows, atol=1e-4)
    # unit variance per channel for a frame's summed embedding
    assert abs(float(rows.var(dim=1).sum(dim=0).mean()) - 1.0) < 1e-3
    # equal codes -> equal embeddings; the model still trains
    data = task.train_dataset()
    batch = task.collate([data[ItemKey(i, i)] for i in range(2)])
    assert torch.isfinite(task.training_step(task.parts(), batch, 0).losses["model"])
    # opting out keeps the random rows
    plain = WaveNetTask(tiny_wavenet_config(), root, codec=codec, progress=False, lc_init_from_codec=False)
    rows_plain = plain.model.conditioning.lc_embedding.weight.detach().view_as(rows)
    fit = torch.linalg.lstsq(books.reshape(-1, 8), rows_plain.reshape(-1, cfg.lc_channels)).solution
    assert not torch.allclose(books @ fit, rows_plain, atol=1e-2)


def test_real_codec_exposes_its_codebooks(tmp_path):
    from audiolm.models.codec.codec import Codec

    codec = Codec.from_pretrained()
    books = codec.codebooks(4)
    assert len(books) == 4 and all(b.shape[0] == codec.codebook_size for b in books)
    codes = torch.tensor([[[3]], [[5]], [[7]], [[9]]]).view(1, 4, 1)
    decoded = codec.model.quantizer.decode(codes)[0, :, 0]
    if codec.config.pitch_codebook:
        from audiolm.models.codec.pitch import codes_to_pitch

        # level 0 is the pitch: its table holds log2(F0 / 100 Hz) and voicing, and the decoded
        # latent carries that F0 (in STFT bins) in channel 0 before the RVQ levels' sum
        f0 = float(
            codes_to_pitch(torch.tensor(3), codec.codebook_size, codec.config.pitch_fmin, codec.config.pitch_fmax)
        )
        assert abs(100 * 2 ** float(books[0][3, 0]) - f0) < 1e-3 * f0 and float(books[0][3, 1]) == 1.0
        assert float(books[0][0].abs().max()) == 0.0  # code 0: unvoiced
        assert abs(float(decoded[0]) - f0 * codec.config.n_fft / codec.sample_rate) < 1e-3 * float(decoded[0])
        decoded, first = decoded[1:], 1
    else:
        first = 0
    latent = sum(books[q][codes[0, q, 0]] for q in range(first, 4))
    assert torch.allclose(decoded, latent, atol=1e-4)
