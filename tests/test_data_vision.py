"""Image datasets on the real files: Fashion-MNIST (Debian package) and CIFAR-10 (JPEG offline copy)."""

import io
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dlbook.data import (CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN,
                         FASHION_MNIST_STD, ChecksumError, CorruptDataError, MissingDataError, cifar10_image_dataset,
                         decode_cifar10_archive, load_cifar10, load_fashion_mnist, load_mnist)
from dlbook.data import cifar10
from dlbook.data.transforms import channel_stats
from dlbook.data.vision import parse_idx

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DLBOOK_DATA") or ROOT.parent / "shared" / "data")
ARCHIVE = DATA / "cifar10-jpeg.tar.xz"
FASHION = Path("/usr/share/datasets/fashion-mnist")

needs_cifar = pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"{ARCHIVE} not found: set DLBOOK_DATA")
needs_fashion = pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
                                   reason="apt-get install dataset-fashion-mnist")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Offline only: no DLBOOK_DATA, the Debian folder, an empty cache, no downloads."""
    monkeypatch.delenv("DLBOOK_DATA", raising=False)
    monkeypatch.delenv("DLBOOK_MIRROR", raising=False)
    monkeypatch.setenv("DLBOOK_OFFLINE", "1")
    monkeypatch.setenv("DLBOOK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- MNIST family -----------------------------------------------------------------------------------


@needs_fashion
def test_fashion_mnist_from_the_debian_package(env):
    for split, n in (("test", 10_000), ("train", 60_000)):
        images, labels = load_fashion_mnist(split)
        assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert labels.bincount().tolist() == [n // 10] * 10
        assert int(images.max()) == 255 and int(images.min()) == 0
        if split == "test":
            assert FASHION_MNIST_CLASSES[int(labels[0])] == "Ankle boot"  # the first test image
    mean, std = channel_stats(images)  # the training images
    assert mean == pytest.approx(FASHION_MNIST_MEAN, abs=5e-5) and std == pytest.approx(FASHION_MNIST_STD, abs=5e-5)
    assert not env.exists()  # read in place: nothing cached


def test_mnist_without_a_copy_says_where_it_looked(env):
    with pytest.raises(MissingDataError) as info:
        load_mnist("train")
    assert "mnist/train-images-idx3-ubyte.gz" in str(info.value) and "DLBOOK_DATA" in str(info.value)
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_mnist("validation")


def test_parse_idx_reads_the_header_and_rejects_bad_files():
    header = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    array = parse_idx(header + bytes(range(12)))
    assert array.shape == (2, 2, 3) and array[1, 1, 2] == 11
    with pytest.raises(CorruptDataError, match="magic"):
        parse_idx(b"\x1f\x8b\x08\x00" + bytes(20), "x.gz")
    with pytest.raises(CorruptDataError, match="holds 11 bytes"):
        parse_idx(header + bytes(11), "short")


@pytest.mark.parametrize("dims", [
    [2**32 - 1] * 3,            # 2^96 bytes: np.prod overflows int64
    [2**16, 2**16, 2**16, 2**16],  # exactly 2^64: np.prod wraps to 0, which "matches" an empty payload
    [2**31] * 8,
])
def test_parse_idx_huge_dimensions_are_corrupt_data_not_an_overflow(dims):
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    with pytest.raises(CorruptDataError, match="huge.idx: header says shape"):
        parse_idx(header, "huge.idx")
    with pytest.raises(CorruptDataError, match="huge.idx: header says shape"):
        parse_idx(header + bytes(16), "huge.idx")


# -- CIFAR-10 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """CIFAR-10 decoded once from the real JPEG archive into a fresh cache; yields (cache, first load seconds)."""
    cache = tmp_path_factory.mktemp("cifar-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLBOOK_DATA", str(DATA))
        mp.setenv("DLBOOK_CACHE", str(cache))
        mp.setenv("DLBOOK_OFFLINE", "1")
        mp.delenv("DLBOOK_MIRROR", raising=False)
        before = listing(DATA)
        start = time.perf_counter()
        load_cifar10("train")
        seconds = time.perf_counter() - start
        assert listing(DATA) == before  # the offline folder is only read
        print(f"\nfirst CIFAR-10 load (decode 60,000 JPEGs): {seconds:.1f} s")
        yield cache, seconds


@needs_cifar
def test_cifar10_shapes_order_and_balance(cifar):
    for split, n in (("train", 50_000), ("test", 10_000)):
        images, labels = load_cifar10(split)
        assert images.shape == (n, 3, 32, 32) and images.dtype == torch.uint8 and images.is_contiguous()
        assert labels.shape == (n,) and labels.dtype == torch.int64
        assert labels.bincount().tolist() == [n // 10] * 10
        assert bool((labels[1:] >= labels[:-1]).all())  # sorted by class, then file name
    assert cifar10.cifar10_source() == cifar10.JPEG_ARCHIVE
    mean, std = channel_stats(load_cifar10("train")[0])
    assert mean == pytest.approx(CIFAR10_MEAN, abs=5e-5) and std == pytest.approx(CIFAR10_STD, abs=5e-5)


@needs_cifar
def test_cifar10_pixels_match_pil_on_the_archive(cifar):
    """The first JPEG in the stream, decoded by PIL's usual path, is where the sorted order puts it."""
    from PIL import Image

    with tarfile.open(ARCHIVE, "r|xz") as tar:
        member = next(m for m in tar if m.isfile())
        data = tar.extractfile(member).read()
    split, folder, filename = member.name.split("/")  # e.g. train/bird/0338.jpg
    index = CIFAR10_CLASSES.index(folder) * (5000 if split == "train" else 1000) + int(filename[:4])
    images, labels = load_cifar10(split)
    expected = np.array(Image.open(io.BytesIO(data)).convert("RGB"))  # (32, 32, 3)
    assert images[index].permute(1, 2, 0).numpy().tolist() == expected.tolist()
    assert CIFAR10_CLASSES[int(labels[index])] == folder


@needs_cifar
def test_cifar10_second_load_is_under_a_second(cifar):
    cache, first = cifar
    start = time.perf_counter()
    images, labels = load_cifar10("train")
    seconds = time.perf_counter() - start
    print(f"\nCIFAR-10 train from the cache: {seconds:.2f} s (first load {first:.1f} s)")
    assert seconds < 1.0
    names = listing(cache / "cifar10")
    assert names == [f"cifar10-jpeg-{cifar10.JPEG_ARCHIVE.sha256[:16]}-v1-{s}.pt" for s in ("test", "train")]


@needs_cifar
def test_cifar10_cache_is_keyed_by_source_and_rebuilt_if_damaged(cifar, monkeypatch, tmp_path):
    cache, _ = cifar
    monkeypatch.setenv("DLBOOK_CACHE", str(cache))
    jpeg, python = cifar10.JPEG_ARCHIVE, cifar10.PYTHON_ARCHIVE
    assert cifar10._decoded_path(python, "train") != cifar10._decoded_path(jpeg, "train")
    assert cifar10._read_decoded(cifar10.PYTHON_ARCHIVE, "train") is None  # another source never reuses it
    damaged = tmp_path / "damaged"
    target = damaged / "cifar10" / cifar10._decoded_path(cifar10.JPEG_ARCHIVE, "test").name
    target.parent.mkdir(parents=True)
    target.write_bytes(cifar10._decoded_path(cifar10.JPEG_ARCHIVE, "test").read_bytes()[:1000])
    monkeypatch.setenv("DLBOOK_CACHE", str(damaged))
    assert cifar10._read_decoded(cifar10.JPEG_ARCHIVE, "test") is None  # unreadable: decode again, no crash


@needs_cifar
def test_cifar10_image_dataset_is_the_textbook_pil_path(cifar):
    from PIL import Image
    from torchvision import transforms as T

    images, labels = load_cifar10("test")
    dataset = cifar10_image_dataset("test")
    image, label = dataset[1234]
    assert isinstance(image, Image.Image) and image.size == (32, 32) and image.mode == "RGB"
    assert label == int(labels[1234]) and len(dataset) == 10_000 and dataset.classes == list(CIFAR10_CLASSES)
    dataset.transform = T.ToTensor()
    xb, yb = next(iter(torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=False)))
    assert xb.shape == (64, 3, 32, 32) and yb.dtype == torch.int64
    assert torch.allclose(xb, images[:64].float() / 255) and yb.equal(labels[:64])


@needs_cifar
def test_corrupted_archive_is_a_checksum_error_and_undecodable(env, tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    offline.mkdir()
    data = bytearray(ARCHIVE.read_bytes())
    data[5_000:5_016] = bytes(16)  # sixteen bytes zeroed near the start
    (offline / ARCHIVE.name).write_bytes(bytes(data))
    monkeypatch.setenv("DLBOOK_DATA", str(offline))
    with pytest.raises(ChecksumError) as info:
        load_cifar10("train")
    assert str(offline / ARCHIVE.name) in str(info.value) and "Replace it" in str(info.value)
    assert not env.exists()  # nothing decoded or cached
    with pytest.raises(CorruptDataError, match=ARCHIVE.name):
        decode_cifar10_archive(offline / ARCHIVE.name)
    truncated = tmp_path / "truncated.tar.xz"
    truncated.write_bytes(bytes(data[: len(data) // 50]))
    with pytest.raises(CorruptDataError, match="truncated.tar.xz"):
        decode_cifar10_archive(truncated)


def _jpeg(size=(32, 32), color=(200, 10, 10)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=75)
    return buffer.getvalue()


def _tar(path: Path, members: dict[str, bytes], mode="w:xz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_decoder_rejects_unknown_classes_wrong_sizes_and_incomplete_archives(tmp_path):
    with pytest.raises(CorruptDataError, match="unknown class folder 'unicorn'"):
        decode_cifar10_archive(_tar(tmp_path / "a.tar.xz", {"train/unicorn/0001.jpg": _jpeg()}))
    with pytest.raises(CorruptDataError, match="8x8, not 32x32"):
        decode_cifar10_archive(_tar(tmp_path / "b.tar.xz", {"train/cat/0001.jpg": _jpeg((8, 8))}))
    with pytest.raises(CorruptDataError, match="expected 5,000 of each class"):
        decode_cifar10_archive(_tar(tmp_path / "c.tar.xz", {"train/cat/0001.jpg": _jpeg(),
                                                          "test/dog/0001.jpg": _jpeg()}))
    with pytest.raises(CorruptDataError, match="holds no CIFAR-10 images"):
        decode_cifar10_archive(_tar(tmp_path / "d.tar.gz", {"README": b"hello"}, "w:gz"))


def test_decoder_reads_the_original_python_batches(tmp_path):
    """A synthetic archive in the layout of cifar-10-python.tar.gz (zeros with marked pixels).

    The real batches are Python-2 pickles (protocol 2); the batches here use protocol 4 to
    stay fast, and the meta file uses protocol 2 so that path is read too.
    """
    rng = np.random.default_rng(0)
    members = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = np.zeros((10_000, 3072), dtype=np.uint8)
        data[:, 1024] = 7  # first pixel of the green plane: channel 1, row 0, column 0
        labels = rng.permutation(np.repeat(np.arange(10), 1000)).tolist()
        members[f"cifar-10-batches-py/{name}"] = pickle.dumps(
            {b"batch_label": name.encode(), b"labels": labels, b"data": data}, protocol=4)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, protocol=2)
    archive = _tar(tmp_path / "cifar-10-python.tar", members, "w")  # uncompressed: keeps the test fast
    decoded = decode_cifar10_archive(archive)
    images, labels = decoded["train"]
    assert images.shape == (50_000, 3, 32, 32) and labels.bincount().tolist() == [5000] * 10
    assert images[:, 1, 0, 0].eq(7).all() and images[:, 0].eq(0).all()
    assert labels[:10_000].tolist() == pickle.loads(members["cifar-10-batches-py/data_batch_1"])[b"labels"]
    assert decoded["test"][0].shape == (10_000, 3, 32, 32)


def test_decoder_refuses_pickles_that_run_code(tmp_path):
    evil = pickle.dumps({b"data": os.system})
    archive = _tar(tmp_path / "evil.tar.gz", {"cifar-10-batches-py/data_batch_1": evil}, "w:gz")
    with pytest.raises(CorruptDataError, match="refusing to unpickle"):
        decode_cifar10_archive(archive)


# -- the decoded cache: checked on load, never fatal to write ---------------------------------------


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    """A 30-image JPEG archive standing in for CIFAR-10 (2 train, 1 test image per class); returns the cache."""
    import hashlib

    from dlbook.data.sources import FileSpec

    members = {f"{split}/{name}/{i:04d}.jpg": _jpeg(color=(25 * c, 255 - 25 * c, 9 * i))
               for split, n in (("train", 2), ("test", 1)) for c, name in enumerate(CIFAR10_CLASSES) for i in range(n)}
    (tmp_path / "offline").mkdir()
    archive = _tar(tmp_path / "offline" / "cifar10-jpeg.tar.xz", members)
    spec = FileSpec(path=archive.name, sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    monkeypatch.setattr(cifar10, "SOURCES", (spec,))
    monkeypatch.setattr(cifar10, "_COUNTS", {"train": 20, "test": 10})
    monkeypatch.setenv("DLBOOK_DATA", str(archive.parent))
    monkeypatch.setenv("DLBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DLBOOK_OFFLINE", "1")
    return tmp_path / "cache", decode_cifar10_archive(archive)


def test_a_flipped_byte_in_the_decoded_cache_is_detected_and_decoded_again(tiny_cifar, caplog):
    cache, truth = tiny_cifar
    load_cifar10("train")  # decodes, caches both splits
    path = cifar10._decoded_path(cifar10.SOURCES[0], "test")
    data = bytearray(path.read_bytes())
    at = data.find(truth["test"][0].numpy().tobytes()[:64])  # the pixels, stored as raw bytes in the file
    assert at > 0
    data[at + 10] ^= 0x01  # one bit of one pixel
    path.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="dlbook.data.cifar10"):
        images, labels = load_cifar10("test")
    assert images.equal(truth["test"][0]) and labels.equal(truth["test"][1])
    assert str(path) in caplog.text and "decoding again" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="dlbook.data.cifar10"):
        assert load_cifar10("test")[0].equal(truth["test"][0])  # the cache was rewritten: read, no warning
    assert caplog.text == ""


@pytest.mark.parametrize("failure", ["ENOSPC", "torch RuntimeError"])
def test_a_full_cache_disk_costs_speed_not_the_result(tiny_cifar, monkeypatch, caplog, failure):
    import errno

    cache, truth = tiny_cifar
    if failure == "ENOSPC":
        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(os, "fsync", full)
    else:
        def full(obj, f, *args, **kwargs):
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")
        monkeypatch.setattr(torch, "save", full)
    with caplog.at_level("WARNING", logger="dlbook.data.cifar10"):
        images, labels = load_cifar10("train")
    assert images.equal(truth["train"][0]) and labels.equal(truth["train"][1])
    assert "could not cache" in caplog.text and "DLBOOK_CACHE" in caplog.text
    assert [p for p in cache.rglob("*") if p.is_file()] == []  # no half-written file or temp left
