"""dlbook.train.transfer: freezing, head replacement, per-part learning rates, the linear probe."""

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from dlbook.models import count_parameters
from dlbook.models.vgg import vgg11
from dlbook.train import param_groups
from dlbook.train.transfer import fit_linear_probe, freeze, head_param_groups, replace_head


def test_freeze_stops_gradients_and_counts_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    assert freeze(model[:2]) == sum(p.numel() for p in model[:2].parameters()) == 3 * 4 * 9 + 4 + 8
    assert count_parameters(model, trainable_only=True) == 4 * 6 * 6 * 2 + 2
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert all(p.grad is None for p in model[:2].parameters())
    assert all(p.grad is not None for p in model[3].parameters())
    freeze(model, frozen=False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model)


def test_freeze_rejects_a_non_module():
    with pytest.raises(TypeError, match="nn.Module"):
        freeze([nn.Parameter(torch.zeros(1))])


def test_replace_head_keeps_the_backbone_and_changes_only_the_output():
    torch.manual_seed(0)
    model = vgg11(num_classes=5, width=0.125, hidden=(), dropout=0.0).eval()
    x = torch.randn(3, 3, 32, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    old = model.classifier[1]
    new = replace_head(model, "classifier.1", num_classes=3)
    assert model.classifier[1] is new and new is not old
    assert (new.in_features, new.out_features) == (old.in_features, 3) and new.weight.requires_grad
    after = model.state_dict()
    assert {k for k in before if not k.startswith("classifier.1")} == {k for k in after if not k.startswith("classifier.1")}
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("classifier.1"))
    features = model.avgpool(model.features(x)).flatten(1)          # (B, C): what the head sees
    assert torch.allclose(model(x), features @ new.weight.T + new.bias, atol=1e-6)


def test_replace_head_explains_a_wrong_name():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"no submodule 'head'.*\['0', '2'\]"):
        replace_head(model, "head", 3)
    with pytest.raises(TypeError, match="ReLU"):
        replace_head(model, "1", 3)
    with pytest.raises(ValueError, match="num_classes"):
        replace_head(model, "2", 0)


def test_head_param_groups_partition_the_trainable_parameters():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 2))
    freeze(model[0])
    groups = head_param_groups(model, model[3], lr=1e-2, backbone_lr=1e-4, weight_decay=0.1)
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(by_id) == sum(len(g["params"]) for g in groups) == len(trainable)  # no parameter twice
    # the same decay split as param_groups (the reference), and the lr from the part
    decay_of = {id(p): g["weight_decay"] for g in param_groups(model, 0.1) for p in g["params"]}
    head_ids = {id(p) for p in model[3].parameters()}
    for p in trainable:
        assert by_id[id(p)] == (1e-2 if id(p) in head_ids else 1e-4, decay_of[id(p)])


def test_head_param_groups_with_a_zero_backbone_rate_train_only_the_head():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    backbone = model[0].weight.clone()
    opt = torch.optim.SGD(head_param_groups(model, model[2], lr=0.1, backbone_lr=0.0))
    head = model[2].weight.clone()
    nn.functional.cross_entropy(model(torch.randn(16, 4)), torch.randint(0, 2, (16,))).backward()
    opt.step()
    assert torch.equal(model[0].weight, backbone) and not torch.equal(model[2].weight, head)


def test_head_param_groups_check_their_input():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="submodule"):
        head_param_groups(model, nn.Linear(8, 2), lr=0.1, backbone_lr=0.01)
    with pytest.raises(ValueError, match="backbone_lr"):
        head_param_groups(model, model[1], lr=0.1, backbone_lr=-1.0)


def test_linear_probe_matches_logistic_regression_on_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g) * 3
    y = torch.arange(3).repeat(100)
    x = (centres[y] + torch.randn(300, 16, generator=g)) * 100 + 1000  # large offset and scale: standardised away
    head, history, best = fit_linear_probe(x[:200], y[:200], x[200:], y[200:], epochs=30, seed=0)
    reference = LogisticRegression(max_iter=5000).fit(x[:200].numpy(), y[:200].numpy()).score(x[200:].numpy(),
                                                                                            y[200:].numpy())
    with torch.no_grad():
        ours = (head(x[200:]).argmax(1) == y[200:]).float().mean().item()
    assert ours == pytest.approx(best) and ours >= reference - 0.02 and ours > 0.95
    assert 1 <= len(history) <= 30


def test_linear_probe_checks_shapes():
    x, y = torch.randn(10, 4), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="val features 3"):
        fit_linear_probe(x, y, torch.randn(5, 3), y[:5])
    with pytest.raises(ValueError, match=r"train_features must be \(N, D\)"):
        fit_linear_probe(x[:, 0], y, x, y)
