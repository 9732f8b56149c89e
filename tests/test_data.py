import collections
import numpy as np
import pytest
import torch

from gifd_lite import data
from gifd_lite.errors import GifdError


def test_test_split_in_sorted_class_order(cifar_test):
    assert len(cifar_test) == 10000
    assert cifar_test.images.shape == (10000, 32, 32, 3) and cifar_test.images.dtype == np.uint8
    assert np.all(np.diff(cifar_test.labels) >= 0) or "torchvision" in cifar_test.source
    if "image folder" in cifar_test.source:
        assert [int(cifar_test.labels[i]) for i in range(0, 10000, 1000)] == list(range(10))


def test_victim_batch_has_distinct_labels(cifar_test):
    x, y, idx = data.victim_batch(cifar_test, 5, 8)
    assert x.shape == (8, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert len(set(y.tolist())) == 8 and idx[0] == 5
    with pytest.raises(GifdError, match="out of range"):
        data.victim_batch(cifar_test, 10000)
    with pytest.raises(GifdError):
        data.victim_batch(cifar_test, 0, 11)


def test_normalize_round_trip():
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(data.denormalize(data.normalize(x)), x, atol=1e-6)


def test_missing_dataset_says_where_to_put_it(tmp_path):
    with pytest.raises(GifdError, match="GIFD_DATA"):
        data.load_cifar10("test", root=tmp_path, download=False)


def test_image_folder_cache_is_used_and_rebuilt(tmp_path, monkeypatch):
    from PIL import Image

    for i, name in enumerate(data.CIFAR10_CLASSES):
        d = tmp_path / "cifar10" / "test" / name
        d.mkdir(parents=True)
        Image.new("RGB", (32, 32), (i * 20, 0, 0)).save(d / "0000.png")
    monkeypatch.setenv("GIFD_CACHE", str(tmp_path / "cache"))
    first = data.load_cifar10("test", root=tmp_path, download=False)
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(first) == 10 and len(cached) == 1
    cached[0].write_bytes(b"corrupt")
    again = data.load_cifar10("test", root=tmp_path, download=False)
    assert np.array_equal(first.images, again.images)


def test_user_images_are_resized(tmp_path):
    from PIL import Image

    Image.new("RGB", (100, 60), (255, 0, 0)).save(tmp_path / "a.png")
    x = data.load_images([tmp_path / "a.png"])
    assert x.shape == (1, 3, 32, 32) and float(x[0, 0].mean()) == pytest.approx(1.0)


def test_data_root_is_the_checkout_s_data_folder_from_any_working_directory(monkeypatch, tmp_path):
    """A Jupyter kernel runs in notebooks/: without GIFD_DATA the default must not depend on the cwd."""
    from pathlib import Path

    monkeypatch.delenv("GIFD_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    root = data.data_root()
    assert root.is_absolute() and (root / "MANIFEST").exists()
    assert root == Path(data.__file__).resolve().parent.parent / "data"
    monkeypatch.setenv("GIFD_DATA", str(tmp_path))
    assert data.data_root() == tmp_path


def test_an_index_names_the_same_image_in_torchvision_batches_and_an_image_folder(tmp_path, monkeypatch):
    """torchvision keeps CIFAR-10's interleaved order; loaded, it is sorted by class like an image folder whose
    files number each class in the dataset's order, so ``--index`` means one image for both sources."""
    from PIL import Image

    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(10), 3))           # interleaved, as in the real batches
    images = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)

    class FakeCIFAR10:                                               # torchvision's class without its md5 checks
        def __init__(self, root, train, download):
            self.data, self.targets = images, labels.tolist()

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    (tmp_path / "tv" / "cifar-10-batches-py").mkdir(parents=True)
    from_batches = data.load_cifar10("test", root=tmp_path / "tv")
    counters = collections.Counter()
    for image, label in zip(images, labels):                         # the mirror: cifar10/test/<class>/NNNN.png
        folder = tmp_path / "folder" / "cifar10" / "test" / data.CIFAR10_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{counters[label]:04d}.png")
        counters[label] += 1
    monkeypatch.setenv("GIFD_CACHE", str(tmp_path / "cache"))
    from_folder = data.load_cifar10("test", root=tmp_path / "folder")
    assert np.array_equal(from_batches.labels, from_folder.labels)
    assert np.array_equal(from_batches.images, from_folder.images)
    assert list(from_batches.labels[:3]) == [0, 0, 0] and list(from_batches.labels[3:6]) == [1, 1, 1]
