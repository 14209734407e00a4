"""WaveNet over raw μ-law samples: global (speaker / instrument) and local (codec token)
conditioning, fast ring-buffer generation.

    from audiolm.models.wavenet.model import WaveNet
    model = WaveNet.from_pretrained("runs/wavenet")          # a checkpoint or run directory
    ids = model.generate(24000, seed=0)                     # [1, 24000] μ-law ids
    wav = model.decode_audio(ids)                           # [1, 24000] float in [-1, 1]

Training (dataset, task) lives in audiolm.training.wavenet.
"""
