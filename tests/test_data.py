"""Tests for harness.data: the stratified split, fit_to (resizing and channel conversion), ImageSet
validation with its error text, the registered loaders (through harness.sources.load), the IDX
reader, the data root with its checksums and error texts, and the real MNIST and Fashion-MNIST
loaders (which read the data root that tox fills with scripts/offline_data.py, and skip when it is
not filled)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.data import (
    DATA_ROOT_ENV,
    IDX_SHA256,
    ImageSet,
    MissingDataError,
    Split,
    data_root,
    digits,
    fit_to,
    missing_idx_files,
    official_split,
    raw_dir,
    read_idx,
    stratified_split,
)
from harness.errors import ConfigError
from harness.sources import load

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


def test_an_official_split_keeps_the_test_set_whole_and_splits_validation_off_the_training_set() -> None:
    data = digits()
    train, test = data.subset(np.arange(0, 1500)), data.subset(np.arange(1500, 1797))
    split = official_split(train, test, 0.1, 0)
    assert split.test is test  # whole, untouched, in its order
    # the validation part is a tenth of each class of the training set, and the two parts cover it exactly
    assert np.bincount(split.val.y).tolist() == np.round(np.bincount(train.y) * 0.1).astype(int).tolist()
    both = np.concatenate([split.train.x, split.val.x]).reshape(1500, -1)
    assert np.array_equal(np.unique(both, axis=0), np.unique(train.x.reshape(1500, -1), axis=0))
    train_rows, val_rows = {r.tobytes() for r in split.train.x}, {r.tobytes() for r in split.val.x}
    assert not train_rows & val_rows
    assert split != official_split(train, test, 0.1, 1) and np.array_equal(
        official_split(train, test, 0.1, 0).val.x, split.val.x)


@pytest.mark.parametrize(("test", "message"), [
    (ImageSet("big", np.zeros((4, 1, 16, 16), np.float32), np.zeros(4, np.int64), "t"), "images of shape"),
    (ImageSet("more", np.zeros((4, 1, 8, 8), np.float32), np.full(4, 11), "t"), "labels up to 11"),
    (ImageSet("bare", np.zeros((4, 1, 8, 8), np.float32), None, "t"), "'bare' has no labels"),
])
def test_an_official_split_refuses_a_test_set_that_does_not_fit_the_training_set(test: ImageSet, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        official_split(digits(), test, 0.1, 0)


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


# --- the IDX reader ----------------------------------------------------------------------------

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
             np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def _idx_bytes(a: np.ndarray, dtype: str) -> bytes:
    """``a`` in the IDX format: 0, 0, type code, ndim, big-endian uint32 sizes, big-endian values."""
    dt = np.dtype(dtype)
    header = bytes([0, 0, IDX_CODES[dt], a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(a, dt).tobytes()


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_read_idx_round_trips_every_type(dtype: str, tmp_path: Path) -> None:
    a = (np.arange(2 * 3 * 5).reshape(2, 3, 5) - (0 if dtype == "u1" else 7)).astype(dtype)
    path = tmp_path / "a-idx3"
    path.write_bytes(_idx_bytes(a, dtype))
    out = read_idx(path)
    assert out.shape == (2, 3, 5)
    assert out.dtype == np.dtype(dtype).newbyteorder("=")  # native order, whatever the file's
    assert np.array_equal(out, a)
    out[0, 0, 0] = 1  # a writable copy, not a view of the file's bytes


def test_read_idx_reads_mnist_shaped_files(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    labels = np.array([7, 2, 1, 0], np.uint8)
    (tmp_path / "images").write_bytes(_idx_bytes(images, "u1"))
    (tmp_path / "labels").write_bytes(_idx_bytes(labels, "u1"))
    assert np.array_equal(read_idx(tmp_path / "images"), images)
    assert read_idx(tmp_path / "labels").tolist() == [7, 2, 1, 0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "it does not start with two zero bytes"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown type code 0x07"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "the header of 2 dimensions is cut off"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "9 bytes where shape (3,) needs 11"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "10 bytes where shape (1,) needs 9"),
    ],
    ids=["magic", "type-code", "cut-header", "truncated", "trailing-bytes"],
)
def test_read_idx_rejects_malformed_files(data: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        read_idx(path)
    assert info.value.message == f"{path} is not a valid IDX file: {message}"
    assert "harness data fetch" in info.value.hint


# --- the data root: where it is, missing files, checksums --------------------------------------


def test_data_root_is_the_environment_variable_else_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert data_root() == tmp_path
    assert raw_dir("mnist") == tmp_path / "MNIST" / "raw"
    assert raw_dir("fashion-mnist") == tmp_path / "FashionMNIST" / "raw"  # torchvision's folder names
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert data_root() == Path.home() / ".cache" / "norm-harness" / "data"


@pytest.mark.parametrize("name", ["mnist", "mnist-train", "fashion-mnist", "fashion-mnist-0-5",
                                  "fashion-mnist-train-0-5", "fashion-mnist-6-9"])
def test_missing_data_is_one_line_with_the_commands_that_fill_the_root(name: str, monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    dataset = "fashion-mnist" if name.startswith("fashion") else "mnist"
    with pytest.raises(MissingDataError) as info:
        load(name)
    err = info.value
    assert isinstance(err, ConfigError)  # the CLI prints it as Error: / Hint: with exit status 2
    assert err.message.startswith(f"{dataset} is not in the data root: {raw_dir(dataset)}/")
    assert err.message.endswith(" is missing")
    # the installed command (scripts/ exists only in a checkout), with its registry-only way
    assert err.hint.startswith(f"run 'harness data fetch {dataset} --root {tmp_path}' (add --offline")
    assert "scripts/" not in err.hint
    assert DATA_ROOT_ENV in err.hint
    assert "\n" not in err.message + err.hint
    assert not list(tmp_path.iterdir()), "a loader must not create or download anything"


def test_a_file_that_fails_its_checksum_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # a well-formed IDX file with the right name, but not the official one
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for part, shape in (("images-idx3", (10000, 28, 28)), ("labels-idx1", (10000,))):
        (folder / f"t10k-{part}-ubyte").write_bytes(_idx_bytes(np.zeros(shape, np.uint8), "u1"))
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load("mnist")
    assert info.value.message == (f"{folder / 't10k-images-idx3-ubyte'} does not match the official file's sha256 "
                                  "(corrupt, truncated or another release)")
    assert info.value.hint.startswith("delete it, then run 'harness data fetch mnist --root")
    assert missing_idx_files("mnist") == list(IDX_SHA256["mnist"])  # none of the four is the official file


# --- synthetic far-OOD -------------------------------------------------------------------------


def test_uniform_noise() -> None:
    d = load("uniform-noise")
    assert d.x.shape == (200, 1, 28, 28) and d.x.dtype == np.float32
    assert d.y is None
    assert 0 <= d.x.min() and d.x.max() < 1
    assert abs(float(d.x.mean()) - 0.5) < 0.01 and abs(float(d.x.std()) - (1 / 12) ** 0.5) < 0.01
    assert np.array_equal(d.x, load("uniform-noise").x), "seeded: the same images every time"
    assert "synthetic" in d.source


# --- real MNIST and Fashion-MNIST from the data root -------------------------------------------

# label counts of the official files
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _check_images(d: ImageSet, n: int) -> None:
    assert d.x.shape == (n, 1, 28, 28) and d.x.dtype == np.float32
    assert d.x.min() == 0.0 and d.x.max() == 1.0
    assert d.source


def _labels(d: ImageSet) -> np.ndarray:
    assert d.y is not None and d.y.dtype == np.int64 and d.y.shape == (len(d.x),)
    return d.y


def test_mnist(filled_root: Path) -> None:
    test, train = load("mnist"), load("mnist-train")
    _check_images(test, 10000)
    _check_images(train, 60000)
    for d, counts in ((test, MNIST_TEST_COUNTS), (train, MNIST_TRAIN_COUNTS)):
        assert np.bincount(_labels(d)).tolist() == counts
        assert d.classes == tuple("0123456789") and d.n_classes == 10
    assert _labels(test)[:5].tolist() == [7, 2, 1, 0, 4] and _labels(train)[:5].tolist() == [5, 0, 4, 1, 9]


def test_fashion_mnist(filled_root: Path) -> None:
    test, train = load("fashion-mnist"), load("fashion-mnist-train")
    _check_images(test, 10000)
    _check_images(train, 60000)
    assert np.bincount(_labels(test)).tolist() == [1000] * 10 and np.bincount(_labels(train)).tolist() == [6000] * 10
    assert test.classes[0] == "T-shirt/top" and test.classes[9] == "Ankle boot"
    assert _labels(test)[:5].tolist() == [9, 2, 1, 1, 6]


def test_fashion_class_subsets(filled_root: Path) -> None:
    full, near_id, near_ood = load("fashion-mnist"), load("fashion-mnist-0-5"), load("fashion-mnist-6-9")
    _check_images(near_id, 6000)
    _check_images(near_ood, 4000)
    assert np.bincount(_labels(near_id)).tolist() == [1000] * 6  # labels keep their numbers
    assert near_id.n_classes == 6 and near_id.classes == full.classes[:6]
    assert near_ood.y is None
    # exactly the test images of those classes, in their original order
    assert np.array_equal(near_id.x, full.x[_labels(full) < 6])
    assert np.array_equal(near_ood.x, full.x[_labels(full) >= 6])


def test_the_training_images_of_fashion_classes_0_5(filled_root: Path) -> None:
    train, near_id = load("fashion-mnist-train"), load("fashion-mnist-train-0-5")
    _check_images(near_id, 36000)
    assert np.bincount(_labels(near_id)).tolist() == [6000] * 6 and near_id.classes == train.classes[:6]
    assert np.array_equal(near_id.x, train.x[_labels(train) < 6])  # the training images, not the test images
    assert "training set" in near_id.source


def test_the_mnist_suites_train_on_official_training_images_and_test_on_official_test_images(
        filled_root: Path) -> None:
    """The literature's protocol: no image of the official test set is trained on, and the test part is
    a stratified subset of the official test set of the suite's stated size."""
    from harness import registry
    from harness.sources import suite_split

    suite = registry.suites.get("mnist")
    split = suite_split(suite)
    train, test = load("mnist-train"), load("mnist")
    # stratified caps round per class: 8,000 and 1,000 give 7,999 and 1,000, a sixtieth for validation 999
    assert (len(split.train.x), len(split.val.x), len(split.test.x)) == (7999, 999, 1000)
    # every part's images are rows of the set they should come from (hashes of the image bytes)
    def rows(d: ImageSet) -> set[bytes]:
        return {img.tobytes() for img in d.x}

    official_train, official_test = rows(train), rows(test)
    assert rows(split.train) <= official_train and rows(split.val) <= official_train
    assert rows(split.test) <= official_test
    assert not rows(split.train) & rows(split.val)
    assert np.bincount(_labels(split.test)).tolist() == np.round(np.bincount(_labels(test)) / 10).astype(int).tolist()


def test_a_corrupted_copy_of_a_real_file_is_refused(filled_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    copy = tmp_path / "MNIST" / "raw"
    shutil.copytree(raw_dir("mnist", filled_root), copy)
    data = bytearray((copy / "t10k-labels-idx1-ubyte").read_bytes())
    data[-1] ^= 1  # one label changed: still a valid IDX file
    (copy / "t10k-labels-idx1-ubyte").write_bytes(bytes(data))
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert len(load("mnist-train").x) == 60000  # the untouched files still load
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte does not match the official file's sha256"):
        load("mnist")
    assert missing_idx_files("mnist") == ["t10k-labels-idx1-ubyte"]


def test_as_uci_digits_redraws_a_bar_as_the_uci_digits_were_made() -> None:
    from harness.data import as_uci_digits

    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    x[0, 0, 4:24, 10:14] = 1.0  # a 20x4 bar: scaled to 32x6, centred in columns 13-18
    out = as_uci_digits(x)
    assert out.shape == (2, 1, 8, 8) and out.dtype == np.float32
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[:, 3] = expected[:, 4] = 12 / 16  # three of four columns of each 4x4 block, all four rows
    assert np.array_equal(out[0, 0], expected)
    assert not out[1].any()  # a blank image stays blank


# --- pre-rendered corruption sets (CIFAR-10-C layout) ------------------------------------------


def _cifar_c_folder(tmp_path, n: int = 6, colour: bool = True, labels_per_severity: bool = False):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    shape = (5 * n, 4, 4, 3) if colour else (5 * n, 4, 4)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    labels = rng.integers(0, 3, 5 * n if labels_per_severity else n)
    np.save(tmp_path / "fog.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    return images, labels


@pytest.mark.parametrize("colour", [True, False])
def test_prerendered_reads_one_severity_of_the_stack(tmp_path, colour: bool) -> None:  # type: ignore[no-untyped-def]
    from harness.data import prerendered

    images, labels = _cifar_c_folder(tmp_path, colour=colour)
    s3 = prerendered(tmp_path, "fog", 3)
    expected = images[12:18] if not colour else images[12:18].transpose(0, 3, 1, 2)
    expected = expected[:, None] if not colour else expected
    assert s3.x.shape == ((6, 3, 4, 4) if colour else (6, 1, 4, 4)) and s3.x.dtype == np.float32
    assert np.array_equal(s3.x, expected.astype(np.float32) / 255)
    assert np.array_equal(s3.y, labels)


def test_prerendered_labels_may_be_stacked_too(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from harness.data import prerendered

    _, labels = _cifar_c_folder(tmp_path, labels_per_severity=True)
    assert np.array_equal(prerendered(tmp_path, "fog", 5).y, labels[24:30])


def test_prerendered_bad_folders_are_one_line_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from harness.data import MissingDataError, prerendered

    with pytest.raises(MissingDataError, match="fog.npy does not exist"):
        prerendered(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((7, 4, 4), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(7, dtype=np.int64))
    with pytest.raises(ConfigError, match="expected 5 severities stacked"):
        prerendered(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((10, 4, 4), dtype=np.uint8))
    with pytest.raises(ConfigError, match="holds 7 labels for 2 images per severity"):
        prerendered(tmp_path, "fog", 1)


def test_a_capped_split_keeps_class_shares_and_the_validation_part(split) -> None:  # type: ignore[no-untyped-def]
    from harness.data import cap_split

    capped = cap_split(split, 300, 100, seed=0)
    assert len(capped.train.y) == pytest.approx(300, abs=10) and len(capped.test.y) == pytest.approx(100, abs=10)
    assert capped.val is split.val  # the held-out curve and its target mean the same at every size
    full = np.bincount(split.train.y, minlength=10) / len(split.train.y)
    assert np.abs(np.bincount(capped.train.y, minlength=10) / len(capped.train.y) - full).max() < 0.02
    again = cap_split(split, 300, 100, seed=0)
    assert np.array_equal(again.train.x, capped.train.x)  # deterministic for a seed
    assert not np.array_equal(cap_split(split, 300, 100, seed=1).train.x, capped.train.x)  # and depends on it
    assert cap_split(split, None, None, 0) is split
    # rows come from the original part, in order
    rows = {r.tobytes() for r in split.train.x}
    assert all(r.tobytes() in rows for r in capped.train.x)
