"""dlbook.models.rnn_pooling: final states + max-pooling over time, on top of RNNClassifier."""

import pytest
import torch

from _loop import adam_losses
from dlbook.interpret import word_attributions
from dlbook.models.rnn import RNNClassifier, RNNClassifierConfig
from dlbook.models.rnn_pooling import PooledRNNClassifier, PooledRNNClassifierConfig

SEQS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]


def _batch():
    tokens = torch.zeros(3, 5, dtype=torch.long)
    for i, s in enumerate(SEQS):
        tokens[i, :len(s)] = torch.tensor(s)
    return tokens, torch.tensor([len(s) for s in SEQS])


@pytest.mark.parametrize("pooling", ["last", "max", "last+max"])
@pytest.mark.parametrize("cell,bidirectional,num_layers", [("lstm", True, 1), ("gru", False, 2), ("rnn", True, 2)])
def test_padded_batch_equals_one_sentence_at_a_time(pooling, cell, bidirectional, num_layers):
    torch.manual_seed(0)
    model = PooledRNNClassifier(PooledRNNClassifierConfig.tiny(vocab_size=20, pooling=pooling, cell=cell,
                                                               bidirectional=bidirectional, num_layers=num_layers))
    model.eval()
    tokens, lengths = _batch()
    batch = model(tokens, lengths)
    for i, s in enumerate(SEQS):
        alone = model(torch.tensor([s]), torch.tensor([len(s)]))
        assert torch.allclose(batch[i], alone[0], atol=1e-6)


def test_last_pooling_is_rnn_classifier():
    torch.manual_seed(0)
    ours = PooledRNNClassifier(PooledRNNClassifierConfig.tiny(vocab_size=20, pooling="last")).eval()
    theirs = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20)).eval()
    theirs.load_state_dict(ours.state_dict())
    tokens, lengths = _batch()
    assert torch.allclose(ours(tokens, lengths), theirs(tokens, lengths))


def test_max_pooling_takes_the_maximum_over_real_steps_only():
    torch.manual_seed(0)
    model = PooledRNNClassifier(PooledRNNClassifierConfig.tiny(vocab_size=20, pooling="max")).eval()
    tokens, lengths = _batch()
    pooled = model.encode(tokens, lengths)
    with torch.no_grad():
        outputs, _ = model.rnn(model.embedding(tokens[1:2, :2]))  # the short sentence, unpadded
    assert torch.allclose(pooled[1], outputs[0].max(dim=0).values, atol=1e-6)
    assert model.head.in_features == 12


def test_config_errors_and_head_width():
    with pytest.raises(ValueError, match="pooling"):
        PooledRNNClassifierConfig(vocab_size=10, pooling="mean")
    with pytest.raises(ValueError, match="embedding_dropout"):
        PooledRNNClassifierConfig(vocab_size=10, embedding_dropout=1.0)
    model = PooledRNNClassifier(PooledRNNClassifierConfig.tiny(vocab_size=20))
    assert model.head.in_features == 2 * 2 * 6  # last + max, two directions


def test_embedding_dropout_is_off_in_eval_and_attributions_are_complete():
    torch.manual_seed(0)
    model = PooledRNNClassifier(PooledRNNClassifierConfig.tiny(vocab_size=20, embedding_dropout=0.5, dropout=0.3))
    tokens, lengths = _batch()
    model.train()
    assert not torch.allclose(model(tokens, lengths), model(tokens, lengths))  # dropout active
    model.eval()
    assert torch.allclose(model(tokens, lengths), model(tokens, lengths))
    attr, delta = word_attributions(model, tokens, lengths, target=1, n_steps=200, return_delta=True)
    with torch.no_grad():
        gap = model(tokens, lengths)[:, 1] - model(torch.zeros_like(tokens), lengths)[:, 1]
    assert torch.allclose(attr.sum(1), gap, atol=1e-2) and delta.abs().max() < 1e-2


def test_short_training_lowers_the_loss():
    torch.manual_seed(0)
    model = PooledRNNClassifier(PooledRNNClassifierConfig.tiny(vocab_size=20))
    tokens, lengths = _batch()
    labels = torch.tensor([1, 0, 1])
    losses = adam_losses(model, lambda: torch.nn.functional.cross_entropy(model(tokens, lengths), labels),
                         steps=30, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]
