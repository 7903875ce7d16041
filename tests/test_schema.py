"""results.json against its versioned JSON Schema (reports/schema, draft 2020-12): a real run's
document validates, and documents with a wrong type, an unknown field or a bad enum value fail."""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.registry import suites
from harness.reports.build import build_report
from harness.reports.render import SCHEMA_PATH, to_json
from harness.runner import run
from harness.specs import AttackSpec

ROOT = Path(__file__).resolve().parents[1]
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Doc:
    """results.json of a real, small run (a few seconds): every kind of condition, both BatchNorm
    test-time modes, attacks and the sanity checks, two seeds, two variants and their baseline."""
    # every norm the suite's claims name, so the claims can be evaluated
    suite = suites.get("quickstart").with_overrides(seeds=(0, 1), variants=("mlp-none", "mlp-batch", "mlp-layer"),
                                                    epochs=2)
    evaluation = dataclasses.replace(
        suite.evaluation, shifts=("gaussian-noise",), severities=(1, 5), ood_sets=("faces",),
        bn_modes=("frozen", "batch"),
        attacks=(AttackSpec("fgsm", (0.0, 0.1)), AttackSpec("pgd-linf", (0.1,), (("restarts", 1), ("steps", 5)))))
    run_dir = tmp_path_factory.mktemp("schema") / "run"
    assert run(dataclasses.replace(suite, evaluation=evaluation), run_dir, device="cpu", executor="serial",
               progress=False).ok
    # exactly what write_reports writes: strict JSON, NaN as null
    doc = json.loads(json.dumps(to_json(build_report(run_dir, n_resamples=200)), allow_nan=False))
    for key in ("estimates", "comparisons", "training", "training_summary", "attacks", "reliability", "curves", "roc",
                "claims", "checks"):
        assert doc[key], f"the run should exercise {key}"
    assert doc["schema_version"] == 4
    assert doc["incomplete"] is None  # the run has every cell of its plan
    return doc


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_versioned_draft_2020_12(validator: jsonschema.Draft202012Validator) -> None:
    assert validator.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert validator.schema["$id"].endswith(":v4") and SCHEMA_PATH.name == "results-v4.schema.json"
    assert validator.schema["properties"]["schema_version"] == {"const": 4}
    for obj in ("estimate_row", "estimate", "comparison"):
        assert validator.schema["$defs"][obj]["additionalProperties"] is False


def test_schema_ships_in_the_wheel() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    import harness.reports as reports

    # SCHEMA_PATH is inside the installed package (site-packages under tox's wheel install), so
    # its existence there is the proof it shipped; the pattern check covers the editable install
    assert SCHEMA_PATH.is_file()
    relative = SCHEMA_PATH.relative_to(Path(reports.__file__).parent).as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data["harness.reports"])


def test_a_real_results_json_validates(results: Doc, validator: jsonschema.Draft202012Validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(results)]
    assert errors == []


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation: set the field at a slash-separated path (list indices as numbers)."""
    def mutate(doc: Doc) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
        target: Any = doc
        for p in parents:
            target = target[p]
        target[last] = value
    return mutate


def _delete(key: str) -> Callable[[Doc], None]:
    return lambda doc: doc.pop(key)


CLAIM = {"text": "batch reaches 95% in fewer steps than none", "metric": "steps_to_target", "direction": "lower",
         "condition": "training", "norms": ["batch"], "margin": 0.0, "verdict": "inconclusive",
         "reason": "3 seeds cannot reach p < 0.05", "evidence": [{"variant": "mlp-batch"}]}

INCOMPLETE = {"missing_training_cells": 1, "missing_evaluation_cells": 3, "models": [{"variant": "mlp-none",
                                                                                      "seed": 0}],
              "command": "harness run quickstart --run-dir runs/q", "error": None}

INVALID = {
    "an unknown field in an estimate": _set("estimates/0/median", 0.5),
    "an unknown field in a comparison": _set("comparisons/0/cohen", 0.1),
    "an estimate's value as a string": _set("estimates/0/value", "0.93"),
    "a condition kind that does not exist": _set("estimates/0/condition/kind", "weather"),
    "a p-value above 1": _set("comparisons/0/p_adjusted", 1.5),
    "n_seeds not an integer": _set("comparisons/0/n_seeds", 2.5),
    "a check status outside pass, fail, n/a": _set("checks/0/status", "ok"),
    "a training status outside done, failed": _set("training/0/status", "running"),
    "schema_version 2": _set("schema_version", 2),
    "no estimates": _delete("estimates"),
    "a claim verdict outside the four": _set("claims", [{**CLAIM, "verdict": "probably"}]),
    "a claim direction outside the four": _set("claims", [{**CLAIM, "direction": "sideways"}]),
    "a suite claim neither text nor a spec": _set("suite/claims", [42]),
    "better neither higher nor lower": _set("comparisons/0/better", "sideways"),
    "seeds_needed not an integer": _set("comparisons/0/seeds_needed", 7.5),
    "interval not a string": _set("interval", 0.95),
    "curves not objects": _set("curves", [1, 2]),
    "a sweep point without its converged count": _set("sweeps", [{
        "family": "mlp-batch", "setting": "lr", "converged_range": None,
        "points": [{"value": 0.1, "variant": "mlp-batch@lr=0.1", "n_seeds": 2, "diverged": 0,
                    "final_val_accuracy": None}]}]),
    "a memory method that does not exist": _set("training/0/memory_method", "guessed"),
    "incomplete without its command": _set("incomplete", {k: v for k, v in INCOMPLETE.items() if k != "command"}),
    "a negative count of missing cells": _set("incomplete", {**INCOMPLETE, "missing_evaluation_cells": -1}),
    "an unknown field in incomplete": _set("incomplete", {**INCOMPLETE, "missing": 4}),
    "incomplete as a string": _set("incomplete", "yes"),
}

SWEEP = {"family": "mlp-batch", "setting": "lr", "converged_range": [0.01, 0.1],
         "points": [{"value": v, "variant": f"mlp-batch@lr={v:g}", "n_seeds": 2, "converged": 2, "diverged": 0,
                     "final_val_accuracy": None} for v in (0.01, 0.1)]}

VALID = {  # the optional fields of schema_versions 2 and 3, as they will be written
    "claims": _set("claims", [CLAIM, {**CLAIM, "metric": None, "direction": None, "verdict": "not evaluated"}]),
    "free-text suite claims": _set("suite/claims", ["normalization helps"]),
    "interval": _set("interval", "crossed bootstrap (seeds x examples), percentile"),
    "comparison effect fields": lambda doc: doc["comparisons"][0].update(
        effect_size=1.2, prob_improvement=0.8, prob_improvement_low=0.6, prob_improvement_high=0.95, mde=0.02,
        seeds_needed=6, better="higher"),
    "unknown effect size": lambda doc: doc["comparisons"][0].update(effect_size=None, mde=None, seeds_needed=None),
    "sweeps": _set("sweeps", [SWEEP]),
    "a comparison over a sweep": _set("comparisons/0/condition", {"kind": "sweep", "name": "lr", "params": {}}),
    "a partial run": _set("incomplete", INCOMPLETE),
    "a plan that could not be made": _set("incomplete", {**INCOMPLETE, "missing_training_cells": 0,
                                                         "missing_evaluation_cells": 0, "models": [],
                                                         "error": "weights file gone.safetensors does not exist"}),
    "a file written before issue 15": _delete("incomplete"),
}


@pytest.mark.parametrize("what", sorted(INVALID))
def test_a_mutated_document_fails(what: str, results: Doc, validator: jsonschema.Draft202012Validator) -> None:
    doc = copy.deepcopy(results)
    INVALID[what](doc)
    assert not validator.is_valid(doc), what


@pytest.mark.parametrize("what", sorted(VALID))
def test_the_optional_fields_validate(what: str, results: Doc, validator: jsonschema.Draft202012Validator
                                         ) -> None:
    doc = copy.deepcopy(results)
    VALID[what](doc)
    assert [e.message for e in validator.iter_errors(doc)] == []
