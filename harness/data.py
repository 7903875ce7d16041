"""Image sets that work without a dataset download, and the fixed splits.

Every set is returned as an :class:`ImageSet`: ``x`` float32 of shape (N, C, H, W) with values
in [0, 1], ``y`` int64 of shape (N,) or None for OOD sets without labels. Loaders are
registered as ``datasets`` plugins and take no arguments; OOD sets come at their native
resolution and :func:`fit_to` brings them to the in-distribution shape.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(data.y):
        idx = rng.permutation(np.flatnonzero(data.y == c))
        n_test = int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * len(idx)))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    # sorted indices keep the original order inside each part, so batches are reproducible
    return Split(**{k: data.subset(np.sort(np.concatenate(v))) for k, v in parts.items()})


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


def load(name: str) -> ImageSet:
    """Load a registered dataset by name and check what the plugin returned."""
    from harness.registry import datasets

    out = datasets.get(name)()
    if not isinstance(out, ImageSet):
        raise ConfigError(f"dataset plugin {name!r} returned {type(out).__name__}, not an ImageSet",
                          hint="return harness.data.ImageSet(name, x, y, source)")
    return out
