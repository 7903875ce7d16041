"""Bad input, table-driven: every malformed command line, suite, dataset or run directory gets
one ``Error:`` line saying what is wrong and one ``Hint:`` line saying what to do, exit status 2,
no traceback, nothing on stdout, and nothing written: the folder the command runs in (where a
default run directory would go) and every run directory it is pointed at are byte-for-byte what
they were before."""

from __future__ import annotations

import hashlib
import json
import pickle
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli import main
from harness.registry import REGISTRIES, SUITE_PATH_ENV, suites
from harness.store import Store


@dataclass(frozen=True)
class Case:
    """``argv`` with ``{tmp}`` standing for the test's folder; ``setup`` prepares files in it;
    ``error`` is a fragment of the Error line, ``hint`` one of the Hint line."""

    id: str
    argv: str
    error: str
    hint: str = ""
    setup: Callable[[Path], None] | None = None
    env: tuple[tuple[str, str], ...] = ()
    needs_no_cuda: bool = False


# -- setups: files a case needs, written before the snapshot -------------------------------------------------------


def _store_of(suite: dict[str, object]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        with Store(tmp / "old") as store:
            store.put_meta("suite", suite)
            store.put_meta("device", "cpu")
    return setup


def _file(name: str, content: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(content)
    return setup


def _suite_file(body: str) -> Callable[[Path], None]:
    """A suite folder for --suite-path: one module, ``body`` after the imports."""
    head = ("import numpy as np\nfrom harness.data import ImageSet\nfrom harness.registry import datasets\n"
            "from harness.specs import AttackSpec, EvalSpec, Suite, TrainSpec, Variant\n")
    # a module name of its own: the cases run in one process, where a suite module is imported once
    name = "bad_" + hashlib.sha256(body.encode()).hexdigest()[:8]
    return _file(f"suites/{name}.py", (head + textwrap.dedent(body)).encode())


def _all(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for one in setups:
            one(tmp)
    return setup


class _Payload:
    """Unpickling this creates the file ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _malicious_pickle(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:  # the marker would appear in the snapshot if it were ever unpickled
        (tmp / name).write_bytes(pickle.dumps({"net.body.1.weight": _Payload(tmp / "pwned")}))
    return setup


def _quickstart(**changes: object) -> dict[str, object]:
    return json.loads(json.dumps({**suites.get("quickstart").to_dict(), **changes}))


def _tiny_suite(dataset: str, weights: str | None = None, **evaluation: str) -> str:
    ev = ", ".join(f"{k}={v}" for k, v in evaluation.items())
    return (f"SUITE = Suite(name='bad', version='1', description='a suite with bad input', dataset={dataset!r}, "
            f"variants=(Variant('mlp-none', 'mlp', 'none', weights={weights!r}),), seeds=(0,), "
            f"train=TrainSpec(epochs=1), evaluation=EvalSpec({ev}))\n")


def _dataset_plugin(name: str, x: str, y: str) -> str:
    """A module that registers a dataset plugin returning the arrays ``x``, ``y`` (code)."""
    return (f"def _load():\n    return ImageSet({name!r}, {x}, {y}, 'made by the test')\n"
            f"datasets.register({name!r}, _load)\n")


CASES = [
    # unknown names, each with a typo close to a real one
    Case("unknown-suite", "run quickstrat", "unknown suite 'quickstrat'", "did you mean 'quickstart'"),
    Case("show-unknown-suite", "show convergnce", "unknown suite 'convergnce'", "did you mean 'convergence'"),
    Case("unknown-kind", "list atacks", "unknown plugin kind 'atacks'", "did you mean 'attacks'"),
    Case("unknown-variant", "run quickstart --variants cnn-nonee", "unknown variant 'cnn-nonee'",
         "did you mean 'cnn-none'"),
    Case("unknown-executor", "run quickstart --executor seriall", "unknown executor 'seriall'",
         "did you mean 'serial'"),
    Case("unknown-size", "run quickstart --size reduce", "unknown size of suite 'quickstart'", "available: full"),
    Case("unknown-command", "rn quickstart", "invalid choice: 'rn'", "harness --help"),
    Case("unknown-shift", "data contact-sheet digits --shifts fogg", "unknown shift 'fogg'", "did you mean 'fog'"),
    Case("unknown-dataset", "data contact-sheet digitz", "unknown dataset 'digitz'", "did you mean 'digits'"),
    Case("unknown-fetch", "data fetch mnits", "unknown dataset to fetch 'mnits'", "available: mnist"),
    Case("unknown-device", "run quickstart --device tpu", "unknown device 'tpu'", "use auto, cpu, cuda"),
    # malformed values
    Case("negative-seed", "run quickstart --seeds -1", "seeds must be non-negative integers", "harness run --help"),
    Case("seed-not-a-number", "run quickstart --seeds a,b", "seeds must be"),
    Case("repeated-seed", "run quickstart --seeds 0,0", "repeat a seed", "give each seed once"),
    Case("zero-epochs", "run quickstart --epochs 0", "expected a positive integer, got 0"),
    Case("zero-workers", "run quickstart --workers 0", "expected a positive integer, got 0"),
    Case("level-above-one", "report {tmp} --level 1.5", "expected a confidence level in (0, 1)"),
    Case("zero-resamples", "report {tmp} --resamples 0", "expected an integer from 1 to 10,000, got 0"),
    # values that would fail late: after training (an SQLite overflow), in the bootstrap (MemoryError)
    Case("seed-beyond-64-bits", "run quickstart --seeds 0,9223372036854775808", "seeds [0, 9223372036854775808] "
         "are not all integers from 0 to 2**63 - 1", "use smaller seeds"),
    Case("too-many-resamples", "report {tmp} --resamples 100000000", "expected an integer from 1 to 10,000, got "
         "100000000", "harness report --help"),
    Case("contact-sheet-out-is-a-folder", "data contact-sheet digits --out {tmp}/sheets", "sheets is a "
         "folder, not a file", "sheets/contact-sheet-digits.png",
         setup=_file("sheets/mine.png", b"a user's picture")),
    Case("contact-sheet-out-under-a-file", "data contact-sheet digits --out {tmp}/notes.txt/sheet.png",
         "notes.txt is a file, not a folder", "pass a path in a folder", setup=_file("notes.txt", b"my notes\n")),
    Case("unknown-adjustment", "report {tmp} --adjust bonferoni", "invalid choice: 'bonferoni'"),
    Case("image-out-of-range", "data contact-sheet digits --image 5000", "outside digits's 1797 images",
         "use --image from 0 to 1796"),
    Case("zero-tile", "data contact-sheet digits --tile 0", "expected a positive integer, got 0"),
    Case("missing-suite-argument", "run", "the following arguments are required: suite"),
    # conflicting options
    Case("serial-with-workers", "run quickstart --executor serial --workers 2",
         "the serial executor runs one job at a time", "use --executor process"),
    Case("cuda-without-cuda", "run quickstart --device cuda", "CUDA is not available", "--device cpu",
         needs_no_cuda=True),
    Case("ray-address-not-host-port", "run quickstart --executor ray", "RAY_ADDRESS='headnode:port' is not HOST:PORT",
         "unset RAY_ADDRESS", env=(("RAY_ADDRESS", "headnode:port"),)),
    Case("ray-address-nothing-there", "run quickstart --executor ray", "nothing answers at RAY_ADDRESS='127.0.0.1:1'",
         "ray start --head", env=(("RAY_ADDRESS", "127.0.0.1:1"),)),
    # run directories that are not what the command needs
    Case("report-missing-dir", "report {tmp}/nowhere", "is not a run directory", "the folder that 'harness run'"),
    Case("run-dir-is-a-file", "run quickstart --run-dir {tmp}/notes.txt", "is a file, not a run directory",
         setup=_file("notes.txt", b"my notes\n")),
    Case("corrupt-store", "report {tmp}/old", "is not a readable results store", "delete this one",
         setup=_file("old/store.sqlite", b"this is not an SQLite database" * 10)),
    Case("compare-missing-dir", "compare {tmp}/nowhere {tmp}/elsewhere", "is not a run directory"),
    Case("run-dir-of-another-suite", "run quickstart --run-dir {tmp}/old", "holds a run of suite 'mnist'",
         "pass another --run-dir", setup=_store_of(_quickstart(name="mnist"))),
    Case("resume-with-other-settings", "run quickstart --run-dir {tmp}/old --epochs 3", "other settings for train",
         "only --seeds and --variants may change", setup=_store_of(_quickstart())),
    # data: missing, empty, NaN, of the wrong shape
    Case("missing-data-root", "run mnist --run-dir {tmp}/run", "MNIST", "harness data fetch mnist --root",
         env=(("HARNESS_DATA_ROOT", "{tmp}/empty-root"),)),
    Case("empty-dataset", "run bad --suite-path {tmp}/suites", "dataset 'empty' is empty",
         setup=_suite_file(_dataset_plugin("empty", "np.zeros((0, 1, 8, 8))", "np.zeros(0)")
                           + _tiny_suite("empty"))),
    Case("nan-pixels", "run bad --suite-path {tmp}/suites", "pixel values must be finite and in [0, 1]",
         "divide by the maximum value", setup=_suite_file(
             _dataset_plugin("nans", "np.full((20, 1, 8, 8), np.nan)", "np.arange(20) % 2") + _tiny_suite("nans"))),
    Case("images-without-channels", "run bad --suite-path {tmp}/suites", "expected (N, C, H, W)",
         "reshape grayscale images to (N, 1, H, W)", setup=_suite_file(
             _dataset_plugin("flat", "np.zeros((20, 8, 8))", "np.arange(20) % 2") + _tiny_suite("flat"))),
    Case("labels-of-another-length", "run bad --suite-path {tmp}/suites", "20 images but labels of shape (3,)",
         setup=_suite_file(_dataset_plugin("short", "np.zeros((20, 1, 8, 8))", "np.arange(3)")
                           + _tiny_suite("short"))),
    Case("unknown-ood-set", "run bad --suite-path {tmp}/suites", "unknown dataset 'textures2'",
         "did you mean 'textures'", setup=_suite_file(_tiny_suite("digits", ood_sets="('textures2',)"))),
    # invalid eps or severity in a suite
    Case("eps-above-one", "run bad --suite-path {tmp}/suites", "eps 1.5 is outside [0, 1]", setup=_suite_file(
        _tiny_suite("digits", attacks="(AttackSpec('pgd-linf', eps=(0.1, 1.5)),)"))),
    Case("severity-six", "run bad --suite-path {tmp}/suites", "severity 6 is outside 1-5", setup=_suite_file(
        _tiny_suite("digits", shifts="('fog',)", severities="(1, 6)"))),
    # names no report could show as they are
    Case("escape-in-variant-name", "run bad --suite-path {tmp}/suites", "variant name 'mlp\\x1b[2J' contains "
         "'\\x1b', a control character or line break", "fix the file",
         setup=_suite_file(_tiny_suite("digits").replace("'mlp-none'", "'mlp\\x1b[2J'"))),
    Case("newline-in-claim", "run bad --suite-path {tmp}/suites", "claim 'a\\n# heading' contains '\\n'",
         "fix the file",
         setup=_suite_file(_tiny_suite("digits").replace("seeds=(0,),", "seeds=(0,), claims=('a\\n# heading',),"))),
    # a suite that fails to import
    Case("suite-fails-to-import", "run bad --suite-path {tmp}/suites", "broken_suite.py",
         setup=_file("suites/broken_suite.py", b"import numpy\nraise RuntimeError('this suite is broken')\n")),
    Case("missing-suite-path", "run quickstart --suite-path {tmp}/no-such-folder", "no-such-folder' does not exist",
         "pass a folder of suite modules"),
    Case("suite-path-is-a-file", "list --suite-path {tmp}/notes.txt", "is not a folder", "--suite-path",
         setup=_file("notes.txt", b"my notes\n")),
    # data sources: an unknown scheme, a missing path, a misspelt option, a dataset script
    Case("unknown-source-scheme", "run bad --suite-path {tmp}/suites", "unknown data source scheme 'hff'",
         "did you mean 'hf'", setup=_suite_file(_tiny_suite("hff:my-data"))),
    Case("missing-source-path", "run bad --suite-path {tmp}/suites", "does not exist", "check the path",
         setup=_suite_file(_tiny_suite("folder:no-such-folder"))),
    Case("misspelt-source-option", "run bad --suite-path {tmp}/suites", "take no option 'splt'",
         "did you mean 'split'", setup=_all(_file("my-data/state.json", b"{}"),
                                           _suite_file(_tiny_suite("hf:my-data#splt=test")))),
    Case("dataset-script", "run bad --suite-path {tmp}/suites", "dataset scripts are never run",
         setup=_all(_file("loader.py", b"import os\n"), _suite_file(_tiny_suite("hf:loader.py")))),
    # weights: a malicious pickle (as .pt and under a safetensors name), a corrupt and a missing file
    Case("malicious-pickle", "run bad --suite-path {tmp}/suites", "were refused", "only load files you trust",
         setup=_all(_malicious_pickle("evil.pt"), _suite_file(_tiny_suite("digits", weights="evil.pt")))),
    Case("pickle-named-safetensors", "run bad --suite-path {tmp}/suites", "not a readable safetensors file",
         setup=_all(_malicious_pickle("evil.safetensors"),
                    _suite_file(_tiny_suite("digits", weights="evil.safetensors")))),
    Case("corrupt-checkpoint", "run bad --suite-path {tmp}/suites", "not a PyTorch state-dict file",
         setup=_all(_file("model.pt", b"this is not a checkpoint" * 4),
                    _suite_file(_tiny_suite("digits", weights="model.pt")))),
    Case("missing-checkpoint", "run bad --suite-path {tmp}/suites", "does not exist", setup=_suite_file(
        _tiny_suite("digits", weights="trained/model.safetensors"))),
    # harness new suite
    Case("new-suite-bad-name", "new suite My_Suite --dir {tmp}", "is not lowercase words joined by hyphens",
         "e.g. 'my-norms'"),
    Case("new-suite-taken-name", "new suite quickstart --dir {tmp}", "already registered", "pick another NAME"),
    Case("new-suite-existing-folder", "new suite my-norms --dir {tmp}", "already exists", "never overwrites",
         setup=_file("harness-suite-my-norms/README.md", b"mine\n")),
]


def _tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: its path and (files) the sha256 of its bytes. Python's
    own bytecode cache of an imported suite file (``__pycache__``) is not the harness's writing."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*")) if "__pycache__" not in p.parts}


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_error_a_hint_exit_2_and_nothing_written(
        case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    if case.needs_no_cuda:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA: --device cuda is valid here")
    work = tmp_path / "work"
    work.mkdir()
    if case.setup is not None:
        case.setup(work)
    for name, value in case.env:
        monkeypatch.setenv(name, value.format(tmp=work))
    monkeypatch.chdir(work)  # a default run directory would be made here
    # --suite-path exports its folders for worker processes: undone after the test (monkeypatch
    # restores the variable as it was), so later subprocesses do not import these broken files
    monkeypatch.delenv(SUITE_PATH_ENV, raising=False)
    before = _tree(work)
    capfd.readouterr()
    registered = {kind: set(r.names()) for kind, r in REGISTRIES.items()}
    try:
        code = main(case.argv.format(tmp=work).split())
    except SystemExit as exit:  # argparse's usage errors exit from inside the parser
        code = exit.code
    finally:  # what a --suite-path module registered stays in this process's registries: drop it
        for kind, r in REGISTRIES.items():
            for name in set(r.names()) - registered[kind]:
                r.unregister(name)
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, err
    assert out == ""
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), err
    assert "Traceback" not in err
    assert case.error in lines[0], lines[0]
    assert case.hint in lines[1], lines[1]
    assert _tree(work) == before, "the command wrote or changed files"

