"""Training data streams from disk: crops equal the in-memory crops, memory stays bounded."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolm.models.semantic.kmeans import FrameReservoir
from audiolm.training.data.crops import AudioCrops, read_segment
from audiolm.training.task import ItemKey


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Files at several rates and channel counts (the corpus is 24 kHz mono; imports may not be)."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("mixed")
    files = []
    for i, (rate, channels, seconds) in enumerate(
        [(24000, 1, 1.3), (22050, 1, 0.7), (48000, 2, 2.1), (16000, 1, 0.2), (44100, 1, 1.0), (24000, 2, 0.9)]
    ):
        t = np.arange(int(rate * seconds)) / rate
        x = 0.4 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.05 * rng.standard_normal(len(t))
        data = np.stack([x, 0.5 * x], axis=1) if channels == 2 else x
        files.append(folder / f"f{i}.{'flac' if i % 2 else 'wav'}")
        sf.write(files[-1], data.astype(np.float32), rate)
    return files


@pytest.mark.parametrize("sample_rate", [24000, 16000])
@pytest.mark.parametrize("random", [True, False])
def test_streaming_crops_equal_in_memory_crops(mixed_files: list[Path], sample_rate: int, random: bool) -> None:
    streamed = AudioCrops(mixed_files, sample_rate, 2000, random=random)
    memory = AudioCrops(mixed_files, sample_rate, 2000, random=random, in_memory=True)
    assert len(streamed) == len(memory)
    for i in range(120):
        key = ItemKey(i, 1000 + 7 * i)
        a, len_a, seed_a = streamed.crop(key)
        b, len_b, seed_b = memory.crop(key)
        assert (len_a, seed_a) == (len_b, seed_b)
        # equal when the file's rate is the crops' rate; within 2 LSB of 16 bits when resampled
        assert torch.allclose(a, b, atol=2 / 32767, rtol=0), float((a - b).abs().max() * 32767)
    assert streamed._audio is None  # nothing was decoded whole


def test_read_segment_matches_the_whole_file(mixed_files: list[Path]) -> None:
    from audiolm.core.audio import load_audio

    for path in mixed_files:
        rate = sf.info(str(path)).samplerate
        whole = load_audio(path, sample_rate=16000, mono=True)[0][0].numpy()
        for start, count in ((0, 500), (len(whole) // 3, 1000), (max(0, len(whole) - 700), 1000)):
            part = read_segment(str(path), rate, 16000, start, count)
            np.testing.assert_allclose(part, whole[start : start + count], atol=1e-4)


def test_crops_through_dataloader_workers(mixed_files: list[Path]) -> None:
    data = AudioCrops(mixed_files, 24000, 1000)
    assert len(pickle.dumps(data)) < 5000  # paths and lengths only: cheap to hand to workers
    keys = [ItemKey(i, i * 13 + 5) for i in range(8)]
    loader = torch.utils.data.DataLoader(
        keys, batch_size=4, num_workers=2, collate_fn=lambda ks: torch.stack([data[k] for k in ks])
    )
    got = torch.cat(list(loader))
    want = torch.stack([data[k] for k in keys])
    assert torch.equal(got, want)


def test_wavenet_crops_stream_from_disk(mixed_files: list[Path]) -> None:
    from audiolm.core.audio import load_audio
    from audiolm.models.wavenet.config import WaveNetConfig
    from audiolm.models.wavenet.mulaw import mulaw_encode
    from audiolm.training.wavenet.dataset import AudioSource, CropDataset, load_clips

    config = WaveNetConfig(
        sample_rate=16000,
        crop_samples=1024,
        residual_channels=8,
        dilation_channels=8,
        skip_channels=8,
        layers=4,
        stacks=1,
    )
    clips = load_clips([AudioSource(p, None) for p in mixed_files], config, progress=False)
    data = CropDataset(clips, config)
    whole = {str(c.path): mulaw_encode(load_audio(c.path, sample_rate=16000, mono=True)[0][0], 256) for c in clips}
    for i in range(40):
        item = data[ItemKey(i, i)]
        rng = np.random.default_rng(i)
        clip = data.clips[int(rng.choice(len(data.clips), p=data.weights))]
        start = int(rng.integers(0, clip.length - 1024 + 1))
        assert clip.length == len(whole[str(clip.path)])
        differ = int((item["x"] != whole[str(clip.path)][start : start + 1024]).sum())
        assert differ <= 3  # resampled windows may move a μ-law id by one at a bin edge


def test_reservoir_is_uniform_and_bounded() -> None:
    reservoir = FrameReservoir(1000, seed=0)
    for block in range(50):  # 50 blocks x 400 frames; frame value = its position in the stream
        positions = torch.arange(block * 400, (block + 1) * 400, dtype=torch.float32)
        reservoir.add(torch.stack([positions / 20000, torch.ones(400)], dim=1))
    sample = reservoir.frames().float()
    assert sample.shape == (1000, 2) and reservoir.seen == 20000
    # a uniform sample of 0..1: mean 0.5, a tenth in each decile
    assert abs(float(sample[:, 0].mean()) - 0.5) < 0.04
    counts = torch.histc(sample[:, 0], bins=10, min=0, max=1)
    assert counts.min() > 60 and counts.max() < 140
    mean, std = reservoir.mean_std()
    assert mean[0] == pytest.approx(19999 / 2 / 20000, abs=1e-4) and std[1] == pytest.approx(0.0, abs=1e-6)
    small = FrameReservoir(100)
    small.add(torch.randn(30, 3))
    assert small.frames().shape == (30, 3)


def test_kmeans_fit_memory_does_not_grow_with_the_corpus(tmp_path: Path) -> None:
    # 100 "files" x 40k frames x 64 dims = 1 GB of float32 features if they were all kept;
    # the reservoir keeps 20k frames (2.5 MB). Peak RSS must stay far below the 1 GB.
    script = textwrap.dedent("""
        import resource, sys, torch
        from audiolm.models.semantic.kmeans import FrameReservoir, fit_kmeans
        torch.set_num_threads(1)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        reservoir = FrameReservoir(20000, seed=0)
        gen = torch.Generator().manual_seed(0)
        for f in range(int(sys.argv[1])):
            reservoir.add(torch.randn(40000, 64, generator=gen) + f % 4)
        mean, std = reservoir.mean_std()
        fit_kmeans((reservoir.frames().float() - mean) / std, 16, steps=20, batch_size=1024, progress=False)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    """)
    growth = {}
    for files in (10, 100):
        out = subprocess.run([sys.executable, "-c", script, str(files)], capture_output=True, text=True, check=True)
        growth[files] = float(out.stdout.split()[-1])  # MB
    assert growth[100] < 120, growth
    assert growth[100] < growth[10] + 20, growth  # 10x the features, the same memory
