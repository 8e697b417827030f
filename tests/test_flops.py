"""count_flops: hand-computed FLOPs of a Linear, a Conv2d, LeNet-5 and a packed LSTM; modes restored; clear errors."""

import pytest
import torch
from torch import nn

from dlbook.models import count_flops
from dlbook.models.lenet import LeNet5
from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig


def test_linear_is_two_flops_per_multiply_add_and_the_bias_is_free():
    # B x i @ i x o: B * i * o multiply-adds, 2 FLOPs each
    assert count_flops(nn.Linear(3, 5), torch.zeros(7, 3)) == 2 * 7 * 3 * 5
    assert count_flops(nn.Linear(3, 5, bias=False), torch.zeros(7, 3)) == 2 * 7 * 3 * 5
    assert count_flops(nn.Linear(64, 10), torch.zeros(1, 64)) == 1280


@pytest.mark.parametrize("batch, c_in, c_out, k, size, stride, padding, groups", [
    (1, 2, 4, 3, 6, 1, 1, 1), (3, 3, 8, 5, 12, 2, 0, 1), (2, 4, 6, 3, 9, 1, 1, 2)])
def test_conv2d_matches_the_formula(batch, c_in, c_out, k, size, stride, padding, groups):
    out = (size + 2 * padding - k) // stride + 1
    expected = 2 * batch * out * out * c_out * (c_in // groups) * k * k
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, groups=groups)
    assert count_flops(conv, torch.zeros(batch, c_in, size, size)) == expected


def test_lenet5_is_the_sum_of_its_layers_by_hand():
    conv = 2 * (28 * 28 * 6 * 1 * 25) + 2 * (10 * 10 * 16 * 6 * 25)
    fc = 2 * (400 * 120 + 120 * 84 + 84 * 10)
    assert count_flops(LeNet5(), torch.zeros(1, 1, 28, 28)) == conv + fc
    assert count_flops(LeNet5(), torch.zeros(4, 1, 28, 28)) == 4 * (conv + fc)      # linear in the batch


def test_packed_lstm_counts_each_real_step_of_each_direction():
    cfg = RNNClassifierConfig.tiny(vocab_size=30)              # embedding 8, hidden 6, bidirectional LSTM
    model = RNNClassifier(cfg)
    tokens, lengths = torch.randint(1, 30, (2, 9)), torch.tensor([9, 4])
    per_step = 2 * 4 * cfg.hidden_size * (cfg.embedding_dim + cfg.hidden_size)   # 4 gates, input and hidden matrices
    head = 2 * 2 * (2 * cfg.hidden_size) * cfg.num_classes
    assert count_flops(model, tokens, lengths) == per_step * 2 * int(lengths.sum()) + head


def test_modes_are_restored_and_no_gradients_are_kept():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    model.train()
    model[2].eval()
    stats = model[2].running_mean.clone()
    count_flops(model, torch.randn(8, 4))
    assert model.training and model[1].training and not model[2].training
    assert torch.equal(model[2].running_mean, stats)
    assert all(p.grad is None for p in model.parameters())


def test_bad_input_gives_clear_errors():
    with pytest.raises(TypeError, match="nn.Module"):
        count_flops(lambda x: x, torch.zeros(1))
    with pytest.raises(ValueError, match="example inputs"):
        count_flops(nn.Linear(3, 5))
    with pytest.raises(ValueError, match=r"could not run Linear on inputs \[\(2, 4\)\]"):
        count_flops(nn.Linear(3, 5), torch.zeros(2, 4))


def test_an_invisible_fused_lstm_is_an_error_not_a_low_count():
    lstm = nn.LSTM(4, 8, batch_first=True)
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=30))
    try:                                                            # packed, but every sentence of length 5
        count_flops(model, torch.randint(1, 30, (3, 5)), torch.tensor([5, 5, 5]))
    except ValueError as exc:
        assert "fused kernel" in str(exc) and "different lengths" in str(exc)
    if count_flops(nn.GRU(4, 8), torch.zeros(5, 1, 4)) == 0:      # sanity: the counter sees an unpacked GRU
        pytest.skip("this PyTorch counts no unpacked recurrent layer at all")
    try:
        flops = count_flops(lstm, torch.zeros(1, 5, 4))
    except ValueError as exc:                                       # CPU builds with a fused LSTM kernel
        assert "fused kernel" in str(exc) and "PackedSequence" in str(exc)
    else:                                                           # builds where the counter sees it
        assert flops == 2 * 4 * 8 * (4 + 8) * 5
