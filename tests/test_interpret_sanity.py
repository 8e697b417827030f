"""The cascading randomisation test (Adebayo et al. 2018): model-blind maps stay, gradients change, nothing leaks."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from dlbook.interpret import grad_cam, integrated_gradients, occlusion
from dlbook.interpret.sanity import cascading_randomization, randomizable_layers, spearman_per_example


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 6 * 6, 3))


def _trained_cnn():
    """The tiny CNN trained for a few steps to tell where a bright blob is (left, centre, right)."""
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (96,), generator=g)
    x = 0.3 * torch.randn(96, 1, 12, 12, generator=g)
    for i, c in enumerate(y.tolist()):
        x[i, 0, 4:8, 1 + 4 * c:3 + 4 * c] += 2.0
    model = _cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x[:6], y[:6]


@pytest.fixture(scope="module")
def trained():
    return _trained_cnn()


def _saliency(images, target):
    """|d score_target / d input|, written with autograd (independent of Captum)."""
    def attribute(m):
        x = images.clone().requires_grad_(True)
        m(x).gather(1, target[:, None]).sum().backward()
        return x.grad[:, 0]
    return attribute


def _sobel(images):
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).reshape(1, 1, 3, 3)
    gx = nn.functional.conv2d(images, kx, padding=1)
    gy = nn.functional.conv2d(images, kx.transpose(2, 3), padding=1)
    return (gx**2 + gy**2).sqrt()[:, 0]


def test_spearman_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 5, 5, generator=g), torch.randn(4, 5, 5, generator=g)
    b[1] = a[1] + 0.1 * b[1]  # one strongly related pair
    a[2] = a[2].round()  # ties
    ours = spearman_per_example(a, b)
    ref = [spearmanr(a[i].abs().flatten(), b[i].abs().flatten()).statistic for i in range(4)]
    assert np.allclose(ours.numpy(), ref)
    signed = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(4)]
    assert np.allclose(spearman_per_example(a, b, absolute=False).numpy(), signed)
    assert torch.isnan(spearman_per_example(torch.zeros(1, 4), torch.randn(1, 4)))[0]  # a constant map


def test_a_method_that_ignores_the_model_keeps_correlation_one(trained):
    model, images, _ = trained
    result = cascading_randomization(model, lambda m: _sobel(images))
    assert result.layers == ["6", "2", "0"]  # top (output) first
    assert torch.equal(result.spearman, torch.ones(3, len(images), dtype=torch.float64))


def test_gradients_lose_their_structure_as_layers_are_randomised(trained):
    model, images, labels = trained
    result = cascading_randomization(model, _saliency(images, labels), seed=0)
    mean = result.mean_spearman
    print("saliency, mean Spearman per stage:", result.to_dict())
    assert mean[-1] < 0.5  # all layers random: little of the original map is left
    assert (mean < 0.95).all()  # already the top layer changes it
    assert mean[-1] < mean[0]


def test_the_model_passed_in_is_never_changed(trained):
    model, images, labels = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    cascading_randomization(model, _saliency(images, labels))
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()


def test_deterministic_under_a_seed_and_leaves_the_global_rng_alone(trained):
    model, images, labels = trained
    state = torch.get_rng_state()
    a = cascading_randomization(model, _saliency(images, labels), seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = cascading_randomization(model, _saliency(images, labels), seed=5)
    c = cascading_randomization(model, _saliency(images, labels), seed=6)
    assert torch.equal(a.spearman, b.spearman) and not torch.equal(a.spearman, c.spearman)
    # a noisy method draws the same noise at every stage, so noise alone never lowers the correlation
    noisy = cascading_randomization(model, lambda m: images[:, 0] + torch.randn_like(images[:, 0]))
    assert torch.allclose(noisy.spearman, torch.ones_like(noisy.spearman))


@pytest.mark.slow
def test_dlbook_attributions_as_the_methods(trained):
    model, images, labels = trained
    methods = {
        "integrated_gradients": lambda m: integrated_gradients(m, images, target=labels, n_steps=16),
        "grad_cam": lambda m: grad_cam(m, m[2], images, target=labels),  # the copy's layer, not model[2]
        "occlusion": lambda m: occlusion(m, images, target=labels, window=4, stride=4),
    }
    for name, fn in methods.items():
        result = cascading_randomization(model, fn)
        assert result.spearman.shape == (3, len(images)) and len(result.maps) == 4, name
        assert result.maps[0].shape == images[:, 0].shape, name
        assert torch.nanmean(result.spearman[-1]) < 0.9, name


def test_explicit_layers_and_blocks():
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 2))
    assert randomizable_layers(model) == ["0.0", "1"]
    x = torch.randn(5, 4)
    grad = _vector_grad(x)
    result = cascading_randomization(model, grad, layers=["1", "0"])  # a block's name randomises all of it
    assert result.layers == ["1", "0"] and result.spearman.shape == (2, 5)


def _vector_grad(x):
    def attribute(m):
        inputs = x.clone().requires_grad_(True)
        m(inputs)[:, 0].sum().backward()
        return inputs.grad
    return attribute


def test_bad_input_is_explained(trained):
    model, images, labels = trained
    with pytest.raises(ValueError, match="no layer with parameters"):
        cascading_randomization(nn.Sequential(nn.ReLU(), nn.Flatten()), lambda m: images[:, 0])
    with pytest.raises(ValueError, match="'classifier' is not a submodule"):
        cascading_randomization(model, lambda m: images[:, 0], layers=["classifier"])
    with pytest.raises(ValueError, match="has no parameters to randomise"):
        cascading_randomization(model, lambda m: images[:, 0], layers=["1"])
    with pytest.raises(ValueError, match="layers is empty"):
        cascading_randomization(model, lambda m: images[:, 0], layers=[])
    with pytest.raises(ValueError, match="twice"):
        cascading_randomization(model, lambda m: images[:, 0], layers=["6", "6"])
    with pytest.raises(ValueError, match="one string"):
        cascading_randomization(model, lambda m: images[:, 0], layers="6")
    with pytest.raises(TypeError, match="must return the maps as a tensor"):
        cascading_randomization(model, lambda m: images[:, 0].numpy())
    with pytest.raises(ValueError, match=r"return maps \(B, ...\)"):
        cascading_randomization(model, lambda m: images[0, 0, 0])


def test_a_layer_of_the_original_model_is_caught(trained):
    """The attribution function gets a copy: naming the original's layer is an error, not silently stale maps."""
    model, images, labels = trained
    with pytest.raises(ValueError, match="not a submodule of model"):
        cascading_randomization(model, lambda m: grad_cam(m, model[2], images, target=labels))


def test_lenet_layers_run_from_the_output_down():
    from dlbook.models.lenet import LeNet5

    assert randomizable_layers(LeNet5())[::-1] == ["classifier.7", "classifier.4", "classifier.1", "features.3",
                                                   "features.0"]
