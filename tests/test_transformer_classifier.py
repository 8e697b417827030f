"""Tests of dlbook.models.transformer_classifier: shapes, padding, order, training, bad input."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlbook.models.transformer_classifier as tc
from _loop import adam_losses
from dlbook.data.text import padding_mask
from dlbook.models import count_parameters
from dlbook.models.transformer_classifier import TransformerClassifier, TransformerClassifierConfig

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _batch(vocab=50, lengths=(9, 4, 1, 6)):
    lengths = torch.tensor(lengths)
    tokens = torch.randint(2, vocab, (len(lengths), int(lengths.max())))
    tokens[~padding_mask(lengths)] = 0
    return tokens, lengths


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_classifier_shapes_and_attention_maps(pooling):
    cfg = TransformerClassifierConfig.tiny(vocab_size=50, pooling=pooling, num_layers=2)
    model = TransformerClassifier(cfg).eval()
    tokens, lengths = _batch()
    assert model(tokens, lengths).shape == (4, 2)
    assert model.encode(tokens, lengths).shape == (4, cfg.d_model)
    maps = model.attention_maps(tokens, lengths)
    T = tokens.size(1) + (pooling == "cls")
    assert len(maps) == 2 and maps[0].shape == (4, cfg.num_heads, T, T)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_classifier_ignores_padding(pooling):
    model = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=50, pooling=pooling)).eval()
    tokens, lengths = _batch()
    longer = torch.cat([tokens, torch.randint(2, 50, (4, 5))], dim=1)  # junk where the padding is
    assert torch.allclose(model(tokens, lengths), model(longer, lengths), atol=ATOL)


def test_classifier_without_positions_is_order_blind():
    model = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=50, positional="none")).eval()
    tokens, lengths = _batch(lengths=(7, 7))
    perm = torch.randperm(7)
    assert torch.allclose(model(tokens, lengths), model(tokens[:, perm], lengths), atol=ATOL)
    with_pos = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=50)).eval()
    with_pos.load_state_dict(model.state_dict())
    assert not torch.allclose(with_pos(tokens, lengths), with_pos(tokens[:, perm], lengths), atol=ATOL)


def test_classifier_training_lowers_the_loss():
    model = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=30, dropout=0.0))
    tokens, lengths = _batch(vocab=30, lengths=(8,) * 16)
    labels = (tokens == 5).any(1).long()  # "does the sentence contain word 5?"
    losses = adam_losses(model, lambda: F.cross_entropy(model(tokens, lengths), labels), steps=60, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]


def test_classifier_works_with_the_trainer():
    from dlbook.train import Trainer

    model = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=30))
    tokens, lengths = _batch(vocab=30, lengths=(8, 3, 5, 2))
    batches = [((tokens, lengths), torch.tensor([0, 1, 0, 1]))]
    trainer = Trainer(model, torch.optim.Adam(model.parameters()), nn.CrossEntropyLoss(), device="cpu",
                      precision="fp32", progress=False)
    history = trainer.fit(batches, batches, epochs=2)
    assert len(history.records) == 2 and "val_loss" in history.records[-1]


def test_classifier_rejects_bad_input():
    with pytest.raises(ValueError, match="divisible"):
        TransformerClassifierConfig(vocab_size=10, d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="pooling"):
        TransformerClassifierConfig(vocab_size=10, pooling="max")
    model = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=50, max_len=8))
    tokens, lengths = _batch()
    with pytest.raises(ValueError, match="integer token ids"):
        model(tokens.float(), lengths)
    with pytest.raises(ValueError, match="lengths"):
        model(tokens, lengths[:2])
    with pytest.raises(ValueError, match="max_len"):
        model(tokens, lengths)  # T = 9 > 8


def test_parameter_count_is_the_shared_convention():
    model = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=50))
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    model.embedding.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - 50 * 16


def test_docstring_examples():
    failures, attempted = doctest.testmod(tc, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0 and attempted >= 2
