"""Tests for harness.data: the stratified split, fit_to (resizing and channel conversion), ImageSet
validation with its error text, and the registered loaders through load()."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data import ImageSet, Split, digits, fit_to, load, stratified_split
from harness.errors import ConfigError
from harness.registry import datasets

CLASS_SIZES = (10, 23, 57, 4, 31)


def _indexed_set(sizes: tuple[int, ...] = CLASS_SIZES, seed: int = 0) -> ImageSet:
    """A labelled set whose single pixel encodes the example's index, so splits can be inverted."""
    y = np.repeat(np.arange(len(sizes)), sizes)
    y = np.random.default_rng(seed).permutation(y).astype(np.int64)  # classes interleaved
    n = len(y)
    x = (np.arange(n, dtype=np.float32) / n).reshape(n, 1, 1, 1)
    return ImageSet("indexed", x, y, "test")


def _indices(part: ImageSet) -> np.ndarray:
    n = sum(CLASS_SIZES)
    return np.rint(part.x[:, 0, 0, 0] * n).astype(int)


# --- stratified_split --------------------------------------------------------------------------


def test_split_parts_are_disjoint_and_cover_everything() -> None:
    data = _indexed_set()
    split = stratified_split(data, 0.25, 0.1, seed=0)
    assert isinstance(split, Split)
    parts = [_indices(split.train), _indices(split.val), _indices(split.test)]
    together = np.concatenate(parts)
    assert len(together) == len(data.x)
    assert sorted(together.tolist()) == list(range(len(data.x)))
    # labels travel with their images
    for part in (split.train, split.val, split.test):
        assert np.array_equal(part.y, data.y[_indices(part)])
        assert np.all(np.diff(_indices(part)) > 0), "each part keeps the original order"


@pytest.mark.parametrize("fractions", [(0.25, 0.1), (0.5, 0.05), (0.2, 0.3)])
def test_split_preserves_class_proportions(fractions: tuple[float, float]) -> None:
    test_fraction, val_fraction = fractions
    data = _indexed_set()
    split = stratified_split(data, test_fraction, val_fraction, seed=3)
    for c, n_c in enumerate(CLASS_SIZES):
        for part, frac in ((split.test, test_fraction), (split.val, val_fraction),
                           (split.train, 1 - test_fraction - val_fraction)):
            count = int((part.y == c).sum())
            assert abs(count - frac * n_c) <= 1, (c, frac, count)


def test_split_is_reproducible_per_seed() -> None:
    data = _indexed_set()
    a = stratified_split(data, 0.25, 0.1, seed=7)
    b = stratified_split(data, 0.25, 0.1, seed=7)
    c = stratified_split(data, 0.25, 0.1, seed=8)
    for pa, pb in ((a.train, b.train), (a.val, b.val), (a.test, b.test)):
        assert np.array_equal(_indices(pa), _indices(pb))
    assert not np.array_equal(_indices(a.test), _indices(c.test))


def test_split_of_digits_matches_suite_sizes() -> None:
    split = stratified_split(digits(), 0.25, 0.1, 0)
    assert len(split.train.x) + len(split.val.x) + len(split.test.x) == 1797
    assert abs(len(split.test.x) - 0.25 * 1797) <= 10
    assert set(split.test.y.tolist()) == set(range(10))
    assert split.train.shape == (1, 8, 8)


def test_split_works_for_every_fraction_a_suite_accepts() -> None:
    # Suite validates val_fraction with 0 <= val_fraction < 1, so a suite without a validation part is
    # declared valid; the split must then work too (or the suite must refuse it up front, with a hint),
    # not fail inside the run with "dataset 'digits' is empty"
    from harness.specs import Suite, Variant

    try:
        Suite("no-val", "1", "d", "digits", (Variant("mlp-none", "mlp", "none"),), (0,),
              test_fraction=0.25, val_fraction=0.0)
    except ConfigError:
        return
    split = stratified_split(digits(), 0.25, 0.0, 0)
    assert len(split.train.x) + len(split.test.x) == 1797


def test_split_needs_labels() -> None:
    unlabelled = ImageSet("faces-like", np.zeros((4, 1, 2, 2), np.float32), None, "test")
    with pytest.raises(ConfigError, match="has no labels and cannot be split"):
        stratified_split(unlabelled, 0.25, 0.1, 0)


# --- fit_to ------------------------------------------------------------------------------------


def test_fit_to_shrinks_and_converts_to_gray_by_area_average() -> None:
    x = np.random.default_rng(0).random((5, 3, 64, 64), dtype=np.float32)
    out = fit_to(x, (1, 8, 8))
    assert out.shape == (5, 1, 8, 8) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    expected = x.mean(axis=1).reshape(5, 8, 8, 8, 8).mean(axis=(2, 4))[:, None]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_fit_to_enlarges_and_repeats_channels() -> None:
    x = np.random.default_rng(1).random((2, 1, 8, 8), dtype=np.float32)
    out = fit_to(x, (3, 32, 32))
    assert out.shape == (2, 3, 32, 32) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert np.array_equal(out[:, 0], out[:, 1]) and np.array_equal(out[:, 0], out[:, 2])
    # bilinear enlarging keeps a constant image constant
    const = fit_to(np.full((1, 1, 8, 8), 0.3, np.float32), (1, 20, 20))
    np.testing.assert_allclose(const, 0.3, atol=1e-6)


def test_fit_to_same_shape_is_identity_and_input_untouched() -> None:
    x = np.random.default_rng(2).random((3, 1, 8, 8), dtype=np.float32)
    before = x.copy()
    np.testing.assert_allclose(fit_to(x, (1, 8, 8)), x, atol=1e-7)
    assert np.array_equal(x, before)


def test_fit_to_rejects_unconvertible_channels() -> None:
    with pytest.raises(ConfigError, match="cannot convert 2 channels to 5"):
        fit_to(np.zeros((1, 2, 8, 8), np.float32), (5, 8, 8))


def test_fit_to_brings_ood_sets_to_digit_shape() -> None:
    for name in ("faces", "textures", "photos"):
        out = fit_to(load(name).x, (1, 8, 8))
        assert out.shape[1:] == (1, 8, 8)
        # still a valid image set
        ImageSet(name, out, None, "fitted")


# --- ImageSet validation -----------------------------------------------------------------------


def _x(n: int = 3) -> np.ndarray:
    return np.full((n, 1, 4, 4), 0.5, np.float32)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.full((2, 1, 4, 4), 1.5, np.float32), None, "pixel values must be finite and in [0, 1]"),
        (np.full((2, 1, 4, 4), -0.1, np.float32), None, "pixel values must be finite and in [0, 1]"),
        (np.full((2, 1, 4, 4), np.nan, np.float32), None, "pixel values must be finite and in [0, 1]"),
        (np.full((2, 1, 4, 4), np.inf, np.float32), None, "pixel values must be finite and in [0, 1]"),
        (np.zeros((2, 4, 4), np.float32), None, "expected (N, C, H, W)"),
        (np.zeros((2, 1, 1, 4, 4), np.float32), None, "expected (N, C, H, W)"),
        (np.zeros((0, 1, 4, 4), np.float32), None, "is empty"),
        (_x(3), np.zeros(2, np.int64), "3 images but labels of shape (2,)"),
        (_x(3), np.zeros((3, 1), np.int64), "3 images but labels of shape (3, 1)"),
    ],
    ids=["above-1", "below-0", "nan", "inf", "3d", "5d", "empty", "too-few-labels", "2d-labels"],
)
def test_imageset_validation(x: np.ndarray, y: np.ndarray | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ImageSet("bad", x, y, "test")
    assert "'bad'" in info.value.message
    assert message in info.value.message
    assert info.value.hint


def test_imageset_accepts_valid_input() -> None:
    s = ImageSet("ok", _x(3), np.array([0, 2, 1], np.int64), "test")
    assert s.shape == (1, 4, 4) and s.n_classes == 3
    sub = s.subset(np.array([2, 0]))
    assert sub.y.tolist() == [1, 0] and sub.name == "ok"


def test_imageset_enforces_float32_pixels() -> None:
    # the documented contract is float32 pixels: a float64 set (what numpy and scikit-learn give by default)
    # must be rejected or converted here, not crash later inside training with a dtype mismatch
    try:
        s = ImageSet("doubles", np.full((3, 1, 4, 4), 0.5), np.zeros(3, np.int64), "test")
    except ConfigError:
        return
    assert s.x.dtype == np.float32


def test_imageset_enforces_int64_labels() -> None:
    # cross-entropy refuses int32 targets, so int32 labels must be rejected or converted at the edge
    try:
        s = ImageSet("int32-labels", _x(3), np.zeros(3, np.int32), "test")
    except ConfigError:
        return
    assert s.y.dtype == np.int64


# --- load --------------------------------------------------------------------------------------


def test_load_rejects_a_plugin_that_returns_something_else() -> None:
    datasets.register("not-an-imageset", lambda: np.zeros((2, 1, 4, 4), np.float32))
    try:
        with pytest.raises(ConfigError, match="returned ndarray, not an ImageSet"):
            load("not-an-imageset")
    finally:
        datasets.unregister("not-an-imageset")
