"""layer_activations records what a layer computes; plot_filters and plot_randomization draw what they are given."""

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from dlbook.interpret import RandomizationResult, layer_activations  # noqa: E402
from dlbook.models.lenet import LeNet5  # noqa: E402
from dlbook.viz import plot_filters, plot_randomization  # noqa: E402


def _batches(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_penultimate_features_equal_the_truncated_network():
    torch.manual_seed(0)
    model = LeNet5()
    model.classifier[3].p = 0.5  # dropout: must be off in eval mode, as in the reference below
    x, y = torch.randn(10, 1, 28, 28), torch.arange(10)
    feats, targets = layer_activations(model, model.classifier[5], _batches(x, y, 4))
    model.eval()
    with torch.no_grad():
        reference = model.classifier[:6](model.features(x))  # Flatten .. F6 + ReLU: (10, 84)
    assert feats.shape == (10, 84) and torch.equal(targets, y)
    assert torch.allclose(feats, reference, atol=1e-6)
    assert model.classifier[5]._forward_hooks == {}  # the hook is gone


def test_feature_maps_keep_their_shape_or_flatten():
    torch.manual_seed(0)
    model = LeNet5()
    x = torch.randn(3, 1, 28, 28)
    maps, _ = layer_activations(model, model.features[1], [(x, torch.zeros(3))])
    with torch.no_grad():
        assert torch.allclose(maps, model.features[:2](x), atol=1e-6)  # (3, 6, 28, 28) after C1's ReLU
    flat, _ = layer_activations(model, model.features[1], [(x, torch.zeros(3))], flatten=True)
    assert flat.shape == (3, 6 * 28 * 28) and torch.equal(flat, maps.flatten(1))
    assert model.training  # the model's mode is restored


def test_layer_activations_explains_bad_input_and_removes_its_hook_on_error():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="not a submodule"):
        layer_activations(model, nn.ReLU(), [(torch.randn(2, 4), torch.zeros(2))])
    with pytest.raises(ValueError, match="no batches"):
        layer_activations(model, model[1], [])
    with pytest.raises(RuntimeError):  # wrong input width: the model raises, the hook must still go
        layer_activations(model, model[1], [(torch.randn(2, 5), torch.zeros(2))])
    assert model[1]._forward_hooks == {}

    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(4, 2), nn.Linear(4, 2)  # spare is defined, never called

        def forward(self, x):
            return self.used(x)

    net = WithSpare()
    with pytest.raises(ValueError, match="never ran"):
        layer_activations(net, net.spare, [(torch.randn(2, 4), torch.zeros(2))])


def test_plot_filters_shares_one_symmetric_scale():
    weight = torch.randn(6, 1, 5, 5)
    fig = plot_filters(weight, ncols=4)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 6
    scale = weight.abs().max().item()
    assert all(np.allclose(im.get_clim(), (-scale, scale)) for im in images)
    assert np.allclose(images[2].get_array(), weight[2, 0].numpy())
    rgb = plot_filters(torch.randn(2, 3, 3, 3))
    assert rgb.axes[0].images[0].get_array().shape == (3, 3, 3)
    with pytest.raises(ValueError, match=r"weight\[:, c:c \+ 1\]"):
        plot_filters(torch.randn(4, 6, 5, 5))


def test_plot_randomization_draws_the_mean_curves():
    a = RandomizationResult(["fc", "conv"], torch.tensor([[0.9, 0.7], [0.3, float("nan")]], dtype=torch.float64), [])
    b = RandomizationResult(["fc", "conv"], torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64), [])
    fig = plot_randomization({"grad": a, "edges": b})
    lines = fig.axes[0].lines
    assert np.allclose(lines[0].get_ydata(), [1.0, 0.8, 0.3]) and np.allclose(lines[1].get_ydata(), [1, 1, 1])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["original", "+fc", "+conv"]
    with pytest.raises(ValueError, match="different layers"):
        plot_randomization({"a": a, "c": RandomizationResult(["fc"], torch.ones(1, 2, dtype=torch.float64), [])})
    with pytest.raises(ValueError, match="empty"):
        plot_randomization({})
