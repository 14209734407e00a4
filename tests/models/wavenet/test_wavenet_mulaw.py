import torch

from audiolm.models.wavenet.mulaw import mulaw_decode, mulaw_encode


def test_round_trip_is_close_and_ids_in_range():
    x = torch.linspace(-1, 1, 10001)
    ids = mulaw_encode(x)
    assert ids.dtype == torch.long and int(ids.min()) == 0 and int(ids.max()) == 255
    y = mulaw_decode(ids)
    # μ-law steps are finest near 0: relative error small everywhere, absolute tiny near 0
    assert (y - x).abs().max() < 0.04
    small = x.abs() < 0.01
    assert (y - x)[small].abs().max() < 3e-4


def test_encode_clips_and_decode_is_monotonic():
    assert mulaw_encode(torch.tensor([-5.0, 5.0])).tolist() == [0, 255]
    d = mulaw_decode(torch.arange(256))
    assert (d[1:] > d[:-1]).all() and abs(float(d[0]) + 1) < 1e-6 and abs(float(d[-1]) - 1) < 1e-6
    # ids survive decode -> encode exactly
    assert torch.equal(mulaw_encode(d), torch.arange(256))
