"""dlbook.deploy.measure.compare_variants: one row per variant, accuracy and agreement that see a wrong variant, clear errors."""

import pytest
import torch
from torch import nn

from dlbook.deploy.measure import Variant, compare_variants


def _data():
    torch.manual_seed(0)
    x = torch.randn(32, 6)
    model = nn.Linear(6, 3).eval()
    y = model(x).argmax(1)                       # labels the model gets right
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]
    singles = [x[i:i + 1] for i in range(10)]
    return model, singles, batches


def test_rows_measure_every_variant_and_accuracy_tells_them_apart(tmp_path):
    model, singles, batches = _data()
    file = tmp_path / "w.pt"
    torch.save(model.state_dict(), file)
    class Negated(nn.Module):                    # a variant that changed the answers
        def forward(self, x):
            return -model(x)

    wrong = Negated()
    rows = compare_variants({"eager fp32": Variant(model, "fp32", file), "broken": Variant(wrong)},
                            singles, batches, batches, throughput_steps=2, warmup=2)
    assert [r["variant"] for r in rows] == ["eager fp32", "broken"]
    assert rows[0]["accuracy"] == 1.0 and rows[1]["accuracy"] < 0.5
    assert rows[0]["agreement"] == 1.0 and rows[1]["agreement"] == rows[1]["accuracy"]  # labels = the model's answers
    assert rows[0]["size (MiB)"] > 0 and rows[1]["size (MiB)"] is None
    for r in rows:
        assert r["batch-1 p50 (ms)"] > 0 and r["batch-1 p99 (ms)"] >= r["batch-1 p50 (ms)"]
        assert r["batched (images/s)"] > 0 and r["first call (s)"] >= 0


def test_bad_arguments_say_what_to_pass():
    model, singles, batches = _data()
    with pytest.raises(ValueError, match="no variants"):
        compare_variants({}, singles, batches, batches, throughput_steps=1)
    with pytest.raises(ValueError, match="leave none to time"):
        compare_variants({"m": Variant(model)}, singles[:3], batches, batches, throughput_steps=1, warmup=5)
    with pytest.raises(ValueError, match="precision"):
        Variant(model, "fp16")
