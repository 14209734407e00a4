"""Semantic tokens: a w2v-BERT-style SSL encoder, k-means, and adapters for pretrained encoders.

    from audiolm.models.semantic.tokenizer import SemanticTokenizer
    tokens = SemanticTokenizer.from_pretrained().encode(wav, sample_rate)  # [B, T] at .frame_rate

Pretraining (W2vBertModel, its losses and quantizer) lives in audiolm.training.semantic.
"""
