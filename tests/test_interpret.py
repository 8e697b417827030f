"""dlbook.interpret: word attributions (text) and Grad-CAM / IG / occlusion (images), and their drawing in viz.

The backbone is IG's completeness axiom: attributions add up to f(x) - f(baseline).
Grad-CAM and occlusion are checked on a hand-built model whose evidence is known
to sit in one bright square.
"""

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from dlbook.interpret import (WordAttribution, class_scores, explain_text, grad_cam, integrated_gradients,  # noqa: E402
                              occlusion, saliency, word_attributions)
from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig  # noqa: E402
from dlbook.viz import overlay, plot_word_attributions, render_attributions_html, render_html  # noqa: E402


def _rnn(cell="lstm", seed=0, vocab=40):
    torch.manual_seed(seed)
    return RNNClassifier(RNNClassifierConfig.tiny(vocab_size=vocab, cell=cell, hidden_size=8, embedding_dim=6))


def _batch():
    tokens = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0], [13, 0, 0, 0, 0]])
    return tokens, torch.tensor([5, 3, 1])


# -- text ---------------------------------------------------------------------------------


def test_class_scores_log_odds_is_log_p_over_1_minus_p():
    logits = torch.randn(4, 5)
    p = logits.softmax(1)
    assert torch.allclose(class_scores(logits, "log_odds"), torch.log(p / (1 - p)), atol=1e-5)
    assert torch.allclose(class_scores(logits, "prob"), p)
    assert class_scores(logits, "logit") is logits
    with pytest.raises(ValueError, match="score"):
        class_scores(logits, "softmax")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("score", ["logit", "log_odds"])
def test_word_attributions_shape_padding_and_completeness(cell, score):
    model = _rnn(cell)
    tokens, lengths = _batch()
    attr, delta = word_attributions(model, tokens, lengths, target=1, score=score, return_delta=True)
    assert attr.shape == tokens.shape and attr.dtype == torch.float32
    assert (attr[1, 3:] == 0).all() and (attr[2, 1:] == 0).all()  # padding gets nothing
    model.eval()
    with torch.no_grad():
        f_x = class_scores(model(tokens, lengths), score)[:, 1]
        f_base = class_scores(model(torch.zeros_like(tokens), lengths), score)[:, 1]
    # completeness: the scores of a sentence add up to f(x) - f(baseline)
    assert torch.allclose(attr.sum(1), f_x - f_base, atol=1e-3), (attr.sum(1), f_x - f_base)
    assert delta.abs().max() < 1e-3


def test_word_attributions_with_another_baseline_and_kept_tokens():
    model = _rnn()
    tokens, lengths = _batch()
    attr, delta = word_attributions(model, tokens, lengths, target=1, baseline_index=1, return_delta=True)
    model.eval()
    inside = torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)
    unk = torch.where(inside, torch.ones_like(tokens), tokens)
    with torch.no_grad():
        gap = model(tokens, lengths)[:, 1] - model(unk, lengths)[:, 1]
    assert torch.allclose(attr.sum(1), gap, atol=1e-3) and delta.abs().max() < 1e-3
    kept = word_attributions(model, tokens, lengths, target=1, keep_tokens=[5, 9])
    assert kept[0, 0] == 0 and kept[0, 4] == 0 and kept[0, 1] != 0  # tokens 5 and 9 stay in the baseline


def test_word_attributions_default_target_is_the_prediction_and_per_sentence_targets_work():
    model = _rnn()
    tokens, lengths = _batch()
    model.eval()
    with torch.no_grad():
        pred = model(tokens, lengths).argmax(1)
    default = word_attributions(model, tokens, lengths)
    assert torch.allclose(default, word_attributions(model, tokens, lengths, target=pred))
    assert torch.allclose(default, word_attributions(model, tokens, lengths, target=pred.tolist()))


def test_word_attributions_do_not_depend_on_the_batch():
    """One sentence alone gets the same scores as inside a padded batch (packing works)."""
    model = _rnn()
    tokens, lengths = _batch()
    batch = word_attributions(model, tokens, lengths, target=0)
    alone = word_attributions(model, tokens[1:2, :3], lengths[1:2], target=0)
    assert torch.allclose(batch[1, :3], alone[0], atol=1e-5)


def test_word_attributions_restore_training_mode_and_leave_no_gradients():
    model = _rnn()
    model.train()
    word_attributions(model, *_batch(), target=1)
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_word_attributions_on_a_model_with_dropout_are_deterministic():
    torch.manual_seed(0)
    model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=40, dropout=0.5)).train()
    a = word_attributions(model, *_batch(), target=1)
    b = word_attributions(model, *_batch(), target=1)
    assert torch.equal(a, b)  # eval mode inside: no dropout noise


def test_word_attributions_bad_input_is_explained():
    model = _rnn()
    tokens, lengths = _batch()
    with pytest.raises(ValueError, match=r"integer token ids of shape \(B, T\)"):
        word_attributions(model, tokens[0], lengths[:1])
    with pytest.raises(ValueError, match="integer token ids"):
        word_attributions(model, tokens.float(), lengths)
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\)"):
        word_attributions(model, tokens, lengths[:2])
    with pytest.raises(ValueError, match="empty sentence"):
        word_attributions(model, tokens, torch.tensor([5, 0, 1]))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        word_attributions(model, tokens, lengths, target=2)
    with pytest.raises(ValueError, match="one per example"):
        word_attributions(model, tokens, lengths, target=[0, 1])
    with pytest.raises(ValueError, match="not a submodule"):
        word_attributions(model, tokens, lengths, layer=nn.Embedding(40, 6))
    with pytest.raises(ValueError, match="n_steps"):
        word_attributions(model, tokens, lengths, n_steps=1)
    with pytest.raises(ValueError, match="score"):
        word_attributions(model, tokens, lengths, score="probability")

    class NoEmbedding(nn.Module):
        def forward(self, tokens, lengths):
            return torch.zeros(tokens.shape[0], 2)

    with pytest.raises(AttributeError, match="layer="):
        word_attributions(NoEmbedding(), tokens, lengths)


def test_explain_text_records_and_html():
    model = _rnn()
    tokens, lengths = _batch()
    words = [["a", "<b>bold</b>", "café", "film", "."], ["not", "good", "."], ["ok"]]
    items = explain_text(model, tokens, lengths, words, labels=[1, 0, 1], target=1, n_steps=20)
    assert [len(i.words) for i in items] == [5, 3, 1]
    assert all(i.target == 1 and 0.5 <= i.prob <= 1 and abs(i.delta) < 1e-2 for i in items)
    page = render_attributions_html(items, title="three sentences")
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page  # escaped
    assert "café" in page and "three sentences" in page and "positive" in page
    assert items[0]._repr_html_().count("<span title=") == 5
    assert len(items[0].top(2)) == 2
    with pytest.raises(ValueError, match="word lists"):
        explain_text(model, tokens, lengths, words[:2])
    with pytest.raises(ValueError, match="words to show"):
        explain_text(model, tokens, lengths, [["a"], ["b"], ["c"]])


def test_render_html_colours_by_sign_and_checks_lengths():
    page = render_html(["good", "bad", "meh"], torch.tensor([1.0, -1.0, 0.0]))
    assert "rgba(22,163,74,0.80)" in page and "rgba(220,38,38,0.80)" in page
    assert render_html([], []) == ""
    with pytest.raises(ValueError, match="2 words but 1 scores"):
        render_html(["a", "b"], [0.1])
    with pytest.raises(ValueError):
        render_attributions_html([])


def test_plot_word_attributions_returns_a_figure():
    item = WordAttribution(words=["a"] * 60, scores=torch.linspace(-1, 1, 60), target=1, pred=1, prob=0.9, label=0)
    fig = plot_word_attributions([item, item])
    assert fig.get_figheight() > 1.0  # wrapped onto several lines
    with pytest.raises(ValueError):
        plot_word_attributions([])


# -- images -------------------------------------------------------------------------------


class BrightSquareNet(nn.Module):
    """Class 1 = "there is something bright", class 0 = "there is something dark".

    A 3x3 averaging filter, ReLU, global average pooling and a fixed linear head:
    the evidence for class 1 sits exactly where the image is bright.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight[0].fill_(1 / 9)
            self.conv.weight[1].fill_(-1 / 9)
            self.fc.weight.copy_(torch.tensor([[0.0, 10.0], [10.0, 0.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


def _squares(positions, size=16, side=4):
    images = torch.zeros(len(positions), 1, size, size)
    for k, (i, j) in enumerate(positions):
        images[k, 0, i:i + side, j:j + side] = 1.0
    return images


POSITIONS = [(0, 0), (10, 3), (6, 12)]


def _inside(i, j, side=4, margin=1):
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[max(0, i - margin):i + side + margin, max(0, j - margin):j + side + margin] = True
    return mask


def test_grad_cam_highlights_the_informative_region():
    model = BrightSquareNet()
    images = _squares(POSITIONS)
    cams = grad_cam(model, model.relu, images, target=1)
    assert cams.shape == (3, 16, 16) and (cams >= 0).all()
    for cam, (i, j) in zip(cams, POSITIONS):
        inside = _inside(i, j)
        peak = divmod(int(cam.argmax()), 16)
        assert inside[peak], (peak, (i, j))
        assert cam[inside].mean() > 5 * cam[~inside].mean()


def test_grad_cam_default_target_and_bad_input():
    model = BrightSquareNet()
    images = _squares(POSITIONS)
    assert torch.allclose(grad_cam(model, model.relu, images), grad_cam(model, model.relu, images, target=1))
    with pytest.raises(ValueError, match="not a submodule"):
        grad_cam(model, nn.ReLU(), images)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        grad_cam(model, model.relu, images[0])
    with pytest.raises(ValueError, match="float"):
        grad_cam(model, model.relu, (images * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="convolutional"):
        grad_cam(model, model.fc, images)


def _small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))


@pytest.mark.parametrize("baseline", [None, 0.5, "tensor"])
def test_integrated_gradients_completeness(baseline):
    model = _small_cnn()
    images = torch.randn(2, 3, 8, 8)
    if baseline == "tensor":
        baseline = torch.randn(1, 3, 8, 8)
    maps, delta = integrated_gradients(model, images, target=[0, 2], baseline=baseline, n_steps=64,
                                       return_delta=True)
    assert maps.shape == (2, 8, 8)
    base = torch.zeros_like(images) if baseline is None else torch.as_tensor(baseline).expand_as(images)
    with torch.no_grad():
        gap = model(images)[[0, 1], [0, 2]] - model(base)[[0, 1], [0, 2]]
    assert torch.allclose(maps.sum((1, 2)), gap, atol=1e-3 * max(1.0, gap.abs().max().item())), (maps.sum((1, 2)), gap)
    assert delta.abs().max() < 1e-3


def test_integrated_gradients_channel_options_and_errors():
    model = _small_cnn()
    images = torch.randn(2, 3, 8, 8)
    full = integrated_gradients(model, images, target=1, channel_reduce=None, n_steps=16)
    assert full.shape == images.shape
    assert torch.allclose(integrated_gradients(model, images, target=1, channel_reduce="abs", n_steps=16),
                          full.abs().sum(1), atol=1e-6)
    with pytest.raises(ValueError, match="channel_reduce"):
        integrated_gradients(model, images, channel_reduce="max")
    with pytest.raises(ValueError, match="does not broadcast"):
        integrated_gradients(model, images, baseline=torch.zeros(5, 8, 8))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 2\]"):
        integrated_gradients(model, images, target=3)


def test_saliency_is_the_gradient_of_the_target_logit():
    model = _small_cnn()
    images = torch.randn(2, 3, 8, 8)
    x = images.clone().requires_grad_(True)
    model(x)[[0, 1], [0, 2]].sum().backward()   # independent reference: plain autograd
    expected = x.grad.abs().sum(1)
    assert torch.allclose(saliency(model, images, target=[0, 2]), expected, atol=1e-6)
    assert torch.allclose(saliency(model, images, target=[0, 2], channel_reduce="sum"), x.grad.sum(1), atol=1e-6)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    maps = saliency(linear, torch.randn(5, 3, 4, 4), target=1, channel_reduce=None)
    assert torch.allclose(maps, linear[1].weight[1].detach().view(3, 4, 4).expand(5, -1, -1, -1))  # the weights
    assert all(p.grad is None for p in linear.parameters())   # explaining leaves no gradients behind


def test_integrated_gradients_with_smoothgrad_averages_noisy_copies():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    images = torch.randn(2, 3, 4, 4)
    plain = integrated_gradients(linear, images, target=1, channel_reduce=None, n_steps=8)
    # for a linear model IG from zero is x * w; averaged over noisy x it tends to x * w, one noisy copy does not
    torch.manual_seed(1)
    smooth = integrated_gradients(linear, images, target=1, channel_reduce=None, n_steps=8, noise_samples=400,
                                  noise_stdev=0.2)
    one = integrated_gradients(linear, images, target=1, channel_reduce=None, n_steps=8, noise_samples=1,
                               noise_stdev=0.2)
    scale = plain.abs().max()
    assert (smooth - plain).abs().max() < 0.1 * scale
    assert (one - plain).abs().max() > 0.1 * (smooth - plain).abs().max()
    with pytest.raises(ValueError, match="noise_samples"):
        integrated_gradients(linear, images, noise_samples=-1)
    with pytest.raises(ValueError, match="return_delta"):
        integrated_gradients(linear, images, noise_samples=2, return_delta=True)


def test_occlusion_shape_and_region():
    model = BrightSquareNet()
    images = _squares(POSITIONS)
    maps = occlusion(model, images, target=1, window=4, stride=2)
    assert maps.shape == (3, 16, 16)
    for m, (i, j) in zip(maps, POSITIONS):
        inside = _inside(i, j, margin=2)
        assert m[inside].mean() > 0 and m[inside].mean() > 5 * m[~inside].abs().mean()
    with pytest.raises(ValueError, match="larger than the images"):
        occlusion(model, images, window=32)
    with pytest.raises(ValueError, match="positive"):
        occlusion(model, images, window=4, stride=0)


def test_overlay_returns_a_figure_and_checks_shapes():
    images = _squares(POSITIONS)
    fig = overlay(images, torch.rand(3, 16, 16), titles=["a", "b", "c"])
    assert len(fig.axes) == 3
    fig = overlay(torch.rand(2, 3, 16, 16), torch.randn(2, 16, 16), mean=[0.5] * 3, std=[0.2] * 3)
    assert fig is not None
    with pytest.raises(ValueError, match="agree"):
        overlay(images, torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="titles"):
        overlay(images, torch.rand(3, 16, 16), titles=["a"])


# -- bad input that used to fail obscurely (issue 9, section 1) ------------------------------


def test_an_empty_batch_is_a_clear_error_not_a_captum_index_error():
    model = _rnn()
    tokens, lengths = _batch()
    with pytest.raises(ValueError, match="empty"):
        word_attributions(model, tokens[:0], lengths[:0], target=1)
    with pytest.raises(ValueError, match="empty"):
        explain_text(model, tokens[:0], lengths[:0], [], target=1)
    cnn, net = _small_cnn(), BrightSquareNet()
    with pytest.raises(ValueError, match="empty"):
        integrated_gradients(cnn, torch.randn(0, 3, 8, 8), target=1)
    with pytest.raises(ValueError, match="empty"):
        grad_cam(net, net.relu, _squares(POSITIONS)[:0], target=1)
    with pytest.raises(ValueError, match="empty"):
        occlusion(net, _squares(POSITIONS)[:0], target=1, window=4, stride=2)


def test_overlay_on_an_empty_batch_is_a_clear_error_not_a_zero_division():
    with pytest.raises(ValueError, match="empty"):
        overlay(torch.zeros(0, 1, 16, 16), torch.zeros(0, 16, 16))


@pytest.mark.parametrize("n_steps", [0, -3, 2.5])
def test_too_few_integration_steps_is_a_clear_error_not_an_assertion(n_steps):
    with pytest.raises(ValueError, match="n_steps"):
        integrated_gradients(_small_cnn(), torch.randn(2, 3, 8, 8), target=1, n_steps=n_steps)
    tokens, lengths = _batch()
    with pytest.raises(ValueError, match="n_steps"):
        word_attributions(_rnn(), tokens, lengths, target=1, n_steps=n_steps)


@pytest.mark.parametrize("target", [1.7, 1.0, torch.tensor([1.7, 0.2]), [0.5, 1.0, 0.0]])
def test_a_non_integer_target_is_an_error_never_rounded(target):
    images = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="target"):
        integrated_gradients(_small_cnn(), images, target=target[:2] if isinstance(target, list) else target)
    tokens, lengths = _batch()
    with pytest.raises(ValueError, match="target"):
        word_attributions(_rnn(), tokens, lengths, target=target if not isinstance(target, torch.Tensor)
                          else torch.tensor([1.7, 0.2, 0.9]))
