"""VGG: the same convolution stack as torchvision's, shapes, parameter count, training, Captum, bad input."""

import pytest
import torch
import torchvision
from torch import nn

from dlbook.models.vgg import CFGS, VGG, VGGConfig, make_layers, patch_whitening_, vgg11, vgg13, vgg16, vgg19

TORCHVISION_KEYS = {11: "A", 13: "B", 16: "D", 19: "E"}


def signature(layers: nn.Module) -> list[tuple]:
    """The layer sequence with what defines each layer (not its weights)."""
    out = []
    for m in layers:
        if isinstance(m, nn.Conv2d):
            out.append(("Conv2d", m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.bias is not None))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("BatchNorm2d", m.num_features, m.eps, m.momentum))
        elif isinstance(m, nn.MaxPool2d):
            out.append(("MaxPool2d", m.kernel_size, m.stride))
        else:
            out.append((type(m).__name__,))
    return out


def test_vgg11_features_match_torchvision_vgg11_bn():
    ours = vgg11().features
    theirs = torchvision.models.vgg11_bn(weights=None).features
    assert signature(ours) == signature(theirs)
    # same module indices and tensor shapes: torchvision's (ImageNet) weights load into our features
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_configurations_match_torchvision(depth):
    from torchvision.models.vgg import cfgs, make_layers as tv_make_layers

    assert CFGS[depth] == cfgs[TORCHVISION_KEYS[depth]]
    for bn in (True, False):
        assert signature(make_layers(CFGS[depth], batch_norm=bn)) == signature(tv_make_layers(cfgs[TORCHVISION_KEYS[depth]], bn))
    convs = sum(isinstance(m, nn.Conv2d) for m in VGG(VGGConfig(depth=depth)).features)
    assert convs + 3 == depth  # the paper counts weight layers: convolutions + its three FC layers


@pytest.mark.parametrize("build", [vgg11, vgg13, vgg16, vgg19])
def test_output_shapes(build):
    model = build(num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
        assert model(torch.randn(1, 3, 64, 48)).shape == (1, 7)  # global average pooling: any size >= 32


def test_parameter_count():
    # convolutions 9,220,480 + batch norm 5,504 + head 512*512+512 + 512*10+10
    assert sum(p.numel() for p in vgg11().parameters()) == 9_493_770
    assert sum(p.numel() for p in vgg11(hidden=()).parameters()) == 9_225_984 + 5_130
    assert sum(p.numel() for p in vgg11(batch_norm=False).parameters()) == 9_493_770 - 5_504


def test_head_options_and_dropout():
    assert not any(isinstance(m, nn.Dropout) for m in vgg11(dropout=0.0).modules())
    assert [type(m).__name__ for m in vgg11(hidden=(), dropout=0.2).classifier] == ["Flatten", "Dropout", "Linear"]
    model = vgg11(hidden=(256, 128), dropout=0.5)
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [256, 128, 10]
    model.eval()  # dropout off: deterministic
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_one_relu_module_per_use_and_none_in_place():
    """Captum's layer attributions hook modules: each ReLU must be its own module, used once."""
    model = VGG(VGGConfig.tiny()).eval()
    calls: dict[nn.Module, int] = {}
    hooks = [m.register_forward_hook(lambda m, i, o: calls.__setitem__(m, calls.get(m, 0) + 1))
             for m in model.modules() if not list(m.children())]
    model(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert calls and set(calls.values()) == {1}
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 8 + 1 and not any(m.inplace for m in relus)
    assert model.last_conv is [m for m in model.features if isinstance(m, nn.Conv2d)][-1]


def test_grad_cam_on_last_conv():
    from captum.attr import LayerGradCam

    torch.manual_seed(0)
    model = VGG(VGGConfig.tiny()).eval()
    cam = LayerGradCam(model, model.last_conv).attribute(torch.randn(2, 3, 32, 32), target=3)
    assert cam.shape == (2, 1, 2, 2)  # the last conv sees 2x2 maps of a 32x32 image


def test_short_training_lowers_the_loss():
    """A tiny VGG through dlbook's Trainer (channels-last, automatic precision) learns a learnable task."""
    from dlbook.data import TensorLoader
    from dlbook.train import Trainer

    torch.manual_seed(0)
    y = torch.arange(4).repeat(16)  # 4 classes, 16 images each
    x = torch.randn(len(y), 3, 32, 32) * 0.5
    x[torch.arange(len(y)), y % 3] += (y // 3 * 2 - 1).view(-1, 1, 1).float()  # class = a colour channel shift
    model = VGG(VGGConfig.tiny(num_classes=4, dropout=0.0))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), device="cpu", channels_last=True, progress=False)
    history = trainer.fit(TensorLoader(x, y, 16, shuffle=True), epochs=6)
    losses = [r["train_loss"] for r in history.records]
    assert losses[-1] < 0.5 * losses[0], losses


def test_bad_input_is_explained():
    model = VGG(VGGConfig.tiny())
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="H, W >= 32"):
        model(torch.randn(2, 3, 16, 16))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="depth 11, 13, 16 or 19"):
        VGG(VGGConfig(depth=12))
    with pytest.raises(ValueError, match="dropout"):
        vgg11(dropout=1.0)
    with pytest.raises(ValueError, match="bad entry"):
        make_layers([64, "P"])


def test_logit_scale_multiplies_the_logits_and_must_be_positive():
    torch.manual_seed(0)
    plain = VGG(VGGConfig.tiny()).eval()
    scaled = VGG(VGGConfig.tiny(logit_scale=0.125)).eval()
    scaled.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(scaled(x), plain(x) * 0.125, atol=1e-6)
    with pytest.raises(ValueError, match="logit_scale"):
        VGGConfig(logit_scale=0.0)


def test_patch_whitening_whitens_the_patches_and_freezes_the_weight():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(3, 3, generator=g)  # correlated colour channels, smoothed in space: patches far from white
    images = torch.einsum("ij,njhw->nihw", mix, torch.randn(16, 3, 34, 34, generator=g))
    images = 10 * torch.nn.functional.avg_pool2d(images, 3, stride=1)  # (16, 3, 32, 32); x10: eigenvalues >> eps
    conv = nn.Conv2d(3, 64, 3, padding=0)
    before = conv.weight[54:].detach().clone()
    assert patch_whitening_(conv, images, generator=g) == 54
    out = torch.nn.functional.conv2d(images, conv.weight[:27]).permute(0, 2, 3, 1).reshape(-1, 27)
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(27), atol=0.05)  # the 27 filters whiten the 3x3 patches
    assert torch.equal(conv.weight[27:54], -conv.weight[:27]) and torch.equal(conv.weight[54:], before)
    assert not conv.weight.requires_grad and conv.bias.requires_grad


def test_patch_whitening_refuses_too_few_filters_and_raw_images():
    with pytest.raises(ValueError, match="54 filters"):
        patch_whitening_(nn.Conv2d(3, 32, 3), torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="normalised float"):
        patch_whitening_(nn.Conv2d(3, 64, 3), torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
