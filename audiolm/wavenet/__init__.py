"""WaveNet over raw μ-law samples: global (speaker / instrument) and local (codec token)
conditioning, fast ring-buffer generation, training through the shared Trainer.

    from audiolm.wavenet import WaveNet
    model = WaveNet.from_pretrained("runs/wavenet")          # a checkpoint or run directory
    ids = model.generate(24000, seed=0)                     # [1, 24000] μ-law ids
    wav = model.decode_audio(ids)                           # [1, 24000] float in [-1, 1]
"""

from audiolm.wavenet.config import WaveNetConfig
from audiolm.wavenet.model import WaveNet
from audiolm.wavenet.mulaw import mulaw_decode, mulaw_encode

__all__ = ["WaveNet", "WaveNetConfig", "mulaw_decode", "mulaw_encode"]
