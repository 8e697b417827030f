"""TensorLoader, batch transforms and stratified splits on small known inputs."""

import pytest
import torch

from dlbook.data import (Compose, Normalize, RandomCrop, RandomHorizontalFlip, TensorLoader, stratified_split,
                         to_float)
from dlbook.data.transforms import channel_stats


def epoch_orders(loader, epochs=2):
    return [torch.cat([yb for _, yb in loader]).tolist() for _ in range(epochs)]


# -- TensorLoader -------------------------------------------------------------------------------------


def test_every_example_once_per_epoch_and_len():
    x, y = torch.arange(10).view(10, 1), torch.arange(10)
    loader = TensorLoader(x, y, batch_size=4, shuffle=True)
    assert len(loader) == 3 and len(TensorLoader(x, y, 4, drop_last=True)) == 2
    for order in epoch_orders(loader, 3):
        assert sorted(order) == list(range(10))
    assert [len(yb) for _, yb in TensorLoader(x, y, 4, drop_last=True)] == [4, 4]
    assert epoch_orders(TensorLoader(x, y, 4), 1) == [list(range(10))]  # no shuffle: input order
    for xb, yb in loader:
        assert xb.view(-1).equal(yb)  # inputs stay paired with their targets


def test_shuffle_is_reproducible_new_each_epoch_and_resumable():
    x, y = torch.zeros(100, 2), torch.arange(100)
    first, second = epoch_orders(TensorLoader(x, y, 16, shuffle=True, seed=3))
    assert first != second  # a new permutation each epoch
    assert epoch_orders(TensorLoader(x, y, 16, shuffle=True, seed=3)) == [first, second]  # same seed, same epochs
    assert epoch_orders(TensorLoader(x, y, 16, shuffle=True, seed=4))[0] != first
    resumed = TensorLoader(x, y, 16, shuffle=True, seed=3)
    resumed.set_epoch(1)  # what Trainer does when it resumes at the second epoch
    assert epoch_orders(resumed, 1) == [second]


def test_transform_runs_on_whole_uint8_batches():
    x = torch.full((5, 3, 4, 4), 255, dtype=torch.uint8)
    calls = []

    def spy(batch):
        calls.append(batch.shape[0])
        return to_float(batch)

    batches = [xb for xb, _ in TensorLoader(x, torch.zeros(5), batch_size=2, transform=spy)]
    assert calls == [2, 2, 1] and all(b.dtype == torch.float32 and b.eq(1).all() for b in batches)
    assert x.eq(255).all()  # the data in memory is untouched


def test_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match="10 examples but y has 9"):
        TensorLoader(torch.zeros(10), torch.zeros(9), 2)
    with pytest.raises(ValueError, match="batch_size=0"):
        TensorLoader(torch.zeros(10), torch.zeros(10), 0)
    with pytest.raises(TypeError, match="tensors"):
        TensorLoader([1, 2], torch.zeros(2), 1)


# -- transforms ---------------------------------------------------------------------------------------


def test_to_float_and_normalize_numbers():
    x = torch.tensor([0, 51, 102, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    assert to_float(x).view(-1).tolist() == pytest.approx([0.0, 0.2, 0.4, 1.0])
    rgb = torch.stack([torch.full((2, 2), v) for v in (0.5, 0.25, 1.0)]).unsqueeze(0)  # (1, 3, 2, 2)
    out = Normalize(mean=(0.5, 0.0, 0.5), std=(0.5, 0.25, 0.25))(rgb)
    assert out[0, :, 0, 0].tolist() == pytest.approx([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="3 channels but the batch has 1"):
        Normalize((0.5,) * 3, (0.5,) * 3)(torch.zeros(1, 1, 2, 2))
    with pytest.raises(TypeError, match="to_float first"):
        Normalize((0.5,), (0.5,))(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unsqueeze"):
        Normalize((0.5,), (0.5,))(torch.zeros(1, 2, 2))


def test_horizontal_flip_of_an_asymmetric_image():
    image = torch.arange(12, dtype=torch.uint8).view(1, 1, 3, 4)  # rows 0 1 2 3 / 4 5 6 7 / 8 9 10 11
    assert RandomHorizontalFlip(p=1.0)(image)[0, 0].tolist() == [[3, 2, 1, 0], [7, 6, 5, 4], [11, 10, 9, 8]]
    assert RandomHorizontalFlip(p=0.0)(image).equal(image)
    batch = image.float().repeat(64, 1, 1, 1)
    out = RandomHorizontalFlip(0.5, generator=torch.Generator().manual_seed(0))(batch)
    flipped = out[:, 0, 0, 0] == 3
    assert ((out[:, 0, 0, 0] == 0) | flipped).all() and 10 < int(flipped.sum()) < 54  # per sample, about half
    again = RandomHorizontalFlip(0.5, generator=torch.Generator().manual_seed(0))(batch)
    assert again.equal(out)  # reproducible from its generator


def test_random_crop_with_padding_keeps_size_and_takes_shifted_windows():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5).repeat(16, 1, 1, 1)  # (32, 1, 5, 5)
    out = RandomCrop(5, padding=2, generator=g)(x)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):  # each output is the 5x5 window of the padded input at some offset
        matches = [(t, l) for t in range(5) for l in range(5) if padded[i, :, t:t + 5, l:l + 5].equal(out[i])]
        assert matches, f"sample {i} is not a window of its padded input"
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets are drawn per sample, not once per batch
    small = RandomCrop((2, 3))(torch.zeros(4, 3, 8, 8, dtype=torch.uint8))
    assert small.shape == (4, 3, 2, 3) and small.dtype == torch.uint8
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(9)(torch.zeros(1, 1, 8, 8))


def test_compose_chains_in_order():
    pipeline = Compose([to_float, RandomCrop(4, padding=1), RandomHorizontalFlip(), Normalize((0.5,), (0.5,))])
    out = pipeline(torch.full((3, 1, 4, 4), 255, dtype=torch.uint8))
    assert out.shape == (3, 1, 4, 4) and out.dtype == torch.float32
    assert set(out.unique().tolist()) <= {-1.0, 1.0}  # zero padding -> -1, white pixels -> 1
    assert "to_float" in repr(pipeline) and "RandomCrop" in repr(pipeline)


def test_channel_stats_match_direct_computation():
    images = torch.randint(0, 256, (50, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = channel_stats(images)
    x = images.double() / 255
    assert mean == pytest.approx(x.mean((0, 2, 3)).tolist())
    assert std == pytest.approx(x.std((0, 2, 3), unbiased=False).tolist())


# -- stratified split ---------------------------------------------------------------------------------


def test_stratified_split_of_cifar_sized_labels_gives_500_per_class():
    labels = torch.arange(10).repeat_interleave(5000)  # sorted by class, like the JPEG copy
    train_idx, val_idx = stratified_split(labels, val_size=5000, seed=0)
    assert len(train_idx) == 45_000 and len(val_idx) == 5000
    assert labels[val_idx].bincount().tolist() == [500] * 10
    assert labels[train_idx].bincount().tolist() == [4500] * 10
    assert torch.cat([train_idx, val_idx]).sort().values.equal(torch.arange(50_000))  # disjoint, complete
    assert stratified_split(labels, 0.1, seed=0)[1].equal(val_idx)  # fraction or size: same split
    assert stratified_split(labels, val_size=5000, seed=1)[1].tolist() != val_idx.tolist()


def test_stratified_split_keeps_proportions_of_imbalanced_classes_exactly():
    labels = [0] * 700 + [1] * 200 + [2] * 100
    _, val_idx = stratified_split(labels, 0.2, seed=0)
    assert torch.tensor(labels)[val_idx].bincount().tolist() == [140, 40, 20]
    _, val_idx = stratified_split(labels, val_size=7, seed=0)  # quotas 4.9, 1.4, 0.7 -> 5, 1, 1
    assert torch.tensor(labels)[val_idx].bincount().tolist() == [5, 1, 1]


def test_stratified_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        stratified_split([0, 1, 0, 1])
    with pytest.raises(ValueError, match="exactly one"):
        stratified_split([0, 1, 0, 1], 0.5, val_size=2)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        stratified_split([0, 1, 0, 1], 1.5)
    with pytest.raises(ValueError, match="val_size=4"):
        stratified_split([0, 1, 0, 1], val_size=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_and_transforms_keep_batches_on_the_gpu():
    x = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, device="cuda")
    y = torch.arange(300, device="cuda")
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), to_float, Normalize((0.5,) * 3, (0.25,) * 3)])
    loader = TensorLoader(x, y, batch_size=128, shuffle=True, transform=augment)
    batches = list(loader)
    assert all(xb.is_cuda and yb.is_cuda and xb.dtype == torch.float32 for xb, yb in batches)
    assert sorted(torch.cat([yb for _, yb in batches]).tolist()) == list(range(300))
    cpu = TensorLoader(x.cpu(), y.cpu(), batch_size=128, shuffle=True)
    assert [yb.tolist() for _, yb in cpu] == [yb.tolist() for _, yb in batches]  # same order on any device


def test_cutout_blanks_one_square_per_image():
    """Chapter 4.1's recipe (ported from tests/test_vgg.py when Cutout moved from data/pipeline.py)."""
    from dlbook.data import Cutout

    x = torch.ones(500, 3, 32, 32)
    out = Cutout(8, generator=torch.Generator().manual_seed(0))(x)
    blanked = (out == 0).all(dim=1)  # (B, H, W): every channel blanked together
    per_image = blanked.flatten(1).sum(1)
    assert per_image.max() == 64 and per_image.min() >= 16  # a full 8x8 square, or clipped at a corner
    rows, cols = blanked.any(2), blanked.any(1)  # the blanked pixels form one rectangle
    assert torch.equal(per_image, rows.sum(1) * cols.sum(1))
    assert torch.equal(x, torch.ones_like(x))  # the input is not modified
    assert torch.equal(Cutout(8, p=0.0)(x), x)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        Cutout(8)(torch.ones(3, 32, 32))
    with pytest.raises(ValueError, match="size=0"):
        Cutout(0)
    assert "Cutout(size=8" in repr(Compose([to_float, Cutout(8)]))
