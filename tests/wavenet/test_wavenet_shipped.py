"""The shipped WaveNet checkpoint loads and generates (skipped until one is shipped)."""

from pathlib import Path

import pytest
import torch

from audiolm.wavenet import WaveNet

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "wavenet_gc"


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no shipped WaveNet checkpoint")
def test_shipped_gc_wavenet_generates_with_every_speaker_id():
    model = WaveNet.from_pretrained(SHIPPED)
    assert model.config.gc_cardinality > 1
    ids = model.generate(64, batch_size=2, gc=torch.tensor([0, model.config.gc_cardinality - 1]), seed=0)
    assert ids.shape == (2, 64)
    assert int(ids.min()) >= 0 and int(ids.max()) < model.config.quantization_channels
    # the same seed reproduces the same samples
    again = model.generate(64, batch_size=2, gc=torch.tensor([0, model.config.gc_cardinality - 1]), seed=0)
    assert torch.equal(ids, again)
