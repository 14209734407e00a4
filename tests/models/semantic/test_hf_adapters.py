import pytest
import torch

from audiolm.core.errors import CheckpointError
from audiolm.models.semantic.tokenizer import SemanticTokenizer


def _save_tiny(kind: str, path):
    torch.manual_seed(0)
    common = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    if kind == "hubert":
        from transformers import HubertConfig, HubertModel

        model = HubertModel(
            HubertConfig(**common, conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
        )
    elif kind == "wav2vec2":
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        model = Wav2Vec2Model(
            Wav2Vec2Config(
                **common,
                conv_dim=(8,) * 7,
                num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2,
                feat_extract_norm="layer",
                do_stable_layer_norm=True,
            )
        )
    else:
        from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

        model = Wav2Vec2BertModel(
            Wav2Vec2BertConfig(
                **common, output_hidden_size=16, conv_depthwise_kernel_size=3, position_embeddings_type=None
            )
        )
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


def _reference_hidden(kind: str, directory, wav16k: torch.Tensor, layer: int, pad: tuple[int, int]) -> torch.Tensor:
    """The HF model's own hidden_states[layer] for 16 kHz audio, computed here from
    transformers alone (its feature extractor / documented normalisation), with the adapter's
    padding (frame t centred on (t + 1/2) * hop)."""
    from transformers import AutoModel, SeamlessM4TFeatureExtractor

    model = AutoModel.from_pretrained(str(directory), local_files_only=True).eval()
    padded = torch.nn.functional.pad(wav16k, pad)
    with torch.no_grad():
        if kind == "w2v-bert":
            inputs = SeamlessM4TFeatureExtractor()(list(padded.numpy()), sampling_rate=16000, return_tensors="pt")
            out = model(
                input_features=inputs["input_features"],
                attention_mask=inputs["attention_mask"],
                output_hidden_states=True,
            )
        else:
            if model.config.feat_extract_norm == "layer":  # wav2vec 2.0 "large"-style: normalised input
                wav16k = (wav16k - wav16k.mean(-1, keepdim=True)) / torch.sqrt(wav16k.var(-1, keepdim=True) + 1e-7)
                padded = torch.nn.functional.pad(wav16k, pad)
            out = model(input_values=padded, output_hidden_states=True)
    return out.hidden_states[layer]


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2", "w2v-bert"])
def test_from_hf_features_are_the_models_hidden_states(kind, tmp_path):
    """Shapes alone passed when the adapter read the wrong layer: compare every layer with
    the HF model's own hidden states."""
    directory = _save_tiny(kind, tmp_path / kind)
    wav = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.1  # 1 s at 16 kHz
    layers = []
    for layer in (0, 1, 2):
        source = SemanticTokenizer.from_hf(directory, layer=layer).source
        ours = source(wav)  # [B, 50, 16]
        reference = _reference_hidden(kind, directory, wav, layer, source.pad)[:, : ours.shape[1]]
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
        layers.append(ours)
    assert not torch.allclose(layers[1], layers[2])  # the layers differ: a wrong one would be seen


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
