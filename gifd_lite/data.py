"""CIFAR-10 and user images: loading, caching, normalisation and victim batches (notebook 00).

Images live in ``$GIFD_DATA`` (default: the checkout's ``data/``) as torchvision's ``cifar-10-batches-py`` or as an
image-folder tree ``cifar10/{train,test}/<class>/*.{png,jpg}``. Decoded arrays of an image-folder tree are
cached under ``$GIFD_CACHE`` (default ``~/.cache/gifd_lite``) so the 60k images load in about a second after
the first time. ``--index N`` names the same image from either source: images sorted by class, and within a class
in CIFAR-10's own order (torchvision's batches are stably sorted by label; an image-folder tree is read as sorted
``(class, file name)``, and a mirror that numbers each class's files in the dataset's order, like
``cifar10/test/cat/0000.jpg``, gives the same sequence). In the test split, index 1000·c + n is the n-th image
of class c: 3000 is the first cat.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import GifdError

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_MEAN", "CIFAR10_STD", "ImageSet", "InputSpec", "CIFAR10_INPUT", "data_root",
    "cache_dir", "load_cifar10", "normalize", "denormalize", "fit_to_input", "to_tensor", "victim_batch",
    "client_batch", "load_images", "subset_classes",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass(frozen=True)
class InputSpec:
    """What an FL model takes as input: the image ``shape`` (C, H, W) and the per-channel ``mean`` and ``std`` that
    map [0, 1] images into its input space, x = (x01 - mean) / std (notebook 10: your own model).

    The built-in models take CIFAR-10's :data:`CIFAR10_INPUT`. The threat model carries the spec
    (:attr:`gifd_lite.fl.ThreatModel.input`): the attacker knows the model, so it knows its preprocessing too.
    """

    shape: tuple[int, int, int] = (3, 32, 32)
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD

    def __post_init__(self):
        shape, mean, std = tuple(int(v) for v in self.shape), tuple(map(float, self.mean)), tuple(map(float, self.std))
        if len(shape) != 3 or min(shape) < 1:
            raise GifdError(f"an input shape is (channels, height, width), got {self.shape}")
        if len(mean) != shape[0] or len(std) != shape[0]:
            raise GifdError(f"give one mean and one std per channel ({shape[0]}), got {len(mean)} and {len(std)}")
        if min(std) <= 0:
            raise GifdError("every channel's std must be positive")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """[0, 1] images → the model's input space."""
        return normalize(x01, self)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input space → [0, 1] images (not clamped)."""
        return denormalize(x, self)


CIFAR10_INPUT = InputSpec()


@dataclass
class ImageSet:
    """A split of a dataset held in memory: ``images`` uint8 (N, 32, 32, 3), ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [0, 1] as (B, 3, 32, 32) float tensors, and their labels."""
        idx = np.asarray(indices, dtype=np.int64)
        return to_tensor(self.images[idx]), torch.as_tensor(self.labels[idx], dtype=torch.long)


def data_root() -> Path:
    """Where datasets live: ``$GIFD_DATA``, else the checkout's ``data/`` folder (beside the shipped checkpoints,
    whatever the working directory: a Jupyter kernel runs in ``notebooks/``), else ``./data``."""
    if "GIFD_DATA" in os.environ:
        return Path(os.environ["GIFD_DATA"]).expanduser()
    checkout = Path(__file__).resolve().parent.parent / "data"
    return checkout if (checkout / "MANIFEST").exists() else Path("data")


def cache_dir() -> Path:
    """Where decoded arrays are cached: ``$GIFD_CACHE`` or ``~/.cache/gifd_lite``."""
    return Path(os.environ.get("GIFD_CACHE", Path.home() / ".cache" / "gifd_lite")).expanduser()


def load_cifar10(split: str = "test", root: str | os.PathLike | None = None, download: bool = True) -> ImageSet:
    """Load a CIFAR-10 split from ``root`` (default :func:`data_root`).

    Looks for torchvision's ``cifar-10-batches-py`` first, then an image-folder tree ``cifar10/<split>``;
    if neither is there, asks torchvision to download it and, when that fails (no network), raises a
    :class:`GifdError` that says where to put the files.
    """
    if split not in {"train", "test"}:
        raise GifdError(f"unknown split {split!r}: use train or test")
    root = Path(root) if root is not None else data_root()
    if (root / "cifar-10-batches-py").is_dir():
        return _load_torchvision(root, split, download=False)
    folder = root / "cifar10" / split
    if folder.is_dir():
        return _load_image_folder(folder)
    if download:
        try:
            return _load_torchvision(root, split, download=True)
        except Exception as exc:  # network errors come in many types
            raise GifdError(
                f"CIFAR-10 not found under {root.resolve()} and the download failed ({type(exc).__name__}); "
                f"put torchvision's cifar-10-batches-py or an image folder cifar10/{split}/<class>/*.png there, "
                "or set GIFD_DATA to the folder that holds them"
            ) from None
    raise GifdError(f"CIFAR-10 not found under {root.resolve()}: set GIFD_DATA to the folder that holds it")


def _load_torchvision(root: Path, split: str, download: bool) -> ImageSet:
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(str(root), train=(split == "train"), download=download)
    labels = np.asarray(ds.targets, dtype=np.int64)
    order = np.argsort(labels, kind="stable")       # by class, the dataset's own order within each class
    return ImageSet(np.asarray(ds.data)[order], labels[order], CIFAR10_CLASSES,
                    f"torchvision batches at {root / 'cifar-10-batches-py'} ({split}, sorted by class)")


def _load_image_folder(folder: Path) -> ImageSet:
    files: list[tuple[int, Path]] = []
    for label, name in enumerate(CIFAR10_CLASSES):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise GifdError(f"image folder {folder} has no class folder {name!r}")
        files += [(label, p) for p in sorted(class_dir.iterdir()) if p.suffix.lower() in _IMAGE_SUFFIXES]
    # the cache key: the folder, its file names and the class folders' modification times
    stamps = "".join(f"{(folder / name).stat().st_mtime_ns}" for name in CIFAR10_CLASSES)
    key = hashlib.sha256(
        (str(folder.resolve()) + stamps + "".join(f"{label}/{p.name}" for label, p in files)).encode()
    ).hexdigest()[:16]
    cached = cache_dir() / f"cifar10-{folder.name}-{key}.npz"
    source = f"image folder {folder} ({len(files)} images, sorted by class then file name)"
    if cached.exists():
        try:
            with np.load(cached) as z:
                return ImageSet(z["images"], z["labels"], CIFAR10_CLASSES, source)
        except Exception:
            cached.unlink(missing_ok=True)  # a broken cache is rebuilt below
    images = np.stack([_read_rgb(p) for _, p in files])
    labels = np.array([label for label, _ in files], dtype=np.int64)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels)
        tmp.replace(cached)
    except OSError:
        pass  # a read-only home only costs the decoding time next run
    return ImageSet(images, labels, CIFAR10_CLASSES, source)


def _read_rgb(path: Path, size: int = 32) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = _center_square(im).resize((size, size), Image.BICUBIC)
        return np.asarray(im, dtype=np.uint8)


def _center_square(im):
    w, h = im.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return im.crop((left, top, left + s, top + s))


def to_tensor(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) → float (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float().div(255.0)


_STATS: dict = {}


def _stats(x: torch.Tensor, spec: InputSpec | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec's (default CIFAR-10's) per-channel mean and std as (1, C, 1, 1) tensors, made once per device,
    dtype and spec (an attack normalises every step: building them each time is a host-to-device copy per step
    on a GPU)."""
    spec = spec or CIFAR10_INPUT
    key = (x.device, x.dtype, spec.mean, spec.std)
    if key not in _STATS:
        c = len(spec.mean)
        _STATS[key] = (torch.tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, c, 1, 1),
                       torch.tensor(spec.std, dtype=x.dtype, device=x.device).view(1, c, 1, 1))
    return _STATS[key]


def normalize(x01: torch.Tensor, spec: InputSpec | None = None) -> torch.Tensor:
    """[0, 1] images → the FL model's input space, (x - mean) / std with the spec's statistics (default
    CIFAR-10's)."""
    mean, std = _stats(x01, spec)
    return (x01 - mean) / std


def denormalize(x: torch.Tensor, spec: InputSpec | None = None) -> torch.Tensor:
    """The model's input space → [0, 1] images (not clamped: attacks clamp where they need to)."""
    mean, std = _stats(x, spec)
    return x * std + mean


def fit_to_input(images01: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """RGB images in [0, 1] resized (bilinear, antialiased) to the spec's height and width, and turned grey
    (the channel mean) for a one-channel model: how a client feeds CIFAR-10 to a model of another input size."""
    c, h, w = spec.shape
    x = images01
    if x.shape[1] != c:
        if c != 1:
            raise GifdError(f"cannot turn {x.shape[1]}-channel images into {c} channels (only into 1, grey)")
        x = x.mean(1, keepdim=True)
    if tuple(x.shape[2:]) != (h, w):
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def victim_batch(dataset: ImageSet, index: int, batch_size: int = 1, distinct_labels: bool = True):
    """The client's batch: image ``index`` and the next images in the source's order.

    With ``distinct_labels`` (the default, as in the papers' batch experiments) an image whose label is
    already in the batch is skipped. Returns ``(images in [0,1], labels, indices)``.
    """
    n = len(dataset)
    if not 0 <= index < n:
        raise GifdError(f"--index {index} is out of range: this split has {n} images (0..{n - 1})")
    if batch_size < 1:
        raise GifdError("batch size must be at least 1")
    if distinct_labels and batch_size > len(dataset.classes):
        raise GifdError(f"batch size {batch_size} with distinct labels needs at most {len(dataset.classes)}")
    chosen: list[int] = []
    seen: set[int] = set()
    for step in range(n):
        i = (index + step) % n
        label = int(dataset.labels[i])
        if distinct_labels and label in seen:
            continue
        chosen.append(i)
        seen.add(label)
        if len(chosen) == batch_size:
            break
    x, y = dataset.tensors(chosen)
    return x, y, chosen


def client_batch(dataset: ImageSet, indices, batch_size: int, seed=0):
    """A client's minibatch: ``batch_size`` images drawn at random (seeded by an int or a sequence of ints,
    without replacement) from ``indices`` (the client's shard; all of ``dataset`` when None). Labels come as they are drawn, so a batch can
    hold a class several times (notebook 10), unlike :func:`victim_batch`'s distinct labels.
    Returns ``(images in [0,1], labels, indices)``.
    """
    pool = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    if not 1 <= batch_size <= len(pool):
        raise GifdError(f"batch size {batch_size} does not fit a shard of {len(pool)} images")
    chosen = np.sort(np.random.default_rng(seed).choice(pool, size=batch_size, replace=False)).tolist()
    x, y = dataset.tensors(chosen)
    return x, y, chosen


def subset_classes(dataset: ImageSet, class_names: list[str] | None) -> ImageSet:
    """Keep only the named classes, renumbered 0..K-1 in the given order (all classes when None)."""
    if not class_names:
        return dataset
    unknown = [c for c in class_names if c not in dataset.classes]
    if unknown:
        raise GifdError(f"unknown class {unknown[0]!r}: choose from {', '.join(dataset.classes)}")
    old = [dataset.classes.index(c) for c in class_names]
    keep = np.isin(dataset.labels, old)
    remap = {o: n for n, o in enumerate(old)}
    labels = np.array([remap[int(v)] for v in dataset.labels[keep]], dtype=np.int64)
    return ImageSet(dataset.images[keep], labels, tuple(class_names), dataset.source + f" (classes {class_names})")


def load_images(paths, size: int = 32) -> torch.Tensor:
    """A user's own image files → (B, 3, size, size) in [0, 1] (centre square crop, bicubic resize)."""
    arrays = []
    for p in map(Path, paths):
        if not p.is_file():
            raise GifdError(f"image file not found: {p}")
        try:
            arrays.append(_read_rgb(p, size))
        except Exception as exc:
            raise GifdError(f"cannot read {p} as an image ({type(exc).__name__})") from None
    return to_tensor(np.stack(arrays))
