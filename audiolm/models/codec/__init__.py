"""The acoustic tokenizer: a SEANet encoder/decoder (transformers' EncodecModel architecture)
or frame-rate STFT encoder / iSTFT decoder (ConvNeXt at 75 Hz, frame_rate.py; chosen by
`CodecConfig.encoder` / `.decoder`) around a residual vector quantizer we train from scratch.

    from audiolm.models.codec.codec import Codec
    codes = Codec.from_pretrained().encode(wav, sample_rate, kbps=6)   # LongTensor [B, Q, T]

Training (losses, discriminator, task) lives in audiolm.training.codec; evaluation and benchmark
in audiolm.evaluation.codec.
"""
