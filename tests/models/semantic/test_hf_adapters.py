import pytest
import torch

from audiolm.core.errors import CheckpointError
from audiolm.models.semantic.tokenizer import SemanticTokenizer


def _save_tiny(kind: str, path):
    torch.manual_seed(0)
    common = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    if kind == "hubert":
        from transformers import HubertConfig, HubertModel

        model = HubertModel(HubertConfig(**common, conv_dim=(8,) * 7, num_conv_pos_embeddings=16,
                                         num_conv_pos_embedding_groups=2))
    elif kind == "wav2vec2":
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        model = Wav2Vec2Model(Wav2Vec2Config(**common, conv_dim=(8,) * 7, num_conv_pos_embeddings=16,
                                             num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
                                             do_stable_layer_norm=True))
    else:
        from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

        model = Wav2Vec2BertModel(Wav2Vec2BertConfig(**common, output_hidden_size=16, conv_depthwise_kernel_size=3,
                                                     position_embeddings_type=None))
    model.save_pretrained(str(path))
    return path


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2", "w2v-bert"])
def test_from_hf_each_family(kind, tmp_path):
    directory = _save_tiny(kind, tmp_path / kind)
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(2, 24000, generator=g) * 0.1  # 1 s at 24 kHz
    centroids = torch.randn(6, 16, generator=g)
    tok = SemanticTokenizer.from_hf(directory, layer=1, kmeans=centroids)
    assert tok.frame_rate == 50 and tok.vocab_size == 6
    tokens = tok.encode(wav, 24000)
    assert tokens.shape == (2, 50) and tokens.dtype == torch.long
    assert torch.equal(tokens, tok.encode(wav, 24000))
    # k-means fitted with the same code, then saved and reloaded as a tokenizer directory
    feats = tok.source(torch.randn(2, 32000, generator=g) * 0.1)
    tok.fit_kmeans_on(feats.reshape(-1, 16), k=4, steps=5, progress=False)
    torch.save(tok.centroids, tmp_path / "centroids.pt")
    again = SemanticTokenizer.from_hf(directory, layer=1, kmeans=tmp_path / "centroids.pt")
    assert torch.equal(again.encode(wav, 24000), tok.encode(wav, 24000))
    loaded = SemanticTokenizer.from_pretrained(tok.save(tmp_path / "tok"))
    assert torch.equal(loaded.encode(wav, 24000), tok.encode(wav, 24000))


def test_from_hf_errors(tmp_path):
    with pytest.raises(CheckpointError):
        SemanticTokenizer.from_hf(tmp_path / "missing", layer=1)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match="model_type"):
        SemanticTokenizer.from_hf(tmp_path / "other", layer=1)
    directory = _save_tiny("hubert", tmp_path / "hubert")
    with pytest.raises(CheckpointError, match="layer"):
        SemanticTokenizer.from_hf(directory, layer=9)
