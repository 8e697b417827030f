"""Tests of dlbook.models.rnn: our cells and layers equal PyTorch's, in outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlbook.models.rnn import (
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    Recurrent,
    RNNCell,
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
    ours = ours_cls(5, 7, bias=bias).load_from_torch(theirs)
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
    ours = ours_cls(3, 4).load_from_torch(theirs)
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


def test_load_from_torch_rejects_mismatches():
    with pytest.raises(TypeError, match="cannot copy"):
        RNN(3, 4).load_from_torch(nn.LSTM(3, 4))
    with pytest.raises(ValueError, match="sizes differ"):
        RNN(3, 4).load_from_torch(nn.RNN(3, 5))
    with pytest.raises(ValueError, match="one layer"):
        GRU(3, 4).load_from_torch(nn.GRU(3, 4, num_layers=2))
    with pytest.raises(ValueError, match="tanh"):
        RNN(3, 4).load_from_torch(nn.RNN(3, 4, nonlinearity="relu"))


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
