"""``harness new suite NAME``: write an installable suite plugin package to start from.

The package is the smallest complete plugin: a ``pyproject.toml`` that registers the suite in
the ``harness.suites`` entry-point group (the path every built-in suite takes), a package whose
``SUITE`` is a documented, runnable experiment on the embedded ``digits`` dataset (an MLP with
and without LayerNorm, a ``reduced`` size, one claim), a README saying how to install, run and
test it, and a test that runs the reduced size end to end and checks real results. The author
edits it into their own experiment; the test keeps telling them whether it still runs.

Nothing is overwritten: the folder is written beside its destination and renamed into place at
the end, so a failure leaves no half-written package and an existing folder is an error.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from string import Template

from harness.errors import ConfigError

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # as the registries require (harness.registry)

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "The $name suite for norm-harness: $description"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["norm-harness"]

[project.optional-dependencies]
test = ["pytest>=7"]

# what makes the suite a plugin: 'harness list suites' and 'harness run $name' find it here
[project.entry-points."harness.suites"]
$name = "$module:SUITE"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
testpaths = ["tests"]
filterwarnings = ["error"]
''')

MODULE = Template('''\
"""$name: what LayerNorm does to a small MLP on scikit-learn's handwritten digits.

Written by ``harness new suite $name``; edit it into your own experiment. A suite is one frozen
``harness.specs.Suite``: the data, the variants (fillings of the model's normalization slot),
the seeds every variant shares, the training recipe, the evaluation battery, the claims the
report gives a verdict on, and smaller sizes for quick runs. ``harness list`` shows the models,
norms, datasets, shifts, attacks and OOD scores a suite can name; docs/plugins.md in the
norm-harness repository describes every field.

Data: the 1,797 bundled 8x8 digits (nothing is downloaded), a fixed stratified split.
Variants: an MLP with no normalization (the baseline) and with LayerNorm, five seeds.
Battery: clean accuracy; Gaussian noise and contrast at severities 1-5; OOD detection of faces
by maximum softmax probability; FGSM and PGD-10 at eps 0 to 0.1, with the sanity checks.
The ``reduced`` size (two seeds, two epochs on 500 images, one severity) is a smoke test, run by
``tests/$test_file``.
"""

from harness.specs import AttackSpec, Claim, EvalSpec, Size, Suite, TrainSpec, Variant, variant_name

NORMS = ("none", "layer")  # "none" is the baseline every other variant is compared with
EPS = (0.0, 0.05, 0.1)  # L-inf radii in [0, 1] pixel units

SUITE = Suite(
    name="$name",
    version="0.1.0",  # part of every cell's key: raise it when a change alters results
    description="$description",
    dataset="digits",
    variants=tuple(Variant(variant_name("mlp", n), "mlp", n) for n in NORMS),
    seeds=(0, 1, 2, 3, 4),
    train=TrainSpec(epochs=12, batch_size=32, lr=1e-3, optimizer="adam", target_accuracy=0.95),
    evaluation=EvalSpec(
        shifts=("gaussian-noise", "contrast"),
        ood_sets=("faces",),
        ood_scores=("msp",),
        attacks=(AttackSpec("fgsm", EPS), AttackSpec("pgd-linf", EPS, (("restarts", 1), ("steps", 10)))),
    ),
    claims=(
        # a directional hypothesis, stated before the run; the report gives it a verdict
        Claim("layer reaches 95% held-out accuracy in fewer steps than none", "steps_to_target", "lower",
              norms=("layer",)),
    ),
    sizes=(
        Size("reduced", "a smoke test: 2 seeds, 2 epochs on 500 training and 200 test images, severity 3, "
             "eps 0 and 0.1", seeds=(0, 1), epochs=2, max_train=500, max_test=200, severities=(3,),
             eps=(0.0, 0.1)),
    ),
)
''')

TEST = Template('''\
"""The $name suite end to end at its reduced size: found through its entry point, trained,
evaluated on the whole battery and reported, with real numbers checked."""

from __future__ import annotations

from pathlib import Path

from harness import registry
from harness.runner import run
from harness.store import Store
from harness.reports.build import build_report
from harness.reports.claims import NOT_EVALUATED

from $module import SUITE


def test_the_entry_point_registers_this_suite() -> None:
    # fails until the package is installed (pip install -e .): the entry point is how harness finds it
    assert registry.suites.get("$name") is SUITE
    assert registry.suites.entry("$name").origin == "$dist"


def test_the_reduced_size_runs_end_to_end(tmp_path: Path) -> None:
    suite = SUITE.with_size("reduced")
    # serial: the whole run in this process, the quickest for a test; 'harness run' uses worker processes
    summary = run(suite, tmp_path / "run", device="cpu", executor="serial", progress=False)
    assert summary.ok, summary.failures
    models = len(suite.variants) * len(suite.seeds)
    assert summary.trained == models and summary.diverged == 0

    with Store(summary.run_dir, create=False) as store:  # every cell of the plan was stored, and finished
        cells = list(store.cells(with_arrays=False))
    assert all(c.status == "done" for c in cells)
    assert sum(c.kind == "train" for c in cells) == models
    assert sum(c.kind != "train" for c in cells) == models * len(suite.conditions())

    report = build_report(summary.run_dir, n_resamples=200)
    clean = {r.variant: r.estimate.value for r in report.estimates if r.metric == "accuracy"
             and r.condition.key == "clean"}
    assert set(clean) == {v.name for v in suite.variants}
    assert min(clean.values()) > 0.5, clean  # chance is 0.1 on ten classes
    verdicts = [v.verdict for v in report.claims]
    assert len(verdicts) == len(suite.claims) and NOT_EVALUATED not in verdicts, verdicts
''')

README = Template('''\
# $dist

The `$name` suite for norm-harness: $description. Written by
`harness new suite $name`; the suite is `$module/__init__.py`, its test `tests/$test_file`.

## Install

Into the environment that has norm-harness (editable, so your changes apply at once):

```bash
pip install -e .
harness list suites          # $name is listed, from $dist
```

## Run

```bash
harness show $name                   # data, variants, seeds, battery, claims, sizes
harness run $name --size reduced     # the smoke test: seconds
harness run $name                    # the whole suite; report.md and report.html in runs/$name-TIME/
```

Before installing, `harness run --suite-path . $name` runs it straight from this folder.

## Test

```bash
pytest
```

runs the reduced size end to end through `harness.runner.run` and checks that every cell was
stored, that each variant is well above chance on clean digits, and that the claim got a verdict.

## Edit

Change the variants, seeds, recipe, battery and claims in `$module/__init__.py` (raise
`version` when a change alters results: it is part of every cell's key). `harness list` shows
what a suite can name; models, norms, shifts, attacks and OOD scores of your own are plugins
too, registered in `pyproject.toml` the same way (see docs/plugins.md of norm-harness).
''')


def check_suite_name(name: str) -> None:
    """Require a registry name: lowercase letters and digits, words joined by single hyphens."""
    if not _NAME.match(name):
        raise ConfigError(f"suite name {name!r} is not lowercase words joined by hyphens",
                          hint="use letters a-z, digits and single hyphens, e.g. 'my-norms'")


def new_suite(name: str, parent: Path | str = ".") -> Path:
    """Write the package ``harness-suite-NAME/`` into the folder ``parent``; returns its path.

    ``name`` is the suite's registry name. It must be free: an installed suite of that name would
    clash with this one on install. The folder must not exist yet; nothing is overwritten.
    """
    from harness.registry import suites

    check_suite_name(name)
    if name in suites:
        raise ConfigError(f"a suite named {name!r} is already registered (by {suites.entry(name).origin})",
                          hint="pick another NAME; 'harness list suites' shows the names in use")
    parent = Path(parent)
    if not parent.is_dir():
        raise ConfigError(f"--dir {str(parent)!r} is not an existing folder",
                          hint="create it first, or pass the folder to write harness-suite-NAME into")
    dist = f"harness-suite-{name}"
    target = parent / dist
    if target.exists() or target.is_symlink():
        raise ConfigError(f"{target} already exists",
                          hint="pick another NAME or --dir, or move the folder away: harness new never overwrites")
    module = "harness_suite_" + name.replace("-", "_")
    words = {"name": name, "dist": dist, "module": module, "test_file": f"test_{name.replace('-', '_')}.py",
             "description": "LayerNorm vs none, MLP, on scikit-learn digits (8x8)"}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{module}/__init__.py": MODULE,
        f"tests/{words['test_file']}": TEST,
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{dist}-", dir=parent))  # same file system: the rename is atomic
    try:
        for rel, template in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.substitute(words), encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes the folder private; a package folder is not
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
