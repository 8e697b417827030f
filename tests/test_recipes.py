"""dlbook.recipes.cifar10: chapter 4.1's recipes build what they say, and bad values are refused."""

import pytest
import torch

from dlbook.data import Cutout, RandomCrop
from dlbook.recipes.cifar10 import (FAST, FIRST, VGGRecipe, epochs_for_budget, images_per_second, search_tables,
                                    translate, tta_views)


def test_fast_builds_a_linear_head_with_scaled_logits_and_first_the_dropout_head():
    fast, first = FAST.model(), FIRST.model()
    assert [type(m).__name__ for m in fast.classifier] == ["Flatten", "Linear"]
    assert any(type(m).__name__ == "Dropout" for m in first.classifier)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    unscaled = FAST.replace(logit_scale=1.0).model()
    unscaled.load_state_dict(fast.state_dict())
    fast.eval(), unscaled.eval()
    assert torch.allclose(fast(x), unscaled(x) * 0.125, atol=1e-6)


def test_schedule_warms_up_from_zero_to_the_peak_and_decays_to_zero():
    recipe = FAST.replace(epochs=2, peak_lr=0.4, warmup=0.25)
    opt = recipe.optimizer(recipe.model())
    sched = recipe.schedule(opt, steps_per_epoch=4)   # 8 steps, 2 of warm-up
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(0.4) and lrs.index(max(lrs)) == 2
    assert lrs[-1] == pytest.approx(0.4 / 6) and opt.param_groups[0]["lr"] == 0.0
    decays = [g["weight_decay"] for g in opt.param_groups]
    assert sorted(decays) == [0.0, 5e-4] and opt.defaults["nesterov"]


def test_train_transform_follows_the_recipe():
    assert any(isinstance(t, Cutout) for t in FAST.replace(cutout=8).train_transform().transforms)
    assert not any(isinstance(t, Cutout) for t in FAST.replace(cutout=0).train_transform().transforms)
    crop = next(t for t in FAST.replace(crop_padding=2).train_transform().transforms if isinstance(t, RandomCrop))
    assert crop.padding == 2
    out = FAST.train_transform()(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(peak_lr=0.0), dict(warmup=1.0), dict(label_smoothing=1.0),
                                 dict(crop_padding=-1), dict(tta="mirror"), dict(momentum=1.0)])
def test_bad_recipes_are_refused_with_the_field_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        VGGRecipe(**bad)


def test_tta_views_are_what_their_names_say():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    assert tta_views("none") is None
    flips = tta_views("flip")
    assert len(flips) == 2 and torch.equal(flips[0](x), x) and torch.equal(flips[1](x), x.flip(3))
    six = tta_views("flip+translate")
    assert len(six) == 6 and all(v(x).shape == x.shape for v in six)
    shifted = translate(2, 2)(x)
    assert torch.equal(shifted[..., 2:, 2:], x[..., :-2, :-2]) and shifted[..., :2, :].abs().sum() == 0
    with pytest.raises(ValueError, match="tta"):
        tta_views("rotate")


def test_epochs_for_budget():
    assert epochs_for_budget(200.0, 45_000, 2700) == 9           # 2700 s x 0.8 x 200 / 45,000 = 9.6
    assert epochs_for_budget(380.0, 45_000, 2700) == 18          # 18.24
    assert epochs_for_budget(200.0, 45_000, 2700, margin=0.9) == 10   # 10.8
    assert epochs_for_budget(1.0, 45_000, 60) == 1               # at least one
    with pytest.raises(ValueError, match="images_per_s"):
        epochs_for_budget(0.0, 45_000, 2700)


def test_images_per_second_times_the_recipes_model():
    recipe = FAST.replace(batch_size=8)
    x, y = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (32,))
    assert images_per_second(recipe, x, y, "cpu", steps=1, warmup=1, precision="fp32") > 0
    with pytest.raises(ValueError, match="at least one batch"):
        images_per_second(recipe, x[:4], y[:4], "cpu")


def test_as_dict_is_plain_values():
    d = FIRST.as_dict()
    assert d["hidden"] == [512] and d["peak_lr"] == 0.1 and isinstance(d["notes"], str)


def _search_run(date, epochs, subset, candidates, quick=False, load=(0.5, 2.0)):
    return {"date": date, "machine": {"device": "CPU (2 cores)"}, "load_average_before": [load[0]],
            "load_average_after": [load[1]],
            "settings": {"epochs": epochs, "subset": subset, "seed": 0, "quick": quick, "val_size": 5000},
            "candidates": {name: {"train_s": 100.0, "val_accuracy": {"none": acc, "flip": acc + 0.01,
                                                                     "flip+translate": acc}}
                           for name, acc in candidates.items()}}


def test_search_tables_keep_each_proxy_apart_and_leave_quick_runs_out():
    runs = [_search_run("2026-12-02 21:10 UTC", 16, 15000, {"page+pad2": 0.85}),
            _search_run("2026-12-02 02:31 UTC", 3, 20000, {"page": 0.68, "page+pad2": 0.70}),
            _search_run("2026-12-02 21:45 UTC", 16, 15000, {"page": 0.86}, load=(0.1, 1.9)),
            _search_run("2026-12-02 22:00 UTC", 1, 256, {"page": 0.20}, quick=True)]
    short, long = search_tables(runs).split("\n\n")
    assert "proxy: 3 epochs on 20,000" in short and "+2.00" in short and "16 epochs" not in short
    assert "proxy: 16 epochs on 15,000" in long and "load 0.1 before and 1.9 after" in long
    assert long.index("21:10 UTC") < long.index("21:45 UTC")   # the files of one search, oldest first
    row = next(line for line in long.splitlines() if line.startswith("page+pad2"))
    assert row.split()[1:3] == ["85.00%", "-1.00"]             # against page, from the other file
    assert "256" not in search_tables(runs) and "proxy: 1 epoch on 256" in search_tables(runs, keep_quick=True)


def test_search_tables_without_the_baseline_or_any_run():
    table = search_tables([_search_run("2026-12-02 21:10 UTC", 16, 15000, {"page+cutout8": 0.87})])
    assert "vs page" not in table and "87.00%" in table and "near 87%" in table
    assert search_tables([]) == "no recipe search results (quick runs are left out)"
    unfinished = _search_run("2026-12-02 21:10 UTC", 16, 15000, {"page": 0.87})
    del unfinished["load_average_after"]                        # the script reports before it adds this
    assert "load 0.5 before\n" in search_tables([unfinished])


def test_a_whitened_recipe_sets_its_first_layer_from_training_images():
    recipe = FAST.replace(whiten=True)
    with pytest.raises(ValueError, match="training images"):
        recipe.model()
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(0)
    first = recipe.model(images).features[0]
    torch.manual_seed(0)
    plain = FAST.model(images).features[0]   # without whiten the images are not used
    assert not first.weight.requires_grad and plain.weight.requires_grad
    assert torch.equal(first.weight[27:54], -first.weight[:27]) and torch.equal(first.weight[54:], plain.weight[54:])
    assert len(recipe.optimizer(recipe.model(images)).param_groups[0]["params"]) == 7 + 1  # the 7 trained conv weights and the linear one
