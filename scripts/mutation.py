"""Mutation testing of the code behind the numbers users cite most, and its score.

The scope: the statistics (harness/stats.py), the attacks (harness/attacks.py), the OOD scores and
metrics (harness/ood.py, harness/metrics.py), the sanity checks (reports/checks.py), the claim
verdicts (reports/claims.py) and the per-example aggregation behind the worst case over attacks and
the mean over shifts (reports/build.py's ``_aggregate`` and ``_aggregates``). ``[tool.mutmut]`` in
pyproject.toml names the files and the tests that may kill their mutants; SCOPE below narrows
reports/build.py to the aggregation, whose other functions are report plumbing.

    python scripts/mutation.py run [--children N] [--sample N] [--seed S]   # mutmut run, then the score
    python scripts/mutation.py score [--survivors]  # the score of what mutants/ holds, per module

mutmut names a mutant after its file's path (``harness/reports/checks.py`` gives
``harness.reports.checks.x_...``) and activates it only when the running module's name matches, so
it runs in a copy of the checkout laid out as the package installs: ``.mutation/`` (git-ignored),
with reports/ and suites/ inside harness/ where their import names (harness.reports, harness.suites,
pyproject.toml's package-dir) say. ``[tool.mutmut]`` names its files in that layout; mutmut's
``mutants/`` folder is kept between runs, under ``.mutation/``.

``tox -e mutation`` runs the first over every mutant (hours on two cores). ``--sample N`` tests a
random sample of N mutants instead, drawn with ``--seed`` in proportion to each module's mutants:
the score is then an estimate, printed with its 95% Wilson interval.

A mutant is killed when a test fails on it (or it times out); it survives when every test that
reaches its function passes; "no tests" means no selected test reaches its function at all, which
counts against the score like a survivor. docs/mutation.md holds the measured scores and what each
survivor of the last run means.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from fnmatch import fnmatchcase
from pathlib import Path

import tomllib

# mutmut's mutant names: module.x_function__mutmut_N, methods as module.xǁClassǁmethod__mutmut_N
SCOPE = {
    "harness/stats.py": "harness.stats.*",
    "harness/attacks.py": "harness.attacks.*",
    "harness/ood.py": "harness.ood.*",
    "harness/metrics.py": "harness.metrics.*",
    "reports/checks.py": "harness.reports.checks.*",
    "reports/claims.py": "harness.reports.claims.*",
    "reports/build.py (aggregation)": "harness.reports.build.x__aggregate*",
}
STAGE = ".mutation"  # the copy of the checkout mutmut runs in, under the repository root
# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into what the score needs
KILLED = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "killed", -11: "killed", -9: "killed"}
STATUS = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}


def status(code: int | None) -> str:
    return KILLED.get(code, STATUS.get(code, "suspicious")) if code is not None else "not checked"  # type: ignore[arg-type]


def collect(root: Path) -> dict[str, dict[str, str]]:
    """Scope entry -> mutant name -> status, from mutmut's ``mutants/**/*.py.meta`` files."""
    out: dict[str, dict[str, str]] = {k: {} for k in SCOPE}
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            for entry, pattern in SCOPE.items():
                if fnmatchcase(name, pattern):
                    out[entry][name] = status(code)
                    break
    return out


def sample(root: Path, n: int, seed: int, entries: list[str]) -> list[str]:
    """``n`` mutant names drawn without replacement, in proportion to each of ``entries``' mutants
    (at least one from each), from the mutants ``mutmut run`` generated under ``root``."""
    by_entry = {k: v for k, v in collect(root).items() if k in entries}
    total = sum(len(m) for m in by_entry.values())
    rng = random.Random(seed)
    picked: list[str] = []
    for mutants in by_entry.values():
        names = sorted(mutants)
        picked += rng.sample(names, min(len(names), max(1, round(n * len(names) / total))))
    return picked


def stage(root: Path) -> Path:
    """The checkout's package, tests and pyproject.toml copied to ``root/STAGE`` as the package installs
    (each folder of pyproject.toml's package-dir at its import name's place), replacing an older copy
    but keeping its ``mutants/`` (mutmut's results so far)."""
    out = root / STAGE
    setuptools = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for old in ("harness", "tests"):
        shutil.rmtree(out / old, ignore_errors=True)
    shutil.copytree(root / "harness", out / "harness", ignore=skip)
    for package, folder in setuptools["package-dir"].items():
        shutil.copytree(root / folder, out.joinpath(*package.split(".")), ignore=skip)
    shutil.copytree(root / "tests", out / "tests", ignore=skip)
    shutil.copy(root / "pyproject.toml", out / "pyproject.toml")
    return out


def score(root: Path, survivors: bool) -> int:
    by_entry = collect(root)
    if not any(by_entry.values()):
        print(f"no mutants under {root / 'mutants'}: run 'python scripts/mutation.py run' first", file=sys.stderr)
        return 2
    print("| module | mutants | killed | timeout | survived | no tests | not checked | score (95% interval) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total: Counter[str] = Counter()
    for entry, mutants in by_entry.items():
        c = Counter(mutants.values())
        total.update(c)
        print(_row(entry, c))
    print(_row("**all**", total))
    if survivors:
        for entry, mutants in by_entry.items():
            left = sorted(n for n, s in mutants.items() if s in ("survived", "no tests", "suspicious"))
            if left:
                print(f"\n{entry}: {len(left)} not killed")
                for name in left:
                    print(f"  {mutants[name]:9s} {name}")
    return 0


def _row(entry: str, c: Counter[str]) -> str:
    from harness.stats import wilson_interval

    checked = sum(v for k, v in c.items() if k not in ("not checked", "skipped"))
    killed = c["killed"] + c["timeout"]
    pct = "n/a"
    if checked:
        low, high = wilson_interval(killed, checked)
        pct = f"{100 * killed / checked:.1f}%" + (f" [{100 * low:.1f}, {100 * high:.1f}]" if c["not checked"] else "")
    return (f"| {entry} | {sum(c.values())} | {c['killed']} | {c['timeout']} | {c['survived'] + c['suspicious']} "
            f"| {c['no tests']} | {c['not checked']} | {pct} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="mutmut run over the scope, then print the score")
    run.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    run.add_argument("--sample", type=int, default=0, help="test a random sample of this many mutants (default: all)")
    run.add_argument("--seed", type=int, default=0, help="the sample's random seed (default 0)")
    run.add_argument("--only", default="", help="comma-separated scope entries (default: all), e.g. harness/stats.py")
    show = sub.add_parser("score", help="print the score of the mutants/ folder as it is")
    show.add_argument("--survivors", action="store_true", help="list every mutant not killed")
    args = parser.parse_args(argv)
    checkout = Path.cwd()
    if not (checkout / "pyproject.toml").exists():
        parser.error("run it from the repository root (where pyproject.toml is)")
    root = checkout / STAGE
    if args.command == "run":
        if args.children < 1 or args.sample < 0:
            parser.error(f"--children must be at least 1 and --sample at least 0, got {args.children}, {args.sample}")
        entries = [e.strip() for e in args.only.split(",") if e.strip()] or list(SCOPE)
        if unknown := [e for e in entries if e not in SCOPE]:
            parser.error(f"--only names {', '.join(unknown)}, not in the scope: {', '.join(SCOPE)}")
        stage(checkout)
        mutmut = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.children)]
        names = [SCOPE[e] for e in entries]
        if args.sample:
            # mutmut generates every mutant and maps tests to functions before it tests any: let it do
            # that on one mutant, then draw the sample from what it generated
            subprocess.run([*mutmut, "harness.ood.x_msp__mutmut_1"], cwd=root, check=False)
            names = sample(root, args.sample, args.seed, entries)
        done = subprocess.run([*mutmut, *names], cwd=root, check=False)
        if done.returncode != 0:
            print(f"mutmut exited with {done.returncode}; the score below covers the mutants it finished",
                  file=sys.stderr)
        return score(root, survivors=True)
    return score(root, args.survivors)


if __name__ == "__main__":
    sys.exit(main())
