"""Tests of dlbook.models.rnn: our cells equal PyTorch's, packing equals one-at-a-time, training learns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _loop import adam_losses
from dlbook.models.rnn import (
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    Recurrent,
    RNNCell,
    RNNClassifier,
    RNNClassifierConfig,
    SequenceRegressor,
    SequenceRegressorConfig,
    copy_weights_from_torch,
    gradient_through_time,
    init_forget_gate_bias,
)

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seed, and run these tiny models on one thread: step-by-step recurrences are too small
    to split across cores, and on a busy machine a second thread makes them many times slower."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the equations vs PyTorch ------------------------------------------------------------

@pytest.mark.parametrize("ours_cls, theirs_cls", [(RNN, nn.RNN), (LSTM, nn.LSTM), (GRU, nn.GRU)])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_equals_torch(ours_cls, theirs_cls, bias):
    theirs = theirs_cls(input_size=5, hidden_size=7, batch_first=True, bias=bias)
    ours = copy_weights_from_torch(ours_cls(5, 7, bias=bias), theirs)
    x = torch.randn(4, 11, 5)
    out_ours, state_ours = ours(x)
    out_theirs, state_theirs = theirs(x)
    assert out_ours.shape == out_theirs.shape == (4, 11, 7)
    assert torch.allclose(out_ours, out_theirs, atol=ATOL)
    if theirs_cls is nn.LSTM:
        assert torch.allclose(state_ours[0], state_theirs[0][0], atol=ATOL)  # h_T; theirs is (L, B, H)
        assert torch.allclose(state_ours[1], state_theirs[1][0], atol=ATOL)  # c_T
    else:
        assert torch.allclose(state_ours, state_theirs[0], atol=ATOL)


@pytest.mark.parametrize("ours_cls, theirs_cls", [(RNN, nn.RNN), (LSTM, nn.LSTM), (GRU, nn.GRU)])
def test_layer_equals_torch_from_nonzero_state_and_in_gradients(ours_cls, theirs_cls):
    theirs = theirs_cls(3, 4, batch_first=True)
    ours = copy_weights_from_torch(ours_cls(3, 4), theirs)
    x = torch.randn(2, 6, 3)
    h0 = torch.randn(2, 4)
    if theirs_cls is nn.LSTM:
        c0 = torch.randn(2, 4)
        out_ours, _ = ours(x, (h0, c0))
        out_theirs, _ = theirs(x, (h0[None], c0[None]))
    else:
        out_ours, _ = ours(x, h0)
        out_theirs, _ = theirs(x, h0[None])
    assert torch.allclose(out_ours, out_theirs, atol=ATOL)
    out_ours.square().sum().backward()
    out_theirs.square().sum().backward()
    assert torch.allclose(ours.cell.weight_hh.grad, theirs.weight_hh_l0.grad, atol=1e-4)
    assert torch.allclose(ours.cell.weight_ih.grad, theirs.weight_ih_l0.grad, atol=1e-4)


@pytest.mark.parametrize("ours_cls, theirs_cls", [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)])
def test_cell_equals_torch_cell(ours_cls, theirs_cls):
    theirs = theirs_cls(5, 6)
    ours = ours_cls(5, 6)
    ours.load_state_dict(theirs.state_dict())  # same parameter names and shapes
    x, h = torch.randn(3, 5), torch.randn(3, 6)
    if ours_cls is LSTMCell:
        c = torch.randn(3, 6)
        for a, b in zip(ours(x, (h, c)), theirs(x, (h, c))):
            assert torch.allclose(a, b, atol=ATOL)
    else:
        assert torch.allclose(ours(x, h), theirs(x, h), atol=ATOL)


def test_rnn_cell_applies_tanh():
    """The article's i2h forgot the squashing; ours keeps every state in (-1, 1)."""
    cell = RNNCell(4, 8)
    with torch.no_grad():
        cell.weight_ih.mul_(100)
    h = cell(torch.randn(16, 4) * 10, torch.zeros(16, 8))
    assert h.abs().max() <= 1.0
    gi, gh = cell._affine(torch.ones(1, 4), torch.zeros(1, 8))
    assert torch.allclose(cell(torch.ones(1, 4), torch.zeros(1, 8)), torch.tanh(gi + gh))


def test_copy_weights_rejects_mismatches():
    with pytest.raises(TypeError, match="cannot copy"):
        copy_weights_from_torch(RNN(3, 4), nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="sizes differ"):
        copy_weights_from_torch(RNN(3, 4), nn.RNN(3, 5))
    with pytest.raises(ValueError, match="one layer"):
        copy_weights_from_torch(GRU(3, 4), nn.GRU(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="tanh"):
        copy_weights_from_torch(RNN(3, 4), nn.RNN(3, 4, nonlinearity="relu"))


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match=r"\(B, T, I\)"):
        RNN(3, 4)(torch.randn(5, 3))
    with pytest.raises(ValueError, match="state=\\(h, c\\)"):
        LSTMCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="expects x of shape"):
        GRUCell(3, 4)(torch.randn(2, 5), torch.zeros(2, 4))
    with pytest.raises(TypeError):
        Recurrent(nn.Linear(3, 4))


def test_gradient_through_time_shape_and_vanishing():
    torch.manual_seed(1)
    g = gradient_through_time(RNN(4, 16), torch.randn(8, 40, 4))
    assert g.shape == (40,)
    assert torch.all(g > 0)
    assert g[-1] > 100 * g[0]  # default init: the vanilla RNN forgets the start of a 40-step sequence


def test_init_forget_gate_bias_opens_the_gate_and_keeps_gradients():
    torch.manual_seed(0)
    x = torch.randn(4, 60, 3)
    ref = nn.LSTM(3, 16, batch_first=True, num_layers=2, bidirectional=True)
    init_forget_gate_bias(ref, 1.0)
    for name, p in ref.named_parameters():
        if name.startswith("bias_ih"):
            assert torch.all(p[16:32] == 1.0), name
        elif name.startswith("bias_hh"):
            assert torch.all(p[16:32] == 0.0), name
    default = gradient_through_time(LSTM(3, 16), x)
    torch.manual_seed(0)
    opened = gradient_through_time(init_forget_gate_bias(LSTM(3, 16), 2.0), x)
    assert opened[0] > 100 * default[0]  # the first step still reaches the last state
    with pytest.raises(ValueError, match="no LSTM"):
        init_forget_gate_bias(nn.GRU(3, 4))


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
    with pytest.raises(ValueError, match="integer tensor"):
        model(tokens.float(), lengths)
    with pytest.raises(ValueError, match="cell="):
        RNNClassifierConfig(vocab_size=10, cell="transformer")
    with pytest.raises(ValueError, match="pad_index"):
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
