"""harness.tasks.text: the text sets, the task's checks and data, the corruption of test texts, the warm-up,
and a real text run end to end with every kind of condition and attack (the reduced ``spam`` suite runs in
tests/test_suites.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.registry import suites
from harness.specs import AttackSpec, EvalSpec, Suite, TrainSpec, Variant
from harness.tasks import task_of
from harness.tasks.text import TextOptions
from harness.tasks.text.data import CLASSES, SHOWN_HEADERS, load_set, shown, split_set
from harness.tasks.text.evaluation import corrupt


def _tiny(**changes: object) -> Suite:
    base = Suite(name="tiny-text", version="1", description="two byte models", dataset="spam", task="text",
                 task_options=TextOptions(length=32, warmup_steps=2),
                 variants=(Variant("tf-none", "text-transformer", "none", options=(("dim", 16), ("heads", 2))),
                           Variant("tf-layer", "text-transformer", "layer", options=(("dim", 16), ("heads", 2)),
                                   compare_to="tf-none")),
                 seeds=(0,), train=TrainSpec(epochs=1, batch_size=16),
                 evaluation=EvalSpec(shifts=("typo-swap",), severities=(2,), natural_shifts=("hard-ham",),
                                     ood_sets=("sotu",), ood_scores=("msp", "mahalanobis"), checks=False),
                 max_train=64, max_test=40)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_text_sets_hold_the_corpus_groups(text_corpora: Path) -> None:
    spam = load_set("spam", 64)
    # 2,500 ham and 500 spam, five messages the corpus holds twice kept once
    assert len(spam.texts) == len(set(spam.texts)) == 2995 and spam.x.shape == (2995, 64) and spam.x.dtype == np.int64
    assert spam.n_classes == len(CLASSES) == 2 and 495 <= int(spam.y.sum()) <= 500  # spam-1 is label 1
    later, hard = load_set("spam-later", 64), load_set("hard-ham", 64)
    assert len(later.texts) == len(set(later.texts)) == 2784 and 1384 <= int(later.y.sum()) <= 1396
    assert (len(hard.texts), int(hard.y.sum())) == (250, 0)
    sotu = load_set("sotu", 64, limit=100, seed=3)
    assert len(sotu.texts) == 100 and sotu.y is None and sotu.texts == load_set("sotu", 64, limit=100, seed=3).texts
    moby = load_set("moby-dick", 128)
    assert all(len(t) == 128 for t in moby.texts) and len(moby.texts) == 1_190_317 // 128
    with pytest.raises(ConfigError, match="unknown text set 'ham'"):
        load_set("ham", 64)


def test_a_message_is_shown_as_its_listed_headers_then_its_body(text_corpora: Path) -> None:
    from harness.corpora import spam_messages

    for m in spam_messages("spam-1")[:50]:
        text = shown(m)
        head, body = text.split("\n\n", 1)
        assert body == m.body
        names = [line.split(":", 1)[0].lower() for line in head.splitlines()]
        assert set(names) <= set(SHOWN_HEADERS) and "received" not in names
        # every listed header the message has is kept, in its order
        have = [line.split(":", 1)[0].lower() for line in m.headers.splitlines()
                if ":" in line and line.split(":", 1)[0].strip().lower() in SHOWN_HEADERS]
        assert names == [h.strip() for h in have]


def test_the_split_keeps_each_labels_share(text_corpora: Path) -> None:
    data = load_set("spam", 32)
    split = split_set(data, 0.25, 0.1, 0)
    parts = (split.train, split.val, split.test)
    assert sum(len(p.texts) for p in parts) == 2995
    for p, share in zip(parts, (0.65, 0.1, 0.25), strict=True):
        assert len(p.texts) == pytest.approx(2995 * share, abs=2) and p.y.mean() == pytest.approx(1 / 6, abs=0.01)
    assert not set(split.train.texts) & set(split.test.texts)  # no test message is also a training message


def test_a_text_suite_is_refused_where_it_does_not_fit() -> None:
    from harness.errors import UnknownNameError
    from harness.runner import check_names

    with pytest.raises(UnknownNameError, match="unknown text-attack 'apgd-ce'"):  # an image attack
        check_names(_tiny(evaluation=EvalSpec(shifts=(), attacks=(AttackSpec("apgd-ce", (0.1,)),))))
    with pytest.raises(ConfigError, match="got eps 1.5"):
        check_names(_tiny(evaluation=EvalSpec(shifts=(), attacks=(AttackSpec("hotflip", (1.5,)),))))
    fine = (AttackSpec("fgsm", (0.0, 2.0)), AttackSpec("hotflip", (0, 8)))  # embedding scales; flips
    check_names(_tiny(evaluation=EvalSpec(shifts=(), attacks=fine)))
    with pytest.raises(ConfigError, match="unknown text sets mnist"):
        _tiny(evaluation=EvalSpec(shifts=(), ood_sets=("mnist",)))
    with pytest.raises(ConfigError, match="trains on 'sotu'"):
        _tiny(dataset="sotu")
    with pytest.raises(ConfigError, match="text length 4 is not in 8..4096"):
        TextOptions(length=4)


def test_corrupted_test_texts_are_the_same_for_every_model_and_differ_between_conditions() -> None:
    texts = ("Subject: cheap meds\n\nBuy now and save on every order you make today.",) * 3
    a = corrupt(texts, "typo-swap", 3, 11)
    assert a == corrupt(texts, "typo-swap", 3, 11)
    assert a != corrupt(texts, "typo-swap", 3, 12) and a[0] != texts[0]
    assert len({*a}) == 3  # one generator runs through the texts: each is corrupted differently


def test_the_warm_up_scales_the_first_steps_learning_rate() -> None:
    """SGD without momentum moves a weight by lr x gradient: with a warm-up of 4 steps the first step's
    move is a quarter of the move without one, from the same start and batch (then the full rate)."""
    from harness.training import fit

    def moves(warmup: int) -> list[float]:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2).double()  # float64: the moves are exact to far below the tolerance
        before = model.weight.detach().clone()
        x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
        spec = TrainSpec(epochs=1, batch_size=8, lr=0.1, optimizer="sgd", momentum=0.0)
        fit(model, x, y, spec, 0, torch.device("cpu"),
            lambda m, xb, yb: torch.nn.functional.cross_entropy(m(xb), yb), lambda m: 0.0, lambda v: False,
            warmup_steps=warmup)
        return (model.weight.detach() - before).flatten().tolist()

    plain, warm = moves(0), moves(4)
    assert warm == pytest.approx([m / 4 for m in plain], rel=1e-9) and max(map(abs, plain)) > 1e-3


@pytest.mark.slow
def test_a_tiny_text_suite_runs_every_condition_and_stores_its_texts_outcomes(text_corpora: Path,
                                                                            tmp_path: Path) -> None:
    from harness.reports.build import build_report
    from harness.runner import run

    edits = (("insert_delete", True),)  # flips, insertions and deletions: a second sweep of each discrete attack
    attacks = (AttackSpec("fgsm", (0.0, 0.5, 1.0)), AttackSpec("pgd-linf", (0.0, 0.5, 1.0), (("steps", 3),)),
               AttackSpec("hotflip", (0, 1, 2)), AttackSpec("random-flip", (0, 1, 2)),
               AttackSpec("hotflip", (0, 1, 2), edits), AttackSpec("random-flip", (0, 1, 2), edits))
    suite = _tiny(evaluation=dataclasses.replace(_tiny().evaluation, attacks=attacks))
    summary = run(suite, tmp_path / "run", device="cpu", executor="serial", progress=False)
    assert summary.ok, summary.failures
    report = build_report(summary.run_dir, n_resamples=100)
    by = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates}
    for v in ("tf-none", "tf-layer"):
        for key in ("clean", "shift:typo-swap:severity=2", "natural:hard-ham", "ood:sotu:score=msp",
                    "ood:sotu:score=mahalanobis"):
            metric = "auroc" if key.startswith("ood") else "accuracy"
            assert 0 <= by[(v, key, metric)].value <= 1, (v, key)
    assert by[("tf-layer", "clean", "accuracy")].n_examples == 40  # max_test caps the held-out part
    # every attack record: eps 0 gives the clean predictions, budgets kept, accuracy never rising with eps
    status = {c.name: c.status for c in report.checks}
    assert status["eps = 0 reproduces clean predictions"] == "pass"
    assert status["perturbations stay inside the eps-ball"] == "pass"
    assert status["accuracy never rises with eps"] == "pass"
    assert {c.name for c in report.checks} >= {"PGD is at least as strong as FGSM, on average and per example",
                                               "HotFlip is at least as strong as random flips of the same budget"}
    # each HotFlip sweep against the random sweep of its own kind of edits: 2 variants x 2 budgets x 2 kinds
    flips = next(c for c in report.checks if c.name.startswith("HotFlip"))
    assert flips.status == "pass" and "in all 8 (variant, budget) pairs" in flips.detail, flips
    worst = {r.condition.key for r in report.estimates if r.condition.name == "worst-case"}
    assert {"attack:worst-case:eps=2.0,norm=edits", "attack:worst-case:eps=1.0,norm=linf"} <= worst, worst
    assert task_of(suite).describe(suite)["target"].endswith("(32-byte inputs, warm-up 2 steps)")


def test_the_spam_suite_declares_its_claims_and_a_reduced_size() -> None:
    spam = suites.get("spam")
    assert spam.task == "text" and any(z.name == "reduced" for z in spam.sizes)
    pairs = {(v.name, b.name) for v, b in spam.comparisons()}
    assert pairs == {("tf-layer", "tf-none"), ("tf-layer-post", "tf-none"), ("tf-rms", "tf-none"),
                     ("lstm-layer", "lstm-none"), ("gru-layer", "gru-none")}
    reduced = spam.with_size("reduced")
    assert reduced.task_options == TextOptions(length=64, warmup_steps=10) and reduced.max_train == 600
