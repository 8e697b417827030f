"""Tests of dlbook.models.rnn_classifier: packing equals one-at-a-time, pooling, training learns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _loop import adam_losses
from dlbook.interpret import word_attributions
from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig, SequenceRegressor, SequenceRegressorConfig


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seed, and run these tiny models on one thread (faster on a busy machine)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the classifier -----------------------------------------------------------------------

def _batch(vocab=30, lengths=(5, 2, 7, 1), pad=0):
    lengths = torch.tensor(lengths)
    tokens = torch.full((len(lengths), int(lengths.max()) + 2), pad)  # extra padding columns on purpose
    for i, n in enumerate(lengths):
        tokens[i, :n] = torch.randint(2, vocab, (int(n),))
    return tokens, lengths


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional, num_layers", [(True, 1), (False, 2), (True, 2)])
def test_padded_batch_equals_one_sentence_at_a_time(cell, bidirectional, num_layers):
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=30, cell=cell, bidirectional=bidirectional,
                                                   num_layers=num_layers)).eval()
    tokens, lengths = _batch()
    batched = model(tokens, lengths)
    assert batched.shape == (4, 2)
    for i, n in enumerate(lengths):
        single = model(tokens[i:i + 1, :n], lengths[i:i + 1])
        assert torch.allclose(batched[i:i + 1], single, atol=1e-6), f"sentence {i} changed by padding"


def test_final_state_is_last_layer_both_directions():
    """Forward half = last step's forward output; backward half = first step's backward output."""
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=30, num_layers=2, bidirectional=True)).eval()
    tokens, lengths = _batch(lengths=(4,))
    tokens = tokens[:, :4]
    vec = model.encode(tokens, lengths)
    out, _ = model.rnn(model.embedding(tokens))  # (1, T, 2H) from the last layer
    hidden = model.config.hidden_size
    assert torch.allclose(vec[:, :hidden], out[:, -1, :hidden], atol=1e-6)
    assert torch.allclose(vec[:, hidden:], out[:, 0, hidden:], atol=1e-6)


def test_classifier_gradients_flow_and_padding_embedding_stays_zero():
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=30))
    tokens, lengths = _batch()
    nn.functional.cross_entropy(model(tokens, lengths), torch.tensor([0, 1, 0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert torch.all(model.embedding.weight.grad[0] == 0)  # <pad> gets no gradient
    assert isinstance(model.embedding, nn.Embedding)


def test_classifier_short_training_lowers_loss():
    torch.manual_seed(0)
    vocab, n = 12, 32
    lengths = torch.randint(3, 9, (n,))
    tokens = torch.zeros(n, 8, dtype=torch.long)
    for i, k in enumerate(lengths):
        tokens[i, :k] = torch.randint(2, vocab, (int(k),))
    labels = (tokens == 5).any(dim=1).long()  # "does the sentence contain word 5?"
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=vocab, hidden_size=16, embedding_dim=16))
    losses = adam_losses(model, lambda: nn.functional.cross_entropy(model(tokens, lengths), labels), steps=40, lr=0.02)
    assert losses[-1] < 0.5 * losses[0]


def test_classifier_bad_input():
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=30))
    tokens, lengths = _batch()
    with pytest.raises(ValueError, match="lengths must lie"):
        model(tokens, torch.tensor([5, 0, 7, 1]))
    with pytest.raises(ValueError, match="lengths must have shape"):
        model(tokens, lengths[:2])
    with pytest.raises(ValueError, match="integer token ids"):
        model(tokens.float(), lengths)
    with pytest.raises(ValueError, match="cell="):
        RNNClassifierConfig(vocab_size=10, cell="transformer")
    with pytest.raises(TypeError, match="pad_index"):  # the padding id is dlbook.data.text.PAD_INDEX, not a field
        RNNClassifierConfig(vocab_size=10, pad_index=10)


def test_classifier_works_with_captum_layer_integrated_gradients():
    captum_attr = pytest.importorskip("captum.attr")
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=30)).eval()
    tokens, lengths = _batch(lengths=(5, 3))
    lig = captum_attr.LayerIntegratedGradients(model, model.embedding)
    attributions, delta = lig.attribute(tokens, baselines=torch.zeros_like(tokens), target=1,
                                        additional_forward_args=(lengths,), n_steps=16,
                                        return_convergence_delta=True)
    assert attributions.shape == (*tokens.shape, model.config.embedding_dim)
    assert delta.abs().max() < 0.05


# -- pooling and embedding dropout (formerly rnn_pooling.PooledRNNClassifier) ----------------

SEQS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]


def _seqs_batch():
    tokens = torch.zeros(3, 5, dtype=torch.long)
    for i, s in enumerate(SEQS):
        tokens[i, :len(s)] = torch.tensor(s)
    return tokens, torch.tensor([len(s) for s in SEQS])


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "last+max"])
@pytest.mark.parametrize("cell,bidirectional,num_layers", [("lstm", True, 1), ("gru", False, 2), ("rnn", True, 2)])
def test_pooled_padded_batch_equals_one_sentence_at_a_time(pooling, cell, bidirectional, num_layers):
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20, pooling=pooling, cell=cell,
                                                   bidirectional=bidirectional, num_layers=num_layers)).eval()
    tokens, lengths = _seqs_batch()
    batch = model(tokens, lengths)
    for i, s in enumerate(SEQS):
        alone = model(torch.tensor([s]), torch.tensor([len(s)]))
        assert torch.allclose(batch[i], alone[0], atol=1e-6)


@pytest.mark.parametrize("pooling, reduce", [("max", lambda o: o.max(dim=0).values), ("mean", lambda o: o.mean(dim=0))])
def test_pooling_over_time_uses_the_real_steps_only(pooling, reduce):
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20, pooling=pooling)).eval()
    tokens, lengths = _seqs_batch()
    pooled = model.encode(tokens, lengths)
    with torch.no_grad():
        outputs, _ = model.rnn(model.embedding(tokens[1:2, :2]))  # the short sentence, unpadded
    assert torch.allclose(pooled[1], reduce(outputs[0]), atol=1e-6)
    assert model.head.in_features == 12


def test_config_errors_and_head_width():
    with pytest.raises(ValueError, match="pooling"):
        RNNClassifierConfig(vocab_size=10, pooling="attention")
    with pytest.raises(ValueError, match="embedding_dropout"):
        RNNClassifierConfig(vocab_size=10, embedding_dropout=1.0)
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20, pooling="last+max"))
    assert model.head.in_features == 2 * 2 * 6  # last + max, two directions


def test_embedding_dropout_is_off_in_eval_and_attributions_are_complete():
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20, embedding_dropout=0.5, dropout=0.3,
                                                   pooling="last+max"))
    tokens, lengths = _seqs_batch()
    model.train()
    assert not torch.allclose(model(tokens, lengths), model(tokens, lengths))  # dropout active
    model.eval()
    assert torch.allclose(model(tokens, lengths), model(tokens, lengths))
    attr, delta = word_attributions(model, tokens, lengths, target=1, n_steps=200, return_delta=True)
    with torch.no_grad():
        gap = model(tokens, lengths)[:, 1] - model(torch.zeros_like(tokens), lengths)[:, 1]
    assert torch.allclose(attr.sum(1), gap, atol=1e-2) and delta.abs().max() < 1e-2


def test_pooled_short_training_lowers_the_loss():
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20, pooling="last+max"))
    tokens, lengths = _seqs_batch()
    labels = torch.tensor([1, 0, 1])
    losses = adam_losses(model, lambda: nn.functional.cross_entropy(model(tokens, lengths), labels),
                         steps=30, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]


# -- the regressor --------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_regressor_shapes_and_training(cell):
    torch.manual_seed(0)
    t = torch.arange(80, dtype=torch.float32)
    series = torch.sin(2 * torch.pi * t / 11)  # an 11-step cycle, like the sunspots'
    windows = series.unfold(0, 13, 1)  # (N, 13): 12 inputs + the next value
    x, y = windows[:, :12, None], windows[:, 12:]  # (N, 12, 1), (N, 1)
    model = SequenceRegressor(SequenceRegressorConfig.tiny(cell=cell, hidden_size=16))
    assert model(x).shape == (x.shape[0], 1)
    losses = adam_losses(model, lambda: nn.functional.mse_loss(model(x), y), steps=60, lr=0.02)
    assert losses[-1] < 0.2 * losses[0]


def test_regressor_bad_input():
    model = SequenceRegressor(SequenceRegressorConfig.tiny())
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.randn(4, 12))
    with pytest.raises(ValueError, match="output_size"):
        SequenceRegressorConfig(output_size=0)
