"""Data sources (datasets named by where they are, not by a registered loader), and loading a
dataset by either kind of name.

Wherever a suite names a dataset (``Suite.dataset``, ``EvalSpec.ood_sets``,
``EvalSpec.natural_shifts``), it may name a **source** instead of a registered name::

    SCHEME:REFERENCE[#KEY=VALUE,KEY=VALUE...]

=================  ===================================================  ============================
scheme             reference                                            options
=================  ===================================================  ============================
``hf``             a ``save_to_disk`` folder, a parquet file or folder  split, image, label, config
                   of parquet files, or a Hugging Face hub id (online,
                   or already in the local cache)
``hf-imagefolder`` a folder read by ``datasets``' imagefolder builder   split
``torchvision``    a torchvision dataset class, e.g. ``FashionMNIST``   split, root
``folder``         a folder of class subfolders of images (labels in    (none of its own)
                   sorted order), or of images alone (unlabelled)
=================  ===================================================  ============================

Every scheme also takes ``resize=HxW`` (or ``resize=N`` for N x N; bilinear, with Pillow) and
``channels=1`` or ``channels=3`` (every image converted to grayscale, Pillow's luma, or to RGB).
``split`` picks a named split; without it a source with one split uses it, one with several
uses ``test`` where it has one, and otherwise the error lists the splits. For ``hf``, ``image``
and ``label`` name the columns (default: the first ``Image`` feature, else a column ``image`` or
``img``; the first ``ClassLabel``, else ``label`` or ``labels``, else no labels);
``label=none`` drops the labels (an OOD set); ``config`` is a hub dataset's configuration name.
``torchvision`` reads ``root`` (default: the harness data root, :func:`harness.data.data_root`)
and never downloads. Examples: ``hf:data/digits#split=test``, ``hf:data/cifar.parquet#label=fine``,
``torchvision:FashionMNIST#split=train``, ``folder:~/photos#resize=32x32,channels=3``.

Every source becomes an :class:`~harness.data.ImageSet`: x float32 (N, C, H, W) in [0, 1]
(8-bit pixels / 255, 16-bit / 65535; grayscale gives C = 1, everything else RGB, C = 3, alpha
dropped), y int64 (N,) or None. Images of different sizes are an error unless ``resize`` is
given, and a mix of grayscale and colour is one unless ``channels`` is. A string column of labels
is numbered in sorted order, like a folder's classes.

Nothing here runs code from a dataset: ``trust_remote_code`` is never set (``datasets`` before
4.0 gets an explicit False; later versions have no scripts at all) and a dataset script (a
``.py`` file, or a folder holding one) is refused. :func:`check` validates a source without
loading its data (``harness.runner.check_names`` calls it before a run writes anything).
:func:`check_name` and :func:`load` take any dataset name, a registered loader's or a source.
``datasets`` (the ``hf`` extra) and ``torchvision`` (the ``vision`` extra) are imported only
when a source needs them.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.data import ImageSet, MissingDataError, Split, cap_split, data_root, official_split, stratified_split
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.specs import Suite

_COMMON = ("channels", "resize")
#: each scheme and the options it takes
SCHEMES: dict[str, tuple[str, ...]] = {
    "folder": _COMMON,
    "hf": ("config", "image", "label", "split", *_COMMON),
    "hf-imagefolder": ("split", *_COMMON),
    "torchvision": ("root", "split", *_COMMON),
}
_EXTRAS = {"datasets": "hf", "torchvision": "vision"}  # package -> the norm-harness extra that brings it
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_SIZE = re.compile(r"^(\d+)(?:x(\d+))?$")


def is_source(name: str) -> bool:
    """Whether a dataset name is a source string (registered names never hold a colon)."""
    return ":" in name


@dataclass(frozen=True)
class DataSource:
    """A parsed source string ``SCHEME:REFERENCE[#KEY=VALUE,...]`` (see the module docstring);
    ``options`` are (key, value) pairs in the order given, each key at most once."""

    text: str
    scheme: str
    reference: str
    options: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        return dict(self.options).get(key)

    @property
    def resize(self) -> tuple[int, int] | None:
        """(height, width) every image is resized to, or None."""
        value = self.get("resize")
        if value is None:
            return None
        m = _SIZE.match(value)
        assert m is not None  # parse() validated it
        return int(m.group(1)), int(m.group(2) or m.group(1))

    @property
    def channels(self) -> int | None:
        value = self.get("channels")
        return None if value is None else int(value)


def _error(src: str, what: str, hint: str) -> ConfigError:
    return ConfigError(f"data source {src!r}: {what}", hint=hint)


def _guess(name: str, available: Iterable[str]) -> str:
    available = sorted(available)
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    guess = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return f"{guess}available: {', '.join(available)}"


def parse(text: str) -> DataSource:
    """Split a source string into scheme, reference and options, validating the syntax, the
    scheme and every option (not whether the data is there: see :func:`check`)."""
    scheme, _, rest = text.partition(":")
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown data source scheme {scheme!r} in {text!r}",
                          hint=_guess(scheme, SCHEMES) + " (sources are SCHEME:REFERENCE[#KEY=VALUE,...])")
    reference, _, opts = rest.partition("#")
    if not reference.strip():
        raise _error(text, "names no dataset after the scheme",
                     hint=f"e.g. '{scheme}:{'FashionMNIST' if scheme == 'torchvision' else 'PATH'}'")
    options: list[tuple[str, str]] = []
    for item in opts.split(",") if opts else []:
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise _error(text, f"option {item!r} is not KEY=VALUE",
                         hint="write options after '#' as KEY=VALUE separated by commas, e.g. #split=test,resize=28x28")
        if key not in SCHEMES[scheme]:
            raise _error(text, f"{scheme} sources take no option {key!r}", hint=_guess(key, SCHEMES[scheme]))
        if key in dict(options):
            raise _error(text, f"option {key!r} is given twice", hint="give each option once")
        options.append((key, value))
    src = DataSource(text, scheme, reference.strip(), tuple(options))
    size = src.get("resize")
    if size is not None and ((m := _SIZE.match(size)) is None or int(m.group(1)) < 1 or int(m.group(2) or 1) < 1):
        raise _error(text, f"resize={size} is not a size", hint="give HEIGHTxWIDTH in pixels, e.g. resize=28x28 "
                     "(or resize=28)")
    if src.get("channels") not in (None, "1", "3"):
        raise _error(text, f"channels={src.get('channels')} is not 1 or 3",
                     hint="channels=1 converts every image to grayscale, channels=3 to RGB")
    return src


# --- validation without loading ------------------------------------------------------------


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ValueError:  # in sys.modules as None: an import of it is blocked
        return False


def _require(src: DataSource, package: str) -> Any:
    """The imported ``package``, or the one-line error naming the extra that brings it."""
    if not _installed(package):
        raise _error(src.text, f"needs the {package!r} package, which is not installed",
                     hint=f"pip install 'norm-harness[{_EXTRAS[package]}]' (or pip install {package})")
    return importlib.import_module(package)


def _missing(src: DataSource, path: Path) -> MissingDataError:
    return MissingDataError(f"data source {src.text!r}: {path} does not exist",
                            hint="check the path (relative paths are from the working directory)")


def _local(src: DataSource, path_text: str | None = None, folder: bool = True) -> Path:
    """The existing local path a source names (its reference, or ``path_text``)."""
    path = Path(path_text or src.reference).expanduser()
    if not path.exists():
        raise _missing(src, path)
    if folder and not path.is_dir():
        raise _error(src.text, f"{path} is a file, not a folder", hint=f"name the folder that holds the images "
                     f"({src.scheme}:FOLDER)")
    return path


def _refuse_scripts(src: DataSource, path: Path) -> None:
    """A dataset script would be code run on load: never (whatever the datasets version)."""
    scripts = [path] if path.is_file() and path.suffix == ".py" else sorted(path.glob("*.py")) if path.is_dir() else []
    if scripts:
        raise _error(src.text, f"{scripts[0]} is a dataset script, and dataset scripts are never run",
                     hint="save the data with Dataset.save_to_disk or as parquet and name that (hf:PATH)")


def _hf_local_kind(src: DataSource, path: Path) -> str:
    """What a local ``hf`` path holds: "disk" (save_to_disk) or "parquet"."""
    _refuse_scripts(src, path)
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet"
        raise _error(src.text, f"{path} is not a parquet file", hint="name a .parquet file, a folder of them, or a "
                     "folder written by Dataset.save_to_disk")
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "disk"
    if next(path.rglob("*.parquet"), None) is not None:
        return "parquet"
    raise _error(src.text, f"{path} holds neither a saved dataset (state.json or dataset_dict.json) nor parquet files",
                 hint="write it with Dataset.save_to_disk or Dataset.to_parquet, or use folder:PATH for image "
                      "folders")


def _torchvision_class(src: DataSource) -> Any:
    _require(src, "torchvision")
    import torch.utils.data
    import torchvision.datasets as tvd

    names = [n for n in getattr(tvd, "__all__", dir(tvd))
             if isinstance(getattr(tvd, n, None), type) and issubclass(getattr(tvd, n), torch.utils.data.Dataset)]
    if src.reference not in names:
        # the full list is long: shown only when nothing is close
        close = difflib.get_close_matches(src.reference, names, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else _guess(src.reference, names)
        raise _error(src.text, f"torchvision has no dataset class {src.reference!r}", hint=hint)
    return getattr(tvd, src.reference)


def check(text: str) -> DataSource:
    """Validate a source without loading its data: the syntax and options, the package it needs,
    that a local path exists (and is no dataset script), and for ``torchvision`` the class name
    and the root. A hub id cannot be checked offline; it fails when loaded if it is not cached."""
    src = parse(text)
    if src.scheme in ("hf", "hf-imagefolder"):
        _require(src, "datasets")
        path = Path(src.reference).expanduser()
        if src.scheme == "hf-imagefolder":
            _refuse_scripts(src, _local(src))
        elif path.exists():
            _hf_local_kind(src, path)
        elif not _HUB_ID.match(src.reference):
            raise _missing(src, path)  # a path, not a hub id
    elif src.scheme == "torchvision":
        _torchvision_class(src)
        _local(src, str(src.get("root") or data_root()))
    else:
        _local(src)
    return src


def check_name(name: str) -> None:
    """Validate a dataset name: a registered loader (unknown: "did you mean") or a source."""
    if is_source(name):
        check(name)
    else:
        from harness.registry import datasets

        datasets.entry(name)


# --- pixels --------------------------------------------------------------------------------


def _open(item: Any, where: str) -> Any:
    """A Pillow image from a path, bytes, a datasets Image value ({"bytes", "path"}), an
    integer array (H, W) or (H, W, C) of 0-255, or a Pillow image."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        return item
    if isinstance(item, dict):
        item = item.get("bytes") or item.get("path")
    if isinstance(item, (np.ndarray, list)):
        a = np.asarray(item)
        if a.dtype.kind not in "iub" or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) \
                or (a.size and (a.min() < 0 or a.max() > 255)):
            raise ConfigError(f"{where}: an image array of shape {a.shape} and dtype {a.dtype} is not (H, W) or "
                              "(H, W, C) with 8-bit values", hint="store images as an Image feature or 0-255 arrays")
        a = a.astype(np.uint8)
        return Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a)
    try:
        img = Image.open(BytesIO(item) if isinstance(item, bytes) else item)
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: cannot read an image ({type(exc).__name__}: {exc})",
                          hint="remove or replace the file, or convert it to PNG") from exc
    return img


def _array(img: Any, channels: int | None, size: tuple[int, int] | None, where: str) -> np.ndarray:
    """One Pillow image as float32 (C, H, W) in [0, 1], converted and resized as asked."""
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    if img.mode.startswith("I;16"):  # 16-bit grayscale PNG: keep the depth
        a = np.asarray(img, dtype=np.float32) / 65535.0
        if size is not None and a.shape != size:
            a = np.asarray(Image.fromarray(a, mode="F").resize((size[1], size[0]), bilinear))
        x = np.clip(a, 0, 1)[None]
        return np.repeat(x, 3, axis=0) if channels == 3 else x
    if img.mode in ("I", "F"):
        raise ConfigError(f"{where}: image mode {img.mode!r} (32-bit) is not supported",
                          hint="store 8- or 16-bit images, e.g. PNG")
    mode = {1: "L", 3: "RGB"}.get(channels or 0) or ("L" if img.mode in ("1", "L", "LA") else "RGB")
    if img.mode != mode:
        img = img.convert(mode)
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), bilinear)
    a = np.asarray(img, dtype=np.uint8)
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)).astype(np.float32) / 255.0


def to_images(items: Iterable[Any], src: DataSource, names: Iterator[str] | None = None) -> np.ndarray:
    """Images (anything :func:`_open` reads) as float32 (N, C, H, W) in [0, 1], after the source's
    ``channels`` and ``resize``; mixed sizes or mixed gray and colour are an error naming the
    option that fixes it. ``names`` (e.g. file paths) say where a broken image is."""
    arrays = []
    for i, item in enumerate(items):
        where = f"data source {src.text!r}, " + (next(names) if names is not None else f"image {i}")
        arrays.append(_array(_open(item, where), src.channels, src.resize, where))
    if not arrays:
        raise _error(src.text, "holds no images", hint="check the path, split and image column")
    channels = sorted({a.shape[0] for a in arrays})
    if len(channels) > 1:
        raise _error(src.text, "mixes grayscale and colour images", hint="add channels=1 (all grayscale) or "
                     "channels=3 (all RGB) to the source's options")
    sizes = sorted({a.shape[1:] for a in arrays})
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sizes[:3]) + (f" and {len(sizes) - 3} more" if len(sizes) > 3 else "")
        raise _error(src.text, f"holds images of {len(sizes)} sizes ({shown})",
                     hint=f"add resize=HxW to the source's options, e.g. '{src.text.split('#')[0]}#resize="
                          f"{sizes[0][0]}x{sizes[0][1]}'")
    return np.stack(arrays)


def _labels(values: list[Any], src: DataSource, names: tuple[str, ...] = ()) -> tuple[np.ndarray, tuple[str, ...]]:
    """(N,) int64 labels and class names from integers (kept) or strings (numbered in sorted order)."""
    if values and all(isinstance(v, str) for v in values):
        classes = tuple(sorted(set(values)))
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[v] for v in values], dtype=np.int64), classes
    try:
        y = np.array([int(v) for v in values], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise _error(src.text, f"labels are not integers or strings ({exc})",
                     hint="name a column of class labels with label=COLUMN, or drop them with label=none") from exc
    if len(y) and y.min() < 0:
        raise _error(src.text, f"holds negative labels ({int(y.min())}: unlabelled examples)",
                     hint="pick a labelled split (split=...), or use it unlabelled with label=none")
    return y, names


# --- loaders -------------------------------------------------------------------------------


def _pick_split(src: DataSource, splits: list[str]) -> str:
    """The split to use: the ``split`` option, else the only one, else "test"."""
    want = src.get("split")
    if want is not None:
        if want not in splits:
            raise _error(src.text, f"has no split {want!r}", hint=_guess(want, splits))
        return want
    if len(splits) == 1:
        return splits[0]
    if "test" in splits:
        return "test"
    raise _error(src.text, f"has {len(splits)} splits and none is 'test'",
                 hint=f"choose one with #split=NAME: {', '.join(splits)}")


class _QuietProgress:
    """datasets' progress bars off while loading (the harness draws its own), as they were after."""

    def __init__(self, datasets: Any) -> None:
        self.datasets = datasets

    def __enter__(self) -> None:
        self.was_enabled = self.datasets.is_progress_bar_enabled()
        self.datasets.disable_progress_bars()

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            self.datasets.enable_progress_bars()


def _no_scripts(datasets: Any) -> dict[str, Any]:
    # datasets 2.16-3.x can run a hub dataset's script when trust_remote_code is True: say False
    # explicitly; 4.0 removed scripts (and the argument) altogether
    return {"trust_remote_code": False} if int(datasets.__version__.split(".")[0]) < 4 else {}


def _load_hf(src: DataSource) -> ImageSet:
    datasets = _require(src, "datasets")
    path = Path(src.reference).expanduser()
    with _QuietProgress(datasets):
        if src.scheme == "hf-imagefolder":
            _refuse_scripts(src, _local(src))
            data, what = datasets.load_dataset("imagefolder", data_dir=str(path)), f"image folder {path}"
        elif path.exists():
            kind = _hf_local_kind(src, path)
            if kind == "disk":
                data, what = datasets.load_from_disk(str(path)), f"saved dataset {path}"
            else:
                files = {"data_files": str(path)} if path.is_file() else {"data_dir": str(path)}
                data, what = datasets.load_dataset("parquet", **files), f"parquet {path}"
        elif _HUB_ID.match(src.reference):
            data, what = _load_hub(src, datasets), f"Hugging Face hub dataset {src.reference}"
        else:
            raise _missing(src, path)
    if isinstance(data, datasets.DatasetDict):
        split = _pick_split(src, list(data))
        ds = data[split]
    else:
        if src.get("split") is not None:
            raise _error(src.text, "is one dataset without splits", hint="remove the split option")
        split, ds = "", data
    return _from_hf(ds, src, datasets, f"{what}" + (f", split {split}" if split else ""))


def _load_hub(src: DataSource, datasets: Any) -> Any:
    """A hub dataset (all splits, or the one asked for), from the cache when offline."""
    kwargs = {"name": src.get("config"), **_no_scripts(datasets)}
    try:
        return datasets.load_dataset(src.reference, **kwargs)
    except (ConnectionError, FileNotFoundError, OSError) as exc:
        raise ConfigError(f"data source {src.text!r}: hub dataset {src.reference!r} is not in the local cache and "
                          f"the hub cannot be reached ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                          hint="load it once where the internet is reachable (it is cached under HF_HOME), or "
                               "save it with save_to_disk and name the folder: hf:PATH") from exc
    except ValueError as exc:  # an unknown config or split, in datasets' words
        raise _error(src.text, str(exc).splitlines()[0], hint="check config= and split=") from exc


def _from_hf(ds: Any, src: DataSource, datasets: Any, what: str) -> ImageSet:
    features = ds.features
    columns = list(features)
    image = src.get("image") or next((c for c in columns if isinstance(features[c], datasets.Image)),
                                     next((c for c in ("image", "img") if c in columns), None))
    if image is None or image not in columns:
        raise _error(src.text, f"has no image column {image!r}" if image else "has no image column",
                     hint=f"name it with image=COLUMN; columns: {', '.join(columns)}")
    label = src.get("label")
    if label is None:
        label = next((c for c in columns if isinstance(features[c], datasets.ClassLabel)),
                     next((c for c in ("label", "labels") if c in columns), None))
    elif label != "none" and label not in columns:
        raise _error(src.text, f"has no label column {label!r}", hint=_guess(label, columns))
    if isinstance(features[image], datasets.Image):
        # undecoded: the stored bytes, read here like any file (no datasets-version differences)
        items: Iterable[Any] = ds.cast_column(image, datasets.Image(decode=False))[image]
    else:
        items = ds.with_format("numpy", columns=[image])[image]
    x = to_images(items, src)
    y: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    if label not in (None, "none"):
        feat = features[label]
        names = tuple(feat.names) if isinstance(feat, datasets.ClassLabel) else ()
        y, classes = _labels(list(ds[label]), src, names)
        what += f", labels from column {label!r}"
    return ImageSet(src.text, x, y, what, classes)


def _load_torchvision(src: DataSource) -> ImageSet:
    import inspect

    cls = _torchvision_class(src)
    root = _local(src, str(src.get("root") or data_root()))
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"download": False} if "download" in params else {}
    split = src.get("split")
    if "train" in params:  # the MNIST family: train=True / False
        split = _pick_split(src, ["train", "test"])
        kwargs["train"] = split == "train"
    elif "split" in params:
        split = split or "test"
        kwargs["split"] = split
    elif split is not None:
        raise _error(src.text, f"torchvision's {src.reference} has no splits", hint="remove the split option")
    try:
        ds = cls(str(root), **kwargs)
    except (RuntimeError, FileNotFoundError, OSError) as exc:  # torchvision: "Dataset not found ..."
        said = str(exc).splitlines()[0].split(". You can use download=True")[0]  # it is never used here
        raise MissingDataError(f"data source {src.text!r}: torchvision's {src.reference} is not under {root} "
                               f"({said})",
                               hint="put its files there (for MNIST and Fashion-MNIST: harness data fetch), or name "
                                    "another root with #root=DIR; nothing is downloaded") from exc
    except ValueError as exc:  # an unknown split, in torchvision's words
        raise _error(src.text, str(exc).splitlines()[0], hint="check the split option") from exc
    data: Any = getattr(ds, "data", None)
    targets = getattr(ds, "targets", None)
    if hasattr(data, "numpy"):  # a tensor (MNIST's) rather than an array (CIFAR's)
        data = data.numpy()
    if (src.resize is None and src.channels is None and isinstance(data, np.ndarray) and data.dtype == np.uint8
            and targets is not None and len(targets) == len(data)
            and (data.ndim == 3 or (data.ndim == 4 and data.shape[-1] in (1, 3)))):
        # what __getitem__ would give, without a Pillow image per example: (N, H, W[, C]) uint8
        x = (data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)).astype(np.float32) / 255.0
        values = list(targets.tolist() if hasattr(targets, "tolist") else targets)
    else:
        pairs = [ds[i] for i in range(len(ds))]
        x = to_images((p[0] for p in pairs), src)
        values = [p[1] for p in pairs]
    names = tuple(str(c) for c in getattr(ds, "classes", ()) or ())
    y, classes = (None, ()) if any(v is None for v in values) else _labels(values, src, names)
    what = f"torchvision {src.reference} from {root}" + (f", split {split}" if split else "")
    return ImageSet(src.text, x, y, what, classes)


def _load_folder(src: DataSource) -> ImageSet:
    from PIL import Image

    root = _local(src)
    extensions = set(Image.registered_extensions())

    def images(folder: Path, recursive: bool) -> list[Path]:
        found = folder.rglob("*") if recursive else folder.iterdir()
        return sorted(p for p in found if p.is_file() and p.suffix.lower() in extensions
                      and not any(part.startswith(".") for part in p.relative_to(root).parts))

    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = images(root, recursive=False)
    if classes and loose:
        raise _error(src.text, f"{root} holds both class folders and images ({loose[0].name})",
                     hint="put every image in a class folder (labelled), or only images in the folder (unlabelled)")
    if classes:
        files, labels = [], []
        for i, c in enumerate(classes):
            found = images(root / c, recursive=True)
            if not found:
                raise _error(src.text, f"class folder {root / c} holds no images",
                             hint="remove it or add images (" + ", ".join(sorted({".png", ".jpg", ".bmp"})) + ", ...)")
            files += found
            labels += [i] * len(found)
        y: np.ndarray | None = np.array(labels, dtype=np.int64)
    else:
        files, y = loose, None
    if not files:
        raise _error(src.text, f"{root} holds no images", hint="put images in class folders (ROOT/CLASS/IMAGE.png)")
    x = to_images(files, src, iter(str(f) for f in files))
    what = f"image folder {root}" + (f", {len(classes)} classes (sorted folder names)" if classes else ", unlabelled")
    return ImageSet(src.text, x, y, what, tuple(classes))


def load_source(text: str) -> ImageSet:
    """The ImageSet a source string names (see the module docstring for the syntax)."""
    src = parse(text)
    if src.scheme in ("hf", "hf-imagefolder"):
        return _load_hf(src)
    if src.scheme == "torchvision":
        return _load_torchvision(src)
    return _load_folder(src)


def suite_split(suite: Suite) -> Split:
    """The split a suite trains, validates and tests on (harness.specs.Suite: one set split three
    ways, or an official training and test set), with its caps applied."""
    if suite.test_dataset is None:
        split = stratified_split(load(suite.dataset), suite.test_fraction, suite.val_fraction, suite.split_seed)
    else:
        split = official_split(load(suite.dataset), load(suite.test_dataset), suite.val_fraction, suite.split_seed)
    return cap_split(split, suite.max_train, suite.max_test, suite.split_seed)


def load(name: str) -> ImageSet:
    """The ImageSet a dataset name gives: a source string's (see :func:`load_source`), else the
    registered loader's, checked to be an ImageSet. Every dataset a suite names is loaded here."""
    if is_source(name):
        return load_source(name)
    from harness.registry import datasets

    out = datasets.get(name)()
    if not isinstance(out, ImageSet):
        raise ConfigError(f"dataset plugin {name!r} returned {type(out).__name__}, not an ImageSet",
                          hint="return harness.data.ImageSet(name, x, y, source)")
    return out
