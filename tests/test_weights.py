"""Tests for harness.weights and the runner's loading path: models trained on the real digits by the
harness, saved as .safetensors and .pt, are loaded by a suite instead of training and give the
trained models' evaluation records bit for bit; the cell records the source and the file's sha256
(a changed file is a new cell) and no training measurements; the report builds and validates.
Malicious pickles are refused without being unpickled; corrupt, mismatched and missing weights
are one-line errors naming the file; torchvision weights come from the torch hub cache only and
fit the torchvision-resnet model; hub weights come from huggingface_hub's cache when offline."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from runs import untimed
from safetensors.torch import save_file

from harness.errors import ConfigError
from harness.models import build_model
from harness.runner import run, train_spec
from harness.seeding import torch_generator
from harness.specs import AttackSpec, EvalSpec, Suite, TrainSpec, Variant
from harness.store import Store, cell_key, load_weights
from harness.weights import check, load_into, read, resolve

VARIANTS = (Variant("mlp-none", "mlp", "none"), Variant("mlp-batch", "mlp", "batch"))


def _suite(variants: tuple[Variant, ...] = VARIANTS) -> Suite:
    """Two MLPs on the real digits, one seed; a battery with every kind of condition but the checks."""
    return Suite("weights", "1", "trained or loaded MLPs on digits", "digits", variants, (0,),
                 train=TrainSpec(epochs=2, target_accuracy=0.8),
                 evaluation=EvalSpec(shifts=("gaussian-noise",), severities=(3,), ood_sets=("faces",),
                                     attacks=(AttackSpec("fgsm", (0.1,)),), checks=False))


def _records(run_dir: Path) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    with Store(run_dir, create=False) as store:
        return {(c.variant, json.dumps(c.condition, sort_keys=True)): untimed(c.arrays) for c in store.cells("eval")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real run (two MLPs trained on digits) and its models' state dicts written as a
    .safetensors file (mlp-none) and a torch.save .pt file (mlp-batch, with BatchNorm buffers)."""
    d = tmp_path_factory.mktemp("trained")
    assert run(_suite(), d / "run", device="cpu", executor="serial", progress=False).ok
    with Store(d / "run", create=False) as store:
        keys = {c.variant: c.key for c in store.cells("train", with_arrays=False)}
    states = {v: load_weights(d / "run", k) for v, k in keys.items()}
    save_file(states["mlp-none"], str(d / "mlp-none.safetensors"))
    torch.save(states["mlp-batch"], d / "mlp-batch.pt")
    return {"dir": d, "run": d / "run", "states": states,
            "files": {"mlp-none": d / "mlp-none.safetensors", "mlp-batch": d / "mlp-batch.pt"}}


@pytest.fixture(scope="module")
def loaded(trained: dict[str, Any]) -> Path:
    """The same suite with both variants loading those files instead of training."""
    variants = tuple(dataclasses.replace(v, weights=str(trained["files"][v.name])) for v in VARIANTS)
    out = trained["dir"] / "loaded"
    summary = run(_suite(variants), out, device="cpu", executor="serial", progress=False)
    assert summary.ok and summary.trained == 2
    return out


def test_loaded_models_give_the_trained_models_records(trained: dict[str, Any], loaded: Path) -> None:
    before, after = _records(trained["run"]), _records(loaded)
    assert before.keys() == after.keys() and len(before) == 2 * len(_suite().conditions())
    for key, arrays in before.items():
        assert arrays.keys() == after[key].keys(), key
        for name, a in arrays.items():
            assert np.array_equal(a, after[key][name]), f"{key} {name}"
    with Store(trained["run"], create=False) as a, Store(loaded, create=False) as b:
        acc = [{c.variant: c.result["accuracy"] for c in s.cells("eval", with_arrays=False)
                if c.condition and c.condition["kind"] == "clean"} for s in (a, b)]
    assert acc[0] == acc[1] and min(acc[0].values()) > 0.8  # real models, and the same ones


def test_a_loaded_cell_records_its_source_and_no_training(trained: dict[str, Any], loaded: Path) -> None:
    from harness.data import file_sha256

    with Store(loaded, create=False) as store:
        cells = {c.variant: c for c in store.cells("train")}
    for v, cell in cells.items():
        path = trained["files"][v]
        assert cell.status == "done"
        assert cell.spec["weights"] == {"source": str(path), "sha256": file_sha256(path)}
        assert "train" not in cell.spec  # the recipe does not determine a loaded model
        assert cell.result == {"trained": False, "weights": str(path), "weights_file": str(path),
                               "weights_sha256": file_sha256(path)}
        assert cell.arrays == {}, "no curve: the model was not trained"
        stored = load_weights(loaded, cell.key)  # saved into the store as a trained model's are
        for k, t in trained["states"][v].items():
            assert torch.equal(stored[k], t), k


def test_the_report_builds_and_shows_loaded_runs(loaded: Path) -> None:
    import jsonschema

    from harness.reports.build import build_report
    from harness.reports.render import SCHEMA_PATH, to_json, to_markdown

    report = build_report(loaded, n_resamples=100)
    assert report.training_summary == ()  # nothing was trained: no training estimates, not zeros
    assert [t.result["trained"] for t in report.training] == [False, False]
    assert any(c.variant == "mlp-batch" and c.condition is not None for c in report.comparisons)
    assert not [c for c in report.comparisons if c.condition is None], "no training comparisons"
    doc = json.loads(json.dumps(to_json(report), allow_nan=False))
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    assert [e.message for e in validator.iter_errors(doc)] == []
    md = to_markdown(report)
    assert "| mlp-none | 0 | loaded | n/a | n/a |" in md


def test_the_cell_key_follows_the_file(trained: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    state = dict(trained["states"]["mlp-none"])
    save_file(state, str(path))
    v = Variant("mlp-none", "mlp", "none", weights=str(path))
    first = cell_key(train_spec(_suite((v,)), v, 0, "cpu"))
    assert first == cell_key(train_spec(_suite((v,)), v, 0, "cpu"))
    assert first != cell_key(train_spec(_suite((VARIANTS[0],)), VARIANTS[0], 0, "cpu"))
    state["net.head.bias"] = state["net.head.bias"] + 1
    save_file(state, str(path))
    os.utime(path, ns=(1, 1))  # another version of the file, whatever the clock's resolution
    assert cell_key(train_spec(_suite((v,)), v, 0, "cpu")) != first


def test_weights_changed_after_planning_fail_their_cell(trained: dict[str, Any], tmp_path: Path) -> None:
    """The plan records the weights file's sha256 (it is part of the cell's key); a file replaced
    between planning and loading fails the training cell with an error naming it, instead of
    storing another model under the planned key. The runner's own plan, context and training unit."""
    from harness.data import file_sha256
    from harness.runner import plan, prepare, train_unit

    path = tmp_path / "w.safetensors"
    state = dict(trained["states"]["mlp-none"])
    save_file(state, str(path))
    planned = file_sha256(path)
    suite = _suite((dataclasses.replace(VARIANTS[0], weights=str(path)),))
    with Store(tmp_path / "run") as store:
        (unit,) = plan(suite, store, "cpu")
    assert unit.need_train and unit.train_spec["weights"]["sha256"] == planned
    ctx = prepare(suite, "cpu", tmp_path / "run")
    (cell,) = train_unit(ctx, unit)  # the file as planned: loaded
    assert cell.status == "done" and cell.result["weights_sha256"] == planned
    state["net.head.bias"] = state["net.head.bias"] + 1
    save_file(state, str(path))
    os.utime(path, ns=(1, 1))  # another version of the file, whatever the clock's resolution
    changed = file_sha256(path)
    assert changed != planned
    (cell,) = train_unit(ctx, unit)
    assert (cell.status, cell.key, cell.result) == ("failed", unit.train_key, {})
    assert (cell.error or "").splitlines()[0] == (
        f"ConfigError: weights {path} changed since this run was planned (sha256 {changed[:12]}..., planned "
        f"{planned[:12]}...) (run the same command again)")


def test_a_bare_model_state_dict_loads_into_the_model_plugin(trained: dict[str, Any], tmp_path: Path) -> None:
    model = build_model("mlp", "batch", (1, 8, 8), 10, {}, None, torch_generator(0, "init"))
    model.load_state_dict(trained["states"]["mlp-batch"])
    torch.save(model.net.state_dict(), tmp_path / "bare.pt")  # keys body.1.weight ..., no "net."
    other = build_model("mlp", "batch", (1, 8, 8), 10, {}, None, torch_generator(1, "init"))
    load_into(other, resolve(str(tmp_path / "bare.pt")), "the test's mlp")
    for k, t in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], t), k


def test_mismatched_weights_name_the_file(trained: dict[str, Any], tmp_path: Path) -> None:
    path = trained["files"]["mlp-none"]
    cnn = build_model("cnn", "none", (1, 8, 8), 10, {}, None, torch_generator(0, "init"))
    with pytest.raises(ConfigError) as info:
        load_into(cnn, resolve(str(path)), "variant 'cnn-none' (model cnn, norm none)")
    assert info.value.message == (f"weights {path} do not fit variant 'cnn-none' (model cnn, norm none): missing "
                                  "net.body.0.weight, net.body.0.bias; unexpected net.body.1.bias, net.body.1.weight; "
                                  "net.body.4.weight is (128, 128) in the file, (64, 32, 3, 3) in the model; "
                                  "net.body.4.bias is (128,) in the file, (64,) in the model; +1 more shapes")
    narrow = build_model("mlp", "none", (1, 8, 8), 10, {"hidden": (64, 64)}, None, torch_generator(0, "init"))
    with pytest.raises(ConfigError) as info:
        load_into(narrow, resolve(str(path)), "variant 'mlp-narrow'")
    assert info.value.message == (f"weights {path} do not fit variant 'mlp-narrow': net.body.1.weight is (128, 64) "
                                  "in the file, (64, 64) in the model; net.body.1.bias is (128,) in the file, (64,) "
                                  "in the model; +3 more shapes")
    assert "same architecture" in info.value.hint
    # in a run: the training cell fails with that error, nothing is evaluated
    summary = run(_suite((Variant("cnn-none", "cnn", "none", weights=str(path)),)), tmp_path / "run",
                  device="cpu", executor="serial", progress=False)
    assert not summary.ok and summary.trained == 0 and summary.evaluated == 0
    assert summary.failures[0][0] == "train cnn-none seed 0"
    assert summary.failures[0][1].startswith(f"ConfigError: weights {path} do not fit variant 'cnn-none'")


# --- never unpickling arbitrary objects --------------------------------------------------------


class _OpensAFile:
    """Unpickling this opens (creates) the marker file: proof that the pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


class _RunsAShellCommand(_OpensAFile):
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", [_OpensAFile, _RunsAShellCommand], ids=["open", "os.system"])
def test_a_malicious_pickle_is_refused_and_never_run(payload: type, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    evil = {"net.head.bias": payload(marker)}  # a plain pickle of the payload alone
    raw = pickle.dumps(evil, protocol=2)  # the protocol torch.save writes: the safe unpickler reads up to the global
    made = pickle.loads(raw)["net.head.bias"]  # the payload does its work when unpickled ...
    if hasattr(made, "close"):
        made.close()
    assert marker.exists()
    marker.unlink()
    files = {"raw.pt": raw, "raw.safetensors": raw, "protocol5.pt": pickle.dumps(evil, protocol=5)}
    for name in ("zip.pt", "zip.safetensors"):  # torch.save's zip format around the same pickle
        torch.save({"net.head.weight": torch.zeros(10, 128), **evil}, tmp_path / "z")
        files[name] = (tmp_path / "z").read_bytes()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError) as info:  # ... and is refused without being unpickled
            check(str(tmp_path / name))
        err = info.value
        if name.endswith(".pt"):
            assert err.message.startswith(f"weights {tmp_path / name} were refused: they hold objects other than "
                                          "tensors, which are never unpickled (torch.load(weights_only=True) stopped "
                                          "at: ")
            if name != "protocol5.pt":  # refused at a newer opcode before it reaches the global
                assert ("system" if payload is _RunsAShellCommand else "open") in err.message
        else:
            assert err.message.startswith(f"weights {tmp_path / name} are not a readable safetensors file (")
        assert "\n" not in err.message + err.hint and err.hint
        assert not marker.exists(), f"{name} was unpickled"
    # a suite naming it fails before anything is written
    with pytest.raises(ConfigError, match="were refused"):
        run(_suite((Variant("mlp-none", "mlp", "none", weights=str(tmp_path / "raw.pt")),)), tmp_path / "run",
            device="cpu", executor="serial", progress=False)
    assert not (tmp_path / "run").exists() and not marker.exists()


# --- corrupt, missing and malformed sources ----------------------------------------------------

def _write_bad(d: Path) -> None:
    g = torch.Generator().manual_seed(0)
    save_file({"w": torch.randn(4, 4, generator=g)}, str(d / "cut.safetensors"))
    (d / "cut.safetensors").write_bytes((d / "cut.safetensors").read_bytes()[:60])
    (d / "junk.pt").write_bytes(b"hello, these are not weights\n" * 4)
    torch.save([torch.zeros(2)], d / "list.pt")
    torch.save({"w": torch.zeros(2), "step": 3}, d / "mixed.pt")
    torch.save({}, d / "empty.pth")
    (d / "w.npz").write_bytes(b"")
    (d / "folder.pt").mkdir()


BAD = [  # (source, the exact message, the hint's start); {d} is the test's folder
    ("{d}/cut.safetensors", "weights {d}/cut.safetensors are not a readable safetensors file (Error while "
     "deserializing header: invalid header length)", "check the file"),
    ("{d}/junk.pt", "weights {d}/junk.pt are not a PyTorch state-dict file (KeyError: 101)",
     "save the state dict alone"),
    ("{d}/list.pt", "weights {d}/list.pt are not a state dict (they hold list)", "save the state dict alone"),
    ("{d}/mixed.pt", "weights {d}/mixed.pt are not a state dict: 'step' holds int, not a tensor",
     "save the state dict alone"),
    ("{d}/empty.pth", "weights {d}/empty.pth are not a state dict (they hold dict (empty))", "save the state dict"),
    ("{d}/w.npz", "weights '{d}/w.npz': w.npz is not a weights file (.npz)",
     "name a .safetensors file or a state dict saved as .pt / .pth / .bin"),
    ("{d}/missing.safetensors", "weights file {d}/missing.safetensors does not exist", "check the path"),
    ("{d}/folder.pt", "weights {d}/folder.pt are a folder, not a file", "check the path"),
    ("s3:bucket/w.pt", "unknown weights scheme 's3' in 's3:bucket/w.pt'",
     "available: hf, torchvision (or a .safetensors / .pt file path)"),
    ("torchvison:resnet18.IMAGENET1K_V1", "unknown weights scheme 'torchvison' in 'torchvison:resnet18.IMAGENET1K_V1'",
     "did you mean 'torchvision'?"),
    ("torchvision:resnet18", "weights 'torchvision:resnet18' name no torchvision weights",
     "write torchvision:ARCH.WEIGHTS, e.g. torchvision:resnet18.IMAGENET1K_V1"),
    ("torchvision:resnet81.IMAGENET1K_V1", "weights 'torchvision:resnet81.IMAGENET1K_V1': torchvision has no model "
     "'resnet81'", "did you mean 'resnet18'"),
    ("torchvision:resnet18.IMAGENET1K_V2", "weights 'torchvision:resnet18.IMAGENET1K_V2': torchvision's resnet18 has "
     "no weights 'IMAGENET1K_V2'", "did you mean 'IMAGENET1K_V1'?"),
    ("hf:not a repo", "weights 'hf:not a repo': 'not a repo' is not a hub repository id", "write hf:OWNER/NAME"),
    ("hf:owner/model#fiel=x.safetensors", "weights 'hf:owner/model#fiel=x.safetensors': option 'fiel=x.safetensors' "
     "is not one of file=NAME, revision=REV (each at most once)", "e.g. hf:owner/model#file=model.safetensors"),
    ("hf:owner/model#file=w.npz", "weights 'hf:owner/model#file=w.npz': w.npz is not a weights file (.npz)",
     "name a .safetensors file"),
]


@pytest.mark.parametrize(("source", "message", "hint"), BAD, ids=[b[0].replace("{d}/", "") for b in BAD])
def test_bad_weights_are_one_line_errors(source: str, message: str, hint: str, tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    _write_bad(tmp_path)
    with pytest.raises(ConfigError) as info:
        check(source.format(d=tmp_path))
    assert info.value.message == message.format(d=tmp_path)
    assert info.value.hint.startswith(hint)
    assert "\n" not in info.value.message + info.value.hint


def test_variant_and_suite_validate_weights() -> None:
    with pytest.raises(ConfigError, match="names empty weights ''"):
        Variant("mlp-none", "mlp", "none", weights="")
    with pytest.raises(ConfigError) as info:
        Variant("mlp-none@lr=0.1", "mlp", "none", train=(("lr", 0.1),), weights="w.pt")
    assert info.value.message == "variant 'mlp-none@lr=0.1' loads weights and overrides training settings (lr=0.1)"
    with pytest.raises(ConfigError, match="evaluates converged runs only, but mlp-none loads weights and never trains"):
        dataclasses.replace(_suite((Variant("mlp-none", "mlp", "none", weights="w.pt"),)), evaluate_unconverged=False)
    s = _suite((Variant("mlp-none", "mlp", "none", weights="w.pt"), VARIANTS[1]))
    assert Suite.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    old = json.loads(json.dumps(_suite().to_dict()))
    for v in old["variants"]:
        del v["weights"]  # a run directory written before the field existed
    assert Suite.from_dict(old) == _suite()


# --- torchvision weights and the model they fit -------------------------------------------------


def test_torchvision_resnet_is_torchvisions_resnet(tmp_path: Path) -> None:
    tvm = pytest.importorskip("torchvision.models")
    reference = tvm.resnet18(weights=None, num_classes=10).eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    model = build_model("torchvision-resnet", "batch", (1, 8, 8), 10, {}, None, torch_generator(0, "init"))
    load_into(model, resolve(str(tmp_path / "resnet18.pth")), "the test's resnet")
    model.eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # ImageNet's, which the model applies itself
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), reference((x.expand(-1, 3, -1, -1) - mean) / std), atol=1e-5)
    other_norm = build_model("torchvision-resnet", "layer", (1, 8, 8), 10, {}, None, torch_generator(0, "init"))
    with pytest.raises(ConfigError, match="do not fit the test's resnet: unexpected bn1.running_mean"):
        load_into(other_norm, resolve(str(tmp_path / "resnet18.pth")), "the test's resnet")


def test_torchvision_weights_come_from_the_hub_cache_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tvm = pytest.importorskip("torchvision.models")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(ConfigError) as info:
        check("torchvision:resnet18.IMAGENET1K_V1")
    assert info.value.message == (f"weights 'torchvision:resnet18.IMAGENET1K_V1' are not in the torch hub cache: "
                                  f"{path} is missing (nothing is downloaded)")
    assert f"copy resnet18-f37072fd.pth to {path.parent}" in info.value.hint
    assert not (tmp_path / "torch").exists(), "nothing may be downloaded or created"
    path.parent.mkdir(parents=True)
    torch.save(tvm.resnet18(weights=None).state_dict(), path)  # right name, not the published file
    with pytest.raises(ConfigError) as info:
        check("torchvision:resnet18.IMAGENET1K_V1")
    assert info.value.message == (f"weights 'torchvision:resnet18.IMAGENET1K_V1': {path} does not match the sha256 "
                                  "prefix f37072fd in its name (corrupt, truncated or another file)")


def test_published_torchvision_weights_load_where_cached() -> None:
    """The published file, where a machine has it cached; CI has not (nothing is downloaded), and
    no checkpoint a test builds can stand in for it: its name carries the first 8 hex digits of the
    published file's sha256, which resolve() checks. The README lists this path as untested in CI."""
    pytest.importorskip("torchvision")
    try:
        wf = resolve("torchvision:resnet18.IMAGENET1K_V1")
    except ConfigError as err:
        pytest.skip(f"the published resnet18 weights are not in this machine's torch hub cache: {err.message}")
    model = build_model("torchvision-resnet", "batch", (3, 224, 224), 1000, {}, None, torch_generator(0, "init"))
    load_into(model, wf, "resnet18")
    assert wf.sha256.startswith("f37072fd")


# --- Hugging Face hub weights: the local cache when offline ---------------------------------------


def test_hub_weights_come_from_the_local_cache(trained: dict[str, Any], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # read at import: set for this test
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    # the cache's layout: a ref naming a commit, and the file in that commit's snapshot
    repo = tmp_path / "hub" / "models--norm-harness-tests--mlp-none"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(trained["states"]["mlp-none"], str(repo / "snapshots" / commit / "model.safetensors"))
    wf = check("hf:norm-harness-tests/mlp-none")
    assert wf.path == repo / "snapshots" / commit / "model.safetensors"
    state = read(wf)
    assert all(torch.equal(state[k], t) for k, t in trained["states"]["mlp-none"].items())
    with pytest.raises(ConfigError) as info:
        check("hf:norm-harness-tests/not-cached")
    assert info.value.message == ("weights 'hf:norm-harness-tests/not-cached' are not in the local Hugging Face cache "
                                  "and the hub cannot be reached (offline)")
    assert "HF_HOME" in info.value.hint
