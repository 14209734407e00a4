"""Layer 3, inference: decoding for the LM stages (static KV cache, prefill + one-token step,
on-device sampling with per-sample seeds, a sliding window), the stage-level helpers and the
AudioLM pipeline. The fast paths wrap a plain `Transformer` and are picked by `decode`:
packed oneDNN weights on CPU (packed_step.py), an opt-in compiled CPU step (compiled_step.py),
a CUDA-graph step (cuda_graph.py); fast_forward.py is the decoding forward they share.

    from audiolm.inference.sampling import SamplingConfig
    from audiolm.inference.decode import generate, decode   # decode: tokens + logits + window starts
    from audiolm.inference.decode import decode_steps            # the same loop, one token at a time
    from audiolm.inference.stages import generate_semantic, generate_coarse, generate_fine
    from audiolm.inference.stages import semantic_track, coarse_track, fine_track   # filled on demand
    from audiolm.inference.codec_chunks import ChunkedDecoder    # codes -> audio chunk by chunk (long files, streams)
    from audiolm.inference.pipeline import AudioLM                # .stream(): audio as it is made

Imports only audiolm.core and audiolm.models.
"""
